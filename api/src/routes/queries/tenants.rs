//! The tenant tree: roots, a tenant (now or as of a point in the log), children, ancestors,
//! descendants.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::Value;

use plinth_domain::TenantId;
use plinth_projections::read::queries;

use super::{begin_read, not_found, parse_id, to_json, PageBody, Params};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

type Q = Query<HashMap<String, String>>;

pub(crate) async fn roots(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let page = params.page()?;
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let roots = queries::roots(&client, &viewer, &page).await?;
    to_json(PageBody::from(roots))
}

pub(crate) async fn tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, TenantId::parse)?;
    if let Some(as_of) = super::log::as_of(&state, &caller, &params, id.as_str()).await? {
        return Ok(Json(as_of));
    }
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let tenant = queries::tenant(&client, &viewer, id.as_str())
        .await?
        .ok_or_else(|| not_found("tenant", id.as_str()))?;
    to_json(tenant)
}

pub(crate) async fn children(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, TenantId::parse)?;
    let page = params.page()?;
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let page = queries::children(&client, &viewer, id.as_str(), &page)
        .await?
        .ok_or_else(|| not_found("tenant", id.as_str()))?;
    to_json(PageBody::from(page))
}

pub(crate) async fn ancestors(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, TenantId::parse)?;
    let page = params.page()?;
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let page = queries::ancestors(&client, &viewer, id.as_str(), &page)
        .await?
        .ok_or_else(|| not_found("tenant", id.as_str()))?;
    to_json(PageBody::from(page))
}

pub(crate) async fn descendants(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, TenantId::parse)?;
    // The tree read model holds the tree as it is now; folding every descendant's stream up to
    // a point would cost the subtree's size in event reads. Refused by name, so that nobody
    // mistakes the current tree for the past one.
    if let Some(name) = ["as_of_position", "as_of_time"]
        .into_iter()
        .find(|name| params.text(name).is_some())
    {
        return Err(ApiError::BadRequest(format!(
            "`{name}` is not supported on descendants: the tree is only read as it is now \
             (a single tenant as it was: GET /v1/tenants/{{id}}?{name}=)"
        )));
    }
    let page = params.page()?;
    let max_depth = match params.int("max_depth")? {
        None => None,
        Some(d) if (1..=i32::MAX as i64).contains(&d) => Some(d as i32),
        Some(_) => return Err(ApiError::BadRequest("`max_depth` must be ≥ 1".into())),
    };
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let page = queries::descendants(&client, &viewer, id.as_str(), max_depth, &page)
        .await?
        .ok_or_else(|| not_found("tenant", id.as_str()))?;
    to_json(PageBody::from(page))
}
