//! The tenant tree: roots, a tenant (now or as of a point in the log), children, ancestors,
//! descendants.

use axum::extract::State;
use axum::Json;

use plinth_domain::TenantId;
use plinth_projections::read::queries::{self, DescendantView, TenantDetail, TenantView};

use super::accepts::{AsOf, Descendants, Paged, Wait};
use super::extract::{Id, Read, Reply};
use super::log::{as_of, now, NowOrThen};
use super::PageBody;
use crate::error::ApiError;
use crate::routes::openapi::{ListProblems, ReadProblems};
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/v1/tenants",
    tag = "tenants",
    summary = "Root tenants the caller may see",
    params(Paged, Wait),
    responses((status = 200, description = "OK", body = PageBody<TenantView>), ListProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn roots(read: Read) -> Reply<PageBody<TenantView>> {
    let roots = queries::roots(&read.client, &read.viewer, &read.page).await?;
    Ok(Json(roots.into()))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}",
    tag = "tenants",
    summary = "A tenant with its metadata (temporal with as_of_position / as_of_time)",
    params(Id<TenantId>, Wait, AsOf),
    responses((status = 200, description = "The tenant; with `as_of_*`, as it was then", body = NowOrThen<TenantDetail>), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn tenant(
    State(state): State<AppState>,
    id: Id<TenantId>,
    read: Read,
) -> Reply<NowOrThen<TenantDetail>> {
    if let Some(then) = as_of(&state, &read, &id).await? {
        return Ok(then);
    }
    now(id.found(queries::tenant(&read.client, &read.viewer, id.as_str()).await?))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/children",
    tag = "tenants",
    summary = "Direct sub-tenants",
    params(Id<TenantId>, Paged, Wait),
    responses((status = 200, description = "OK", body = PageBody<TenantView>), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn children(id: Id<TenantId>, read: Read) -> Reply<PageBody<TenantView>> {
    id.found_page(queries::children(&read.client, &read.viewer, id.as_str(), &read.page).await?)
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/ancestors",
    tag = "tenants",
    summary = "Ancestors, parent first",
    params(Id<TenantId>, Paged, Wait),
    responses((status = 200, description = "OK", body = PageBody<TenantView>), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn ancestors(id: Id<TenantId>, read: Read) -> Reply<PageBody<TenantView>> {
    id.found_page(queries::ancestors(&read.client, &read.viewer, id.as_str(), &read.page).await?)
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/descendants",
    tag = "tenants",
    summary = "Descendants with depth (as_of_position / as_of_time: 400, not supported)",
    params(Id<TenantId>, Descendants, Paged, Wait),
    responses((status = 200, description = "OK", body = PageBody<DescendantView>), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn descendants(id: Id<TenantId>, read: Read) -> Reply<PageBody<DescendantView>> {
    // The tree read model holds the tree as it is now; folding every descendant's stream up to
    // a point would cost the subtree's size in event reads. Refused by name, so that nobody
    // mistakes the current tree for the past one.
    if let Some(name) = ["as_of_position", "as_of_time"]
        .into_iter()
        .find(|name| read.params.text(name).is_some())
    {
        return Err(ApiError::BadRequest(format!(
            "`{name}` is not supported on descendants: the tree is only read as it is now \
             (a single tenant as it was: GET /v1/tenants/{{id}}?{name}=)"
        )));
    }
    let max_depth = match read.params.int("max_depth")? {
        None => None,
        Some(d) if (1..=i32::MAX as i64).contains(&d) => Some(d as i32),
        Some(_) => return Err(ApiError::BadRequest("`max_depth` must be ≥ 1".into())),
    };
    let page = &read.page;
    id.found_page(
        queries::descendants(&read.client, &read.viewer, id.as_str(), max_depth, page).await?,
    )
}
