//! Locations, resource providers, the access check and metadata.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use plinth_domain::values::QualifiedName;
use plinth_domain::{LocationId, ResourceId, ResourceProviderId, Scope, TenantId};
use plinth_projections::read::queries::{
    self, AnnotatedResource, LocationDetail, MetadataView, ResourceProviderDetail,
    TenantResourceProvider, TenantUse, UsableLocation,
};

use super::accepts::{AccessQuestion, Annotation, AsOf, Paged, Wait};
use super::extract::{parse, Id, Read, Reply};
use super::log::{as_of, now, NowOrThen};
use super::PageBody;
use crate::error::ApiError;
use crate::routes::openapi::ReadProblems;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/locations",
    tag = "locations",
    summary = "Locations usable by the tenant (owned or available)",
    params(Id<TenantId>, Paged, Wait),
    responses((status = 200, description = "OK", body = PageBody<UsableLocation>), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn tenant_locations(
    id: Id<TenantId>,
    read: Read,
) -> Reply<PageBody<UsableLocation>> {
    id.found_page(
        queries::tenant_locations(&read.client, &read.viewer, id.as_str(), &read.page).await?,
    )
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/resource-providers",
    tag = "resource providers",
    summary = "Resource providers available in the tenant",
    params(Id<TenantId>, Paged, Wait),
    responses((status = 200, description = "OK", body = PageBody<TenantResourceProvider>), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn tenant_resource_providers(
    id: Id<TenantId>,
    read: Read,
) -> Reply<PageBody<TenantResourceProvider>> {
    id.found_page(
        queries::tenant_resource_providers(&read.client, &read.viewer, id.as_str(), &read.page)
            .await?,
    )
}

#[utoipa::path(
    get,
    path = "/v1/locations/{id}",
    tag = "locations",
    summary = "A location with its metadata and the availability the caller may know of (temporal with as_of_position / as_of_time)",
    params(Id<LocationId>, Wait, AsOf),
    responses((status = 200, description = "The location; with `as_of_*`, as it was then", body = NowOrThen<LocationDetail>), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn location(
    State(state): State<AppState>,
    id: Id<LocationId>,
    read: Read,
) -> Reply<NowOrThen<LocationDetail>> {
    if let Some(then) = as_of(&state, &read, &id).await? {
        return Ok(then);
    }
    now(id.found(queries::location(&read.client, &read.viewer, id.as_str()).await?))
}

#[utoipa::path(
    get,
    path = "/v1/locations/{id}/tenants",
    tag = "locations",
    summary = "Tenants that may use the location",
    params(Id<LocationId>, Paged, Wait),
    responses((status = 200, description = "OK", body = PageBody<TenantUse>), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn location_tenants(id: Id<LocationId>, read: Read) -> Reply<PageBody<TenantUse>> {
    id.found_page(
        queries::location_tenants(&read.client, &read.viewer, id.as_str(), &read.page).await?,
    )
}

#[utoipa::path(
    get,
    path = "/v1/resource-providers/{id}",
    tag = "resource providers",
    summary = "A resource provider with scopes, live locations, metadata and the availability the caller may know of (temporal too)",
    params(Id<ResourceProviderId>, Wait, AsOf),
    responses((status = 200, description = "The resource provider; with `as_of_*`, as it was then", body = NowOrThen<ResourceProviderDetail>), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn resource_provider(
    State(state): State<AppState>,
    id: Id<ResourceProviderId>,
    read: Read,
) -> Reply<NowOrThen<ResourceProviderDetail>> {
    if let Some(then) = as_of(&state, &read, &id).await? {
        return Ok(then);
    }
    now(id.found(queries::resource_provider(&read.client, &read.viewer, id.as_str()).await?))
}

#[utoipa::path(
    get,
    path = "/v1/resource-providers/{id}/tenants",
    tag = "resource providers",
    summary = "Tenants where it holds access, with scopes",
    params(Id<ResourceProviderId>, Paged, Wait),
    responses((status = 200, description = "OK", body = PageBody<TenantUse>), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn resource_provider_tenants(
    id: Id<ResourceProviderId>,
    read: Read,
) -> Reply<PageBody<TenantUse>> {
    id.found_page(
        queries::resource_provider_tenants(&read.client, &read.viewer, id.as_str(), &read.page)
            .await?,
    )
}

/// The access check's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Allowed {
    allowed: bool,
}

/// `GET /v1/access/check?resource_provider_id=&tenant_id=&scope=`. Readable by whoever may
/// see the tenant, or the resource provider's owner (the provider asking where it may act).
#[utoipa::path(
    get,
    path = "/v1/access/check",
    tag = "resource providers",
    summary = "Does a resource provider hold a scope in a tenant?",
    params(AccessQuestion, Wait),
    responses((status = 200, description = "OK", body = Allowed), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn access_check(read: Read) -> Reply<Allowed> {
    let rp: ResourceProviderId = parse(read.params.required("resource_provider_id")?)?;
    let tenant: TenantId = parse(read.params.required("tenant_id")?)?;
    let scope = Scope::parse(read.params.required("scope")?)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (client, viewer) = (&read.client, &read.viewer);
    let sees_tenant = queries::can_view_tenant(client, viewer, tenant.as_str()).await?;
    let sees_rp = sees_tenant
        || queries::visible_resource(client, viewer, rp.as_str(), true)
            .await?
            .is_some();
    if !sees_rp {
        return Err(ApiError::NotFound(format!(
            "neither {tenant} nor {rp} exists or is visible to you"
        )));
    }
    let allowed = queries::access_check(client, rp.as_str(), tenant.as_str(), &scope).await?;
    Ok(Json(Allowed { allowed }))
}

#[utoipa::path(
    get,
    path = "/v1/resources/{id}/metadata",
    tag = "metadata",
    summary = "Annotations, statuses, finalizers",
    params(Id<ResourceId>, Wait),
    responses((status = 200, description = "OK", body = MetadataView), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn metadata(id: Id<ResourceId>, read: Read) -> Reply<MetadataView> {
    id.found(queries::metadata(&read.client, &read.viewer, id.as_str()).await?)
}

/// `GET /v1/tenants/{id}/resources?annotation=key=value`.
#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/resources",
    tag = "metadata",
    summary = "The subtree's resources of every kind carrying an annotation (`annotation=key=value`)",
    params(Id<TenantId>, Annotation, Paged, Wait),
    responses((status = 200, description = "OK", body = PageBody<AnnotatedResource>), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn annotated_resources(
    id: Id<TenantId>,
    read: Read,
) -> Reply<PageBody<AnnotatedResource>> {
    let (key, value) = read
        .params
        .required("annotation")?
        .split_once('=')
        .ok_or_else(|| ApiError::BadRequest("`annotation` must be `key=value`".into()))?;
    let key = QualifiedName::parse(key).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    id.found_page(
        queries::annotated_resources(
            &read.client,
            &read.viewer,
            id.as_str(),
            key.as_str(),
            value,
            &read.page,
        )
        .await?,
    )
}
