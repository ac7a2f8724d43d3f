//! The write side's error type.

use plinth_domain::DomainError;

/// Why a command did not commit. Each variant names the HTTP status it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// 403/404/409/422, as the rule says.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// 409: the client's `expected_version` is not the stream's version.
    #[error("stream {stream_id} is at version {actual}, not the expected {expected}")]
    VersionConflict {
        stream_id: String,
        expected: i64,
        actual: i64,
    },
    /// 422: the idempotency key was used before with a different request.
    #[error("idempotency key `{key}` was already used for a different request")]
    IdempotencyKeyReused { key: String },
    /// 503: the database could not be reached or the write side is shutting down.
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected database failure (see [`crate::sqlstate`]).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// SQLSTATEs and constraint names the write side maps to client errors.
pub(crate) mod pg {
    use tokio_postgres::error::SqlState;

    pub(crate) fn constraint(e: &tokio_postgres::Error) -> Option<&str> {
        e.as_db_error().and_then(|d| d.constraint())
    }

    pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
        e.code() == Some(&SqlState::UNIQUE_VIOLATION)
    }
}
