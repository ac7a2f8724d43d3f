//! Reads of the log itself: a stream's events, the audit log, and temporal reads (state folded
//! from a stream's events up to a position or a time).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};

use plinth_domain::{Aggregate, AggregateKind, Body, TenantId, UserId};
use plinth_projections::read::queries::{self, AuditFilter, AuditRefusal};

use super::{begin_read, not_found, parse_id, to_json, PageBody, Params};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

type Q = Query<HashMap<String, String>>;

/// Any stream id: a resource's, or a user's.
fn parse_stream_id(raw: &str) -> Result<String, ApiError> {
    if AggregateKind::of_stream(raw).is_some() {
        return Ok(raw.to_owned());
    }
    // Not a known kind: let the tenant parser say what is wrong with it.
    parse_id(raw, TenantId::parse).map(|t| t.to_string())
}

pub(crate) async fn stream_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let id = parse_stream_id(&id)?;
    let page = params.page()?;
    if page
        .after
        .as_deref()
        .is_some_and(|a| a.parse::<i64>().is_err())
    {
        return Err(ApiError::BadRequest(
            "`after` is not a cursor from `next`".into(),
        ));
    }
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    let page = queries::stream_events(&client, &viewer, &id, &page)
        .await?
        .ok_or_else(|| not_found("stream", &id))?;
    to_json(PageBody::from(page))
}

/// `GET /v1/audit?tenant_id=&stream_id=&actor=&correlation_id=&event_type=&since=&until=`,
/// paged in the log's order.
pub(crate) async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(q);
    let page = params.page()?;
    if page
        .after
        .as_deref()
        .is_some_and(|a| queries::audit_cursor(a).is_none())
    {
        return Err(ApiError::BadRequest(
            "`after` is not a cursor from `next`".into(),
        ));
    }
    let filter = AuditFilter {
        tenant_id: params
            .text("tenant_id")
            .map(|t| parse_id(t, TenantId::parse).map(|t| t.to_string()))
            .transpose()?,
        stream_id: params.text("stream_id").map(parse_stream_id).transpose()?,
        actor: params
            .text("actor")
            .map(|a| parse_id(a, UserId::parse).map(|u| u.to_string()))
            .transpose()?,
        correlation_id: params
            .text("correlation_id")
            .map(|c| {
                uuid::Uuid::parse_str(c)
                    .map_err(|_| ApiError::BadRequest("`correlation_id` must be a UUID".into()))
            })
            .transpose()?,
        event_type: match params.text("event_type") {
            Some(t) if plinth_domain::Event::TYPES.contains(&t) => Some(t.to_owned()),
            Some(t) => return Err(ApiError::BadRequest(format!("`{t}` is not an event type"))),
            None => None,
        },
        since: params.time("since")?,
        until: params.time("until")?,
    };
    let (client, viewer) = begin_read(&state, &caller, &params).await?;
    match queries::audit(&client, &viewer, &filter, &page).await? {
        Ok(page) => to_json(PageBody::from(page)),
        Err(AuditRefusal::TenantNotVisible) => Err(not_found(
            "tenant",
            filter.tenant_id.as_deref().unwrap_or_default(),
        )),
        Err(AuditRefusal::NeedsTenant) => Err(ApiError::Forbidden(
            "only platform administrators may read the whole audit log; pass `tenant_id`".into(),
        )),
    }
}

/// A temporal read, when `?as_of_position=` or `?as_of_time=` is given: the stream folded
/// from its events up to that point. Authorized against the resource as it is now.
pub(crate) async fn as_of(
    state: &AppState,
    caller: &Caller,
    params: &Params,
    id: &str,
) -> Result<Option<Value>, ApiError> {
    let position = params.int("as_of_position")?;
    let time = params.time("as_of_time")?;
    if position.is_none() && time.is_none() {
        return Ok(None);
    }
    if position.is_some() && time.is_some() {
        return Err(ApiError::BadRequest(
            "give `as_of_position` or `as_of_time`, not both".into(),
        ));
    }
    let (client, viewer) = begin_read(state, caller, params).await?;
    if queries::visible_resource(&client, &viewer, id, true)
        .await?
        .is_none()
    {
        return Err(not_found("resource", id));
    }
    let position = match (position, time) {
        (Some(p), _) => Some(p),
        (None, Some(t)) => plinth_commands::log::stream_position_at(&client, id, t).await?,
        (None, None) => None,
    };
    drop(client);
    let Some(position) = position else {
        return Err(not_found("resource at that time", id));
    };
    let aggregate = state
        .store
        .fold_stream(id, position)
        .await?
        .ok_or_else(|| not_found("resource at that position", id))?;
    Ok(Some(temporal_view(&aggregate, position)))
}

/// The folded state, shaped like the current views plus what only the fold knows.
fn temporal_view(agg: &Aggregate, position: i64) -> Value {
    let mut view = match &agg.body {
        Body::Tenant(t) => json!({
            "id": agg.id,
            "name": t.name,
            "description": t.description,
            "parent_id": t.parent_id,
            "depth": t.path.len(),
            "ancestors": t.path,
        }),
        Body::Location(l) => json!({
            "id": agg.id,
            "tenant_id": l.tenant_id,
            "name": l.name,
            "description": l.description,
            "available_to": l.available_to.iter()
                .map(|(t, inc)| json!({"tenant_id": t, "include_subtenants": inc}))
                .collect::<Vec<_>>(),
        }),
        Body::ResourceProvider(r) => json!({
            "id": agg.id,
            "tenant_id": r.tenant_id,
            "name": r.name,
            "description": r.description,
            "scopes": r.scopes,
            "locations": r.locations,
            "available_to": r.available_to.iter()
                .map(|(t, inc)| json!({"tenant_id": t, "include_subtenants": inc}))
                .collect::<Vec<_>>(),
            "authorizations": r.authorizations.iter()
                .map(|(t, a)| json!({"tenant_id": t, "include_subtenants": a.include_subtenants, "scopes": a.scopes}))
                .collect::<Vec<_>>(),
        }),
        Body::Provider(p) => json!({
            "id": agg.id,
            "tenant_id": p.tenant_id,
            "resource_provider_id": p.resource_provider_id,
            "name": p.name,
        }),
        Body::User(u) => json!({"id": agg.id, "issuer": u.issuer, "subject": u.subject}),
    };
    view["lifecycle"] = json!(agg.lifecycle.as_str());
    view["metadata"] = json!({
        "annotations": agg.metadata.annotations,
        "statuses": agg.metadata.statuses,
        "finalizers": agg.metadata.finalizers,
        "deletion_requested_at": agg.metadata.deletion_requested_at,
    });
    view["as_of_position"] = json!(position);
    view
}
