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
    /// 500: a bug or an unexpected database failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// True when `error` comes from a database that is unreachable or went away (the pool could
/// not connect, the connection closed, the server is shutting down or starting): the request
/// may succeed once it is back, so it is a 503, not a 500.
pub fn database_unreachable(error: &anyhow::Error) -> bool {
    use tokio_postgres::error::SqlState;
    error.chain().any(|cause| {
        if cause
            .downcast_ref::<deadpool_postgres::PoolError>()
            .is_some()
            || cause.downcast_ref::<std::io::Error>().is_some()
        {
            return true;
        }
        let Some(db) = cause.downcast_ref::<tokio_postgres::Error>() else {
            return false;
        };
        let lost = [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ];
        db.is_closed()
            || db
                .code()
                .is_some_and(|c| c.code().starts_with("08") || lost.contains(c))
    })
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

    /// Errors that a plain retry may cure.
    pub(crate) fn is_transient(e: &tokio_postgres::Error) -> bool {
        matches!(
            e.code(),
            Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
        )
    }
}
