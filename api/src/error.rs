//! The API's one error type, rendered as RFC 9457 `application/problem+json`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use plinth_commands::CommandError;
use plinth_domain::DomainError;

/// Every way a request can fail. Each variant's doc names its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed JSON, unknown fields, invalid ids or values.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no bearer token, or one that does not verify.
    #[error("{0}")]
    Unauthenticated(String),
    /// 413: the body exceeds the limit.
    #[error("the request body exceeds {0} bytes")]
    TooLarge(usize),
    /// 503 with Retry-After: a read could not catch up in time, or a dependency is down.
    #[error("{detail}")]
    Unavailable {
        detail: String,
        retry_after_secs: u32,
    },
    /// 429 with Retry-After: the caller is over its rate limit (`PLINTH_RATE_LIMIT`).
    #[error("over the rate limit of this caller; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u32 },
    /// 403, 404, 409 or 422 from the write side, or 5xx for its failures.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// 404 for reads.
    #[error("{0}")]
    NotFound(String),
    /// 403 for reads.
    #[error("{0}")]
    Forbidden(String),
    /// 409: a delete refused while live dependents remain; the problem lists them
    /// (`dependents`), so the client knows what to remove first.
    #[error("{id} still has live dependents: {}", dependents.join(", "))]
    HasDependents { id: String, dependents: Vec<String> },
    /// 500: logged in full, answered with a generic body.
    #[error(transparent)]
    Internal(anyhow::Error),
}

/// A failure from below: 503 when the database is unreachable (it may be back in a moment),
/// 500 for anything else.
impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        if plinth_commands::database_unreachable(&error) {
            tracing::warn!(error = format!("{error:#}"), "database unavailable");
            Self::Unavailable {
                detail: "the database is unavailable; retry shortly".into(),
                retry_after_secs: 1,
            }
        } else {
            Self::Internal(error)
        }
    }
}

impl ApiError {
    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The problem type's code (`urn:plinth:problem:<code>`).
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::BadRequest(d) => (StatusCode::BAD_REQUEST, "bad-request", d.clone()),
            Self::Unauthenticated(d) => (StatusCode::UNAUTHORIZED, "unauthenticated", d.clone()),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too-large", self.to_string()),
            Self::Unavailable { detail, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                detail.clone(),
            ),
            Self::TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                self.to_string(),
            ),
            Self::NotFound(d) => (StatusCode::NOT_FOUND, "not-found", d.clone()),
            Self::Forbidden(d) => (StatusCode::FORBIDDEN, "forbidden", d.clone()),
            Self::HasDependents { .. } => {
                (StatusCode::CONFLICT, "has-dependents", self.to_string())
            }
            Self::Command(CommandError::Domain(e)) => (domain_status(e), e.code(), e.to_string()),
            Self::Command(CommandError::VersionConflict { .. }) => {
                (StatusCode::CONFLICT, "version-conflict", self.to_string())
            }
            Self::Command(CommandError::IdempotencyKeyReused { .. }) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                self.to_string(),
            ),
            Self::Command(CommandError::Unavailable(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the event store is unavailable".into(),
            ),
            Self::Command(CommandError::Internal(_)) | Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; it has been logged".into(),
            ),
        }
    }
}

/// The status of each kind of refusal: what the domain decided, in HTTP's words.
fn domain_status(error: &DomainError) -> StatusCode {
    use DomainError as E;
    match error {
        E::NotFound { .. } => StatusCode::NOT_FOUND,
        E::Forbidden { .. }
        | E::IdentityNotBound { .. }
        | E::ScopeNotHeld { .. }
        | E::NotOwnName { .. } => StatusCode::FORBIDDEN,
        E::Deleting { .. }
        | E::HasDependents { .. }
        | E::NameTaken { .. }
        | E::IdentityIsAPerson { .. } => StatusCode::CONFLICT,
        E::NotStrictDescendant { .. }
        | E::NotAvailable { .. }
        | E::LocationNotUsable { .. }
        | E::ScopesNotRequested { .. }
        | E::NoScopes => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// A problem document (RFC 9457), the body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:plinth:problem:<code>`, e.g. `urn:plinth:problem:not-found`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The status's reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for a person to read.
    pub detail: String,
    /// What still depends on the target of a refused delete (409 `has-dependents` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependents: Option<Vec<String>>,
}

/// Renders a problem document.
pub fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    problem_with(status, code, detail, None)
}

/// Renders a problem document, with the dependents of a refused delete when there are some.
fn problem_with(
    status: StatusCode,
    code: &str,
    detail: &str,
    dependents: Option<Vec<String>>,
) -> Response {
    let body = Problem {
        problem_type: format!("urn:plinth:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: detail.to_owned(),
        dependents,
    };
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, detail) = self.parts();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Expected while a dependency is down or a read waits; not a bug.
            tracing::warn!(error = ?self, "request refused for now");
        } else if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        }
        if let Self::HasDependents { dependents, .. } = &self {
            return problem_with(status, code, &detail, Some(dependents.clone()));
        }
        let mut response = problem(status, code, &detail);
        // Every 503 and 429 says when to come back: clients (and the idempotent retry of a command
        // whose outcome they do not know) should not hammer a server that is recovering.
        let retry_after_secs = match &self {
            Self::Unavailable {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::Command(CommandError::Unavailable(_)) => Some(1),
            Self::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        if let Some(secs) = retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
