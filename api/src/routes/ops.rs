//! Operational routes: liveness, readiness, metrics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::problem;
use crate::routes::openapi::OpsProblems;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")),
)]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// Ready when PostgreSQL answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness (PostgreSQL reachable)",
    responses((status = 200, description = "`ready`", body = String, content_type = "text/plain"), OpsProblems),
)]
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

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    responses((status = 200, description = "The Prometheus text format", body = String, content_type = "text/plain"), OpsProblems),
)]
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
