//! `POST /v1/commands`: submit a command.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use plinth_commands::{CommandError, CommandOutcome, IdempotencyKey, Submission};
use plinth_domain::{Command, DomainError};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::openapi::CommandProblems;
use crate::state::AppState;

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    #[serde(rename = "type")]
    command_type: String,
    #[serde(default)]
    data: serde_json::Value,
    #[serde(default)]
    expected_version: Option<i64>,
}

// The request body as the document describes it. `Envelope` is what is parsed: it keeps `type`
// and `data` as sent, for the idempotency hash and to name the command type in a 400, so this
// type is never built. Its doc comments are the schema's descriptions.
/// A command: its `type`, its `data` (the payload of that type) and an optional expected version.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct CommandRequest {
    #[serde(flatten)]
    command: Command,
    /// Refuse (409 `version-conflict`) unless the target stream is at this version.
    #[schema(minimum = 0)]
    expected_version: Option<i64>,
}

#[utoipa::path(
    post,
    path = "/v1/commands",
    tag = "commands",
    summary = "Submit a command (`Idempotency-Key` header optional)",
    request_body = CommandRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Up to 255 characters: a retry with the same key and request answers the first outcome (200); with another request, 422"),
        ("X-Correlation-Id" = Option<uuid::Uuid>, Header, description = "Recorded on the events; defaults to the command's id"),
        ("X-Causation-Id" = Option<uuid::Uuid>, Header, description = "Recorded on the events"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context, recorded on the events"),
    ),
    responses(
        (status = 201, description = "Committed", body = CommandOutcome),
        (status = 200, description = "Already committed under this `Idempotency-Key`: the first outcome", body = CommandOutcome),
        CommandProblems,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    // Named once the command parses: the log line and the metric labels take no client text.
    let mut command_type = "unknown";
    let result = handle(&state, caller, &headers, &body, &mut command_type).await;
    record_outcome(command_type, &result, started.elapsed());
    result.map(|(status, outcome)| (status, Json(outcome)).into_response())
}

/// One line and one latency sample per command, in the request's span (its request id and
/// trace id): accepted (201, or 200 for an idempotent replay), rejected (a 4xx, with its problem
/// type) or failed (a 5xx). The body is never logged: it is the client's data.
fn record_outcome(
    command: &'static str,
    result: &Result<(StatusCode, CommandOutcome), ApiError>,
    elapsed: Duration,
) {
    let outcome = match result {
        Ok((status, o)) => {
            tracing::info!(
                command,
                outcome = "accepted",
                replayed = *status == StatusCode::OK,
                stream_id = %o.stream_id,
                position = o.position,
                "command"
            );
            "accepted"
        }
        Err(e) if e.status().is_server_error() => {
            tracing::warn!(command, outcome = "failed", problem = e.code(), "command");
            "failed"
        }
        Err(e) => {
            tracing::info!(command, outcome = "rejected", problem = e.code(), "command");
            "rejected"
        }
    };
    metrics::histogram!("plinth_command_duration_seconds", "command" => command, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

async fn handle(
    state: &AppState,
    caller: Caller,
    headers: &HeaderMap,
    body: &[u8],
    command_type: &mut &'static str,
) -> Result<(StatusCode, CommandOutcome), ApiError> {
    // Refused before anything is decided if malformed or readable two ways.
    let envelope: Envelope = crate::strict_json::from_body(body, "command envelope")?;
    if envelope.expected_version.is_some_and(|v| v < 0) {
        return Err(ApiError::BadRequest("expected_version must be ≥ 0".into()));
    }
    let data = if envelope.data.is_null() {
        serde_json::json!({})
    } else {
        envelope.data
    };
    let idempotency = idempotency_key(headers)?.map(|key| IdempotencyKey {
        key,
        request_hash: request_hash(&envelope.command_type, &data, envelope.expected_version),
    });
    let command = Command::parse(&envelope.command_type, data).map_err(|e| {
        ApiError::BadRequest(format!("invalid {} command: {e}", envelope.command_type))
    })?;
    *command_type = command.command_type();

    let command_id = Uuid::now_v7();
    let submission = Submission {
        actor: caller.actor,
        command,
        expected_version: envelope.expected_version,
        idempotency,
        command_id,
        correlation_id: uuid_header(headers, "x-correlation-id")?.unwrap_or(command_id),
        causation_id: uuid_header(headers, "x-causation-id")?,
        traceparent: text_header(headers, "traceparent", 128)?,
    };
    let (outcome, replayed) = match state.bus.submit(submission).await {
        Err(CommandError::Domain(DomainError::HasDependents { id })) => {
            return Err(has_dependents(state, id).await)
        }
        submitted => submitted?,
    };
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, outcome))
}

/// The hash an idempotency key is stored with: of the request's canonical form (keys sorted),
/// so that the same request always hashes the same, in every release (keys outlive them).
/// Computed only for requests that carry a key.
fn request_hash(
    command_type: &str,
    data: &serde_json::Value,
    expected_version: Option<i64>,
) -> Vec<u8> {
    let canonical = serde_json::json!({
        "type": command_type,
        "data": data,
        "expected_version": expected_version,
    });
    Sha256::digest(canonical.to_string().as_bytes()).to_vec()
}

/// How many dependents a refused delete names.
const NAMED_DEPENDENTS: i64 = 100;

/// A refused delete, naming what still depends on the target.
async fn has_dependents(state: &AppState, id: String) -> ApiError {
    match state.store.live_dependents(&id, NAMED_DEPENDENTS).await {
        Ok(dependents) => ApiError::HasDependents { id, dependents },
        // The refusal stands without the names: a failed lookup must not turn it into a 5xx.
        Err(e) => {
            tracing::warn!(error = %e, %id, "could not list the dependents of a refused delete");
            ApiError::Command(CommandError::Domain(DomainError::HasDependents { id }))
        }
    }
}

fn text_header(headers: &HeaderMap, name: &str, max: usize) -> Result<Option<String>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| ApiError::BadRequest(format!("{name} must be visible ASCII")))?;
            if s.is_empty() || s.len() > max {
                return Err(ApiError::BadRequest(format!(
                    "{name} must be 1 to {max} characters"
                )));
            }
            Ok(Some(s.to_owned()))
        }
    }
}

fn uuid_header(headers: &HeaderMap, name: &str) -> Result<Option<Uuid>, ApiError> {
    text_header(headers, name, 64)?
        .map(|s| {
            Uuid::parse_str(&s).map_err(|_| ApiError::BadRequest(format!("{name} must be a UUID")))
        })
        .transpose()
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    text_header(headers, "idempotency-key", 255)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requests_hash_is_the_one_stored_keys_were_made_with() {
        // sha256 of `{"data":{"name":"Nicole Corp"},"expected_version":null,"type":"CreateTenant"}`:
        // a key stored by an earlier release must still match its own retry.
        let hash = request_hash(
            "CreateTenant",
            &serde_json::json!({"name": "Nicole Corp"}),
            None,
        );
        assert_eq!(
            hex(&hash),
            "19123af66288592a4fdc55ee22ab97b80e60a1584e94033f2c81a92fc9849636"
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
