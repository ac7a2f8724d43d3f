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

/// Ready when PostgreSQL answers, the migrations are applied and the projections are within
/// `PLINTH_READY_MAX_LAG_EVENTS` of the log; otherwise 503 naming each reason. With read
/// replicas, one line per replica follows: in or out of rotation, and its lag.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness (PostgreSQL reachable, migrations applied, projections caught up)",
    responses((status = 200, description = "`ready`", body = String, content_type = "text/plain"), OpsProblems),
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    // Each read replica's state and lag, after the verdict: a replica out of rotation does
    // not make the process unready (the primary answers its reads).
    let replicas = state.replicas.describe();
    match crate::health::readiness(&state).await {
        Ok(()) if replicas.is_empty() => "ready".into_response(),
        Ok(()) => format!("ready\n{}\n", replicas.join("\n")).into_response(),
        Err(mut reasons) => {
            reasons.extend(replicas);
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                &format!("not ready: {}", reasons.join("; ")),
            )
        }
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    responses((status = 200, description = "The Prometheus text format", body = String, content_type = "text/plain"), OpsProblems),
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = crate::telemetry::prometheus() else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "metrics are not installed",
        );
    };
    crate::health::sample_for_scrape(&state).await;
    handle.render().into_response()
}
