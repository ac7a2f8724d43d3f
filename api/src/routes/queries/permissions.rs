//! Access grants of a tenant and roles of a user.

use axum::Json;

use plinth_domain::{TenantId, UserId};
use plinth_projections::read::queries::{self, GrantView, GrantsRefusal, RoleView};

use super::accepts::{Paged, Wait};
use super::extract::{Id, Read, Reply};
use super::PageBody;
use crate::error::ApiError;
use crate::routes::openapi::{ReadProblems, RestrictedReadProblems};

/// `GET /v1/tenants/{id}/grants`: for the tenant's administrators (403 for its other readers).
#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/grants",
    tag = "permissions",
    summary = "Access grants in effect at the tenant, direct and inherited, each with its source (tenant admins)",
    params(Id<TenantId>, Paged, Wait),
    responses((status = 200, description = "OK", body = PageBody<GrantView>), RestrictedReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn tenant_grants(id: Id<TenantId>, read: Read) -> Reply<PageBody<GrantView>> {
    match queries::tenant_grants(&read.client, &read.viewer, id.as_str(), &read.page).await? {
        Ok(page) => Ok(Json(page.into())),
        Err(GrantsRefusal::NotVisible) => Err(id.missing()),
        Err(GrantsRefusal::NotAdmin) => Err(ApiError::Forbidden(format!(
            "only administrators of {} may list its grants",
            id.as_str()
        ))),
    }
}

/// `GET /v1/users/{id}/roles`: for the user itself and platform administrators.
#[utoipa::path(
    get,
    path = "/v1/users/{id}/roles",
    tag = "permissions",
    summary = "A user's roles per tenant subtree, with the effective role (the user or a platform admin)",
    params(Id<UserId>, Paged, Wait),
    responses((status = 200, description = "OK", body = PageBody<RoleView>), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn user_roles(id: Id<UserId>, read: Read) -> Reply<PageBody<RoleView>> {
    id.found_page(queries::user_roles(&read.client, &read.viewer, id.as_str(), &read.page).await?)
}
