//! Access grants of a tenant and roles of a user.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::Value;

use plinth_domain::{TenantId, UserId};
use plinth_projections::read::queries::{self, GrantsRefusal};

use super::{begin_read, not_found, parse_id, to_json, PageBody, Params};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

type Q = Query<HashMap<String, String>>;

/// `GET /v1/tenants/{id}/grants`: for the tenant's administrators (403 for its other readers).
pub(crate) async fn tenant_grants(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, TenantId::parse)?;
    let page = params.page()?;
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    match queries::tenant_grants(&client, &viewer, id.as_str(), &page).await? {
        Ok(page) => to_json(PageBody::from(page)),
        Err(GrantsRefusal::NotVisible) => Err(not_found("tenant", id.as_str())),
        Err(GrantsRefusal::NotAdmin) => Err(ApiError::Forbidden(format!(
            "only administrators of {id} may list its grants"
        ))),
    }
}

/// `GET /v1/users/{id}/roles`: for the user itself and platform administrators.
pub(crate) async fn user_roles(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_id(&id, UserId::parse)?;
    let page = params.page()?;
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let page = queries::user_roles(&client, &viewer, id.as_str(), &page)
        .await?
        .ok_or_else(|| not_found("user", id.as_str()))?;
    to_json(PageBody::from(page))
}
