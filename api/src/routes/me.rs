//! `GET /v1/me`: the caller: a person (recorded on first call by the `Caller` extractor) or a
//! resource provider signed in with a bound identity.

use axum::Json;
use serde::Serialize;

use plinth_domain::Principal;

use crate::auth::Caller;
use crate::routes::openapi::CallerProblems;

/// The caller.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Me {
    /// The user's id, or the resource provider's when `kind` is `resource_provider`: the id
    /// the events the caller causes record as their actor.
    id: String,
    /// `user` (a person) or `resource_provider` (its identity is bound to that provider).
    kind: &'static str,
    /// The token's issuer (`iss`).
    issuer: String,
    /// The token's subject (`sub`).
    subject: String,
    platform_admin: bool,
}

#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "users",
    summary = "The caller: a user (recorded on first call) or a resource provider",
    responses((status = 200, description = "OK", body = Me), CallerProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn me(caller: Caller) -> Json<Me> {
    let kind = match &caller.actor.principal {
        Principal::User(_) => "user",
        Principal::ResourceProvider { .. } => "resource_provider",
    };
    Json(Me {
        id: caller.actor.id().to_owned(),
        kind,
        issuer: caller.issuer,
        subject: caller.subject,
        platform_admin: caller.actor.platform_admin,
    })
}
