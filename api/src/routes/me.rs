//! `GET /v1/me`: the caller as a user (recorded on first call by the `Caller` extractor).

use axum::Json;
use serde_json::{json, Value};

use crate::auth::Caller;

pub(crate) async fn me(caller: Caller) -> Json<Value> {
    Json(json!({
        "id": caller.actor.user_id,
        "issuer": caller.issuer,
        "subject": caller.subject,
        "platform_admin": caller.actor.platform_admin,
    }))
}
