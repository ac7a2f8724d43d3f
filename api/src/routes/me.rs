//! `GET /v1/me`: the caller as a user (recorded on first call by the `Caller` extractor).

use axum::Json;
use serde::Serialize;

use plinth_domain::UserId;

use crate::auth::Caller;
use crate::routes::openapi::CallerProblems;

/// The caller as a user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Me {
    id: UserId,
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
    summary = "The caller as a user (recorded on first call)",
    responses((status = 200, description = "OK", body = Me), CallerProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        id: caller.actor.user_id,
        issuer: caller.issuer,
        subject: caller.subject,
        platform_admin: caller.actor.platform_admin,
    })
}
