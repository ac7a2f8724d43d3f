//! Operational routes: liveness, readiness, metrics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::problem;
use crate::state::AppState;

pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// Ready when PostgreSQL answers.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let ok = match state.pool.get().await {
        Ok(client) => client.simple_query("select 1").await.is_ok(),
        Err(_) => false,
    };
    if ok {
        "ready".into_response()
    } else {
        problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "PostgreSQL is not reachable",
        )
    }
}

pub(crate) async fn metrics() -> Response {
    match crate::telemetry::prometheus() {
        Some(handle) => handle.render().into_response(),
        None => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "metrics are not installed",
        ),
    }
}
