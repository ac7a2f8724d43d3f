//! `GET|POST /api/v1/allow` and `POST /api/v1/allow/bulk`: may the caller do an action on a
//! resource? The permission check of Infratographer's permissions-api
//! (`internal/api/permissions.go`), with its routes, query parameters, request bodies and
//! statuses: 200 with `{}` allowed, 403 denied, 400 for a bad resource id or action; the bulk
//! form answers 200 with `[{"resource_id", "action", "allowed"}]`. Refusals are Plinth's problem documents. Answered from the read
//! models (`?min_position=` waits for them), for people by their roles and resource providers
//! by their scopes (docs/security.md, "Actions").

use axum::body::Bytes;
use axum::Json;
use serde::{Deserialize, Serialize};

use plinth_domain::{Action, Actor, ResourceId};
use plinth_projections::read::queries;

use super::accepts::{AllowQuestion, Wait};
use super::extract::{Read, Reply};
use crate::error::ApiError;
use crate::routes::openapi::AllowProblems;

/// The most actions one `POST` checks.
const MAX_ACTIONS: usize = 100;

/// An allowed check's answer: `{}`, as permissions-api's.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Allowed {}

/// The `POST` form's body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AllowRequest {
    /// 1 to 100 checks; all must be allowed.
    actions: Vec<ActionCheck>,
}

/// One check of the `POST` form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionCheck {
    /// A resource's id (`tnntten-…`, `lctnloc-…`, `resopro-…`, `resoprv-…`).
    resource_id: String,
    /// `<resource>_<verb>` (`loadbalancer_create`).
    action: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/allow",
    tag = "permissions",
    summary = "May the caller do `action` on `resource`? 200 allowed, 403 denied (permissions-api's check)",
    params(AllowQuestion, Wait),
    responses((status = 200, description = "Allowed", body = Allowed), AllowProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn allow(read: Read) -> Reply<Allowed> {
    let check = parse(
        read.params.required("resource")?,
        read.params.required("action")?,
    )?;
    decide(&read, &[check]).await
}

#[utoipa::path(
    post,
    path = "/api/v1/allow",
    tag = "permissions",
    summary = "May the caller do every one of these actions? 200 all allowed, 403 one is not",
    params(Wait),
    request_body = AllowRequest,
    responses((status = 200, description = "Every action allowed", body = Allowed), AllowProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn allow_all(read: Read, body: Bytes) -> Reply<Allowed> {
    let request: AllowRequest = crate::strict_json::from_body(&body, "check request")?;
    if request.actions.is_empty() || request.actions.len() > MAX_ACTIONS {
        return Err(ApiError::BadRequest(format!(
            "invalid check request: 1 to {MAX_ACTIONS} actions, not {}",
            request.actions.len()
        )));
    }
    decide(&read, &parse_all(&request.actions)?).await
}

/// One answer of the bulk form, as permissions-api's `checkActionResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BulkAnswer {
    resource_id: String,
    action: String,
    allowed: bool,
}

#[utoipa::path(
    post,
    path = "/api/v1/allow/bulk",
    tag = "permissions",
    summary = "Which of these actions may the caller do? 200 with an answer per check, in order",
    params(Wait),
    request_body = Vec<ActionCheck>,
    responses((status = 200, description = "One answer per check, in the order asked", body = Vec<BulkAnswer>), AllowProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn allow_bulk(read: Read, body: Bytes) -> Reply<Vec<BulkAnswer>> {
    let request: Vec<ActionCheck> = crate::strict_json::from_body(&body, "check request")?;
    if request.len() > MAX_ACTIONS {
        return Err(ApiError::BadRequest(format!(
            "invalid check request: at most {MAX_ACTIONS} checks, not {}",
            request.len()
        )));
    }
    let checks = parse_all(&request)?;
    let mut answers = Vec::with_capacity(checks.len());
    for (check, (id, action)) in request.into_iter().zip(&checks) {
        let allowed =
            queries::allowed(&read.client, &read.caller.actor, id.as_str(), action).await?;
        answers.push(BulkAnswer {
            resource_id: check.resource_id,
            action: check.action,
            allowed,
        });
    }
    Ok(Json(answers))
}

/// Every check of a `POST` form parsed; a 400 names the first bad one by its index.
fn parse_all(checks: &[ActionCheck]) -> Result<Vec<(ResourceId, Action)>, ApiError> {
    checks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            parse(&c.resource_id, &c.action)
                .map_err(|e| ApiError::BadRequest(format!("invalid check request: check {i}: {e}")))
        })
        .collect()
}

/// A resource id and an action, each checked: a 400 names what is wrong.
fn parse(resource: &str, action: &str) -> Result<(ResourceId, Action), ApiError> {
    let id = ResourceId::parse(resource)
        .map_err(|e| ApiError::BadRequest(format!("error processing resource ID: {e}")))?;
    let action = Action::parse(action).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok((id, action))
}

/// `{}` when the caller may do every check, else a 403 naming the first it may not.
async fn decide(read: &Read, checks: &[(ResourceId, Action)]) -> Reply<Allowed> {
    let actor: &Actor = &read.caller.actor;
    for (id, action) in checks {
        if !queries::allowed(&read.client, actor, id.as_str(), action).await? {
            return Err(ApiError::Forbidden(format!(
                "subject '{}' does not have permission to perform action '{}_{}' on resource '{id}'",
                actor.id(),
                action.resource(),
                action.verb()
            )));
        }
    }
    Ok(Json(Allowed {}))
}
