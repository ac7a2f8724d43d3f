//! Locations, resource providers, the access check and metadata.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};

use plinth_domain::values::QualifiedName;
use plinth_domain::{LocationId, ResourceId, ResourceProviderId, Scope, TenantId};
use plinth_projections::read::queries;

use super::{begin_read, not_found, parse_id, to_json, PageBody, Params};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

type Q = Query<HashMap<String, String>>;

pub(crate) async fn tenant_locations(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, TenantId::parse)?;
    let page = params.page()?;
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let page = queries::tenant_locations(&client, &viewer, id.as_str(), &page)
        .await?
        .ok_or_else(|| not_found("tenant", id.as_str()))?;
    to_json(PageBody::from(page))
}

pub(crate) async fn tenant_resource_providers(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, TenantId::parse)?;
    let page = params.page()?;
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let page = queries::tenant_resource_providers(&client, &viewer, id.as_str(), &page)
        .await?
        .ok_or_else(|| not_found("tenant", id.as_str()))?;
    to_json(PageBody::from(page))
}

pub(crate) async fn location(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, LocationId::parse)?;
    if let Some(as_of) = super::log::as_of(&state, &caller, &params, id.as_str()).await? {
        return Ok(Json(as_of));
    }
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let location = queries::location(&client, &viewer, id.as_str())
        .await?
        .ok_or_else(|| not_found("location", id.as_str()))?;
    to_json(location)
}

pub(crate) async fn location_tenants(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, LocationId::parse)?;
    let page = params.page()?;
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let page = queries::location_tenants(&client, &viewer, id.as_str(), &page)
        .await?
        .ok_or_else(|| not_found("location", id.as_str()))?;
    to_json(PageBody::from(page))
}

pub(crate) async fn resource_provider(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, ResourceProviderId::parse)?;
    if let Some(as_of) = super::log::as_of(&state, &caller, &params, id.as_str()).await? {
        return Ok(Json(as_of));
    }
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let rp = queries::resource_provider(&client, &viewer, id.as_str())
        .await?
        .ok_or_else(|| not_found("resource provider", id.as_str()))?;
    to_json(rp)
}

pub(crate) async fn resource_provider_tenants(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, ResourceProviderId::parse)?;
    let page = params.page()?;
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let page = queries::resource_provider_tenants(&client, &viewer, id.as_str(), &page)
        .await?
        .ok_or_else(|| not_found("resource provider", id.as_str()))?;
    to_json(PageBody::from(page))
}

/// `GET /v1/access/check?resource_provider_id=&tenant_id=&scope=`. Readable by whoever may
/// see the tenant, or the resource provider's owner (the provider asking where it may act).
pub(crate) async fn access_check(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let rp = parse_id(
        params.required("resource_provider_id")?,
        ResourceProviderId::parse,
    )?;
    let tenant = parse_id(params.required("tenant_id")?, TenantId::parse)?;
    let scope = parse_id(params.required("scope")?, Scope::parse)?;
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let sees_tenant = queries::can_view_tenant(&client, &viewer, tenant.as_str()).await?;
    let sees_rp = sees_tenant
        || queries::visible_resource(&client, &viewer, rp.as_str(), true)
            .await?
            .is_some();
    if !sees_rp {
        return Err(ApiError::NotFound(format!(
            "neither {tenant} nor {rp} exists or is visible to you"
        )));
    }
    let allowed = queries::access_check(&client, rp.as_str(), tenant.as_str(), &scope).await?;
    Ok(Json(json!({ "allowed": allowed })))
}

pub(crate) async fn metadata(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, ResourceId::parse)?;
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let metadata = queries::metadata(&client, &viewer, id.as_str())
        .await?
        .ok_or_else(|| not_found("resource", id.as_str()))?;
    to_json(metadata)
}

/// `GET /v1/tenants/{id}/resources?annotation=key=value`.
pub(crate) async fn annotated_resources(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, TenantId::parse)?;
    let (key, value) = params
        .required("annotation")?
        .split_once('=')
        .ok_or_else(|| ApiError::BadRequest("`annotation` must be `key=value`".into()))?;
    let key = parse_id(key, QualifiedName::parse)?;
    let page = params.page()?;
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let page =
        queries::annotated_resources(&client, &viewer, id.as_str(), key.as_str(), value, &page)
            .await?
            .ok_or_else(|| not_found("tenant", id.as_str()))?;
    to_json(PageBody::from(page))
}
