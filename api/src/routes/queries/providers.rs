//! Providers: one, a tenant's usable ones, and those using a resource provider.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::Value;

use plinth_domain::{ProviderId, ResourceProviderId, TenantId};
use plinth_projections::read::queries;

use super::{begin_read, not_found, parse_id, to_json, PageBody, Params};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

type Q = Query<HashMap<String, String>>;

pub(crate) async fn provider(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, ProviderId::parse)?;
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let provider = queries::provider(&client, &viewer, id.as_str())
        .await?
        .ok_or_else(|| not_found("provider", id.as_str()))?;
    to_json(provider)
}

pub(crate) async fn tenant_providers(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, TenantId::parse)?;
    let page = params.page()?;
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let page = queries::tenant_providers(&client, &viewer, id.as_str(), &page)
        .await?
        .ok_or_else(|| not_found("tenant", id.as_str()))?;
    to_json(PageBody::from(page))
}

pub(crate) async fn resource_provider_providers(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, ResourceProviderId::parse)?;
    let page = params.page()?;
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let page = queries::resource_provider_providers(&client, &viewer, id.as_str(), &page)
        .await?
        .ok_or_else(|| not_found("resource provider", id.as_str()))?;
    to_json(PageBody::from(page))
}
