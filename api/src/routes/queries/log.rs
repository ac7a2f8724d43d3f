//! Reads of the log itself: a stream's events, the audit log, and temporal reads (state folded
//! from a stream's events up to a position or a time).

use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use plinth_domain::{Aggregate, Body, ResourceProviderId, TenantId, UserId};
use plinth_projections::read::queries::{self, AuditFilter, AuditItem, AuditRefusal};

use super::accepts::{AuditFilters, Paged, Wait};
use super::extract::{parse, Id, Read, Reply, RouteId, StreamId};
use super::{not_found, PageBody};
use crate::error::ApiError;
use crate::routes::openapi::{ReadProblems, RestrictedReadProblems};
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/v1/streams/{id}/events",
    tag = "log",
    summary = "A stream's events",
    params(Id<StreamId>, Paged, Wait),
    responses((status = 200, description = "OK", body = PageBody<AuditItem>), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn stream_events(id: Id<StreamId>, read: Read) -> Reply<PageBody<AuditItem>> {
    if read
        .page
        .after
        .as_deref()
        .is_some_and(|a| a.parse::<i64>().is_err())
    {
        return Err(ApiError::BadRequest(
            "`after` is not a cursor from `next`".into(),
        ));
    }
    id.found_page(
        queries::stream_events(&read.client, &read.viewer, id.as_str(), &read.page).await?,
    )
}

/// `GET /v1/audit?tenant_id=&stream_id=&actor=&correlation_id=&event_type=&since=&until=`,
/// paged in the log's order.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "log",
    summary = "Audit log in the log's order (tenant_id means its subtree)",
    params(AuditFilters, Paged, Wait),
    responses((status = 200, description = "OK", body = PageBody<AuditItem>), RestrictedReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn audit(read: Read) -> Reply<PageBody<AuditItem>> {
    let params = &read.params;
    if read
        .page
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
            .map(|t| parse::<TenantId>(t).map(|t| t.to_string()))
            .transpose()?,
        stream_id: params
            .text("stream_id")
            .map(|s| parse::<StreamId>(s).map(|s| s.to_string()))
            .transpose()?,
        actor: params
            .text("actor")
            .map(|a| {
                // A person or a resource provider (docs/security.md, "Principals").
                parse::<ResourceProviderId>(a)
                    .map(|p| p.to_string())
                    .or_else(|_| parse::<UserId>(a).map(|u| u.to_string()))
            })
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
    match queries::audit(&read.client, &read.viewer, &filter, &read.page).await? {
        Ok(page) => Ok(Json(page.into())),
        Err(AuditRefusal::TenantNotVisible) => Err(not_found(
            "tenant",
            filter.tenant_id.as_deref().unwrap_or_default(),
        )),
        Err(AuditRefusal::NeedsTenant) => Err(ApiError::Forbidden(
            "only platform administrators may read the whole audit log; pass `tenant_id`".into(),
        )),
    }
}

/// A resource as it is now, or as it was (`?as_of_position=` / `?as_of_time=`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum NowOrThen<T> {
    Now(T),
    /// The resource folded from its stream up to `as_of_position` (or the last position at
    /// `as_of_time`): the current view's fields, with `as_of_position`.
    Then(Value),
}

/// A temporal read, when `?as_of_position=` or `?as_of_time=` is given: the stream folded
/// from its events up to that point. Authorized against the resource as it is now.
pub(crate) async fn as_of<I: RouteId, T>(
    state: &AppState,
    read: &Read,
    id: &Id<I>,
) -> Result<Option<Json<NowOrThen<T>>>, ApiError> {
    let id = id.as_str();
    let position = read.params.int("as_of_position")?;
    let time = read.params.time("as_of_time")?;
    if position.is_none() && time.is_none() {
        return Ok(None);
    }
    if position.is_some() && time.is_some() {
        return Err(ApiError::BadRequest(
            "give `as_of_position` or `as_of_time`, not both".into(),
        ));
    }
    if queries::visible_resource(&read.client, &read.viewer, id, true)
        .await?
        .is_none()
    {
        return Err(not_found("resource", id));
    }
    let position = match (position, time) {
        (Some(p), _) => Some(p),
        (None, Some(t)) => plinth_commands::log::stream_position_at(&read.client, id, t).await?,
        (None, None) => None,
    };
    let Some(position) = position else {
        return Err(not_found("resource at that time", id));
    };
    let aggregate = state
        .store
        .fold_stream(id, position)
        .await?
        .ok_or_else(|| not_found("resource at that position", id))?;
    Ok(Some(Json(NowOrThen::Then(temporal_view(
        &aggregate, position,
    )))))
}

/// The current read of a resource, as the body of a route that also answers temporal reads.
pub(crate) fn now<T>(reply: Reply<T>) -> Reply<NowOrThen<T>> {
    reply.map(|Json(now)| Json(NowOrThen::Now(now)))
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
