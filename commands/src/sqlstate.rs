//! What a failed database call means for the request that made it, decided by SQLSTATE.
//!
//! The driver reports a fast shutdown (`FATAL 57P01 terminating connection due to
//! administrator command`) as a database error, not as a closed connection; classifying by
//! the error's kind or message turned an ordinary `pg_ctl restart` into 500s. The table
//! here is the one in `docs/operations.md` ("Database failures"): keep them together.

use tokio_postgres::error::SqlState;

/// How a request should treat a database failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// The database is unreachable, restarting, overloaded or read-only for now: the request
    /// may succeed in a moment. 503 with `Retry-After`.
    Unavailable,
    /// The transaction was rolled back by a concurrency conflict (40001, 40P01): nothing it
    /// did remains, so running it again is safe. A write retries inside; a read, or a write
    /// out of retries, answers 503 with `Retry-After`.
    Conflict,
    /// Anything else (a bug, a constraint the code does not expect, corruption): 500.
    Internal,
}

/// Classifies a SQLSTATE (five characters) by its code, then its class.
pub fn by_sqlstate(code: &str) -> DbFailure {
    if code == SqlState::T_R_SERIALIZATION_FAILURE.code()
        || code == SqlState::T_R_DEADLOCK_DETECTED.code()
    {
        return DbFailure::Conflict;
    }
    let unavailable_codes = [
        // The outcome of the statement is unknown: the client must retry with its key.
        SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN.code(),
        // A primary that failed over to a standby, or was put into read-only mode.
        SqlState::READ_ONLY_SQL_TRANSACTION.code(),
        // `lock_timeout`.
        SqlState::LOCK_NOT_AVAILABLE.code(),
    ];
    if unavailable_codes.contains(&code) {
        return DbFailure::Unavailable;
    }
    match code.get(..2) {
        // 08: connection exception; 53: insufficient resources (53300 too many connections,
        // disk full, out of memory); 57: operator intervention (57P01 admin shutdown, 57P02
        // crash shutdown, 57P03 cannot connect now, 57014 statement timeout or cancel);
        // 58: system error (I/O) outside PostgreSQL.
        Some("08" | "53" | "57" | "58") => DbFailure::Unavailable,
        _ => DbFailure::Internal,
    }
}

/// Classifies the first database failure in `error`'s chain: a SQLSTATE when the server sent
/// one, otherwise what the driver or the pool says about the connection. An error with no
/// database failure in it is [`DbFailure::Internal`].
pub fn classify(error: &anyhow::Error) -> DbFailure {
    for cause in error.chain() {
        if cause
            .downcast_ref::<deadpool_postgres::PoolError>()
            .is_some()
        {
            // No connection to be had (refused, timed out, or the server refused us with a
            // SQLSTATE, e.g. 57P03 while starting): nothing was sent.
            return match pool_sqlstate(cause) {
                Some(code) if by_sqlstate(code) == DbFailure::Internal => DbFailure::Unavailable,
                Some(code) => by_sqlstate(code),
                None => DbFailure::Unavailable,
            };
        }
        if let Some(db) = cause.downcast_ref::<tokio_postgres::Error>() {
            if let Some(code) = db.code() {
                return by_sqlstate(code.code());
            }
            return if connection_lost(db) {
                DbFailure::Unavailable
            } else {
                DbFailure::Internal
            };
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return DbFailure::Unavailable;
        }
    }
    DbFailure::Internal
}

/// True when `error` holds a database failure that is not a bug: the request may succeed
/// once the database is back or the conflict has passed (a 503, not a 500).
pub fn database_unreachable(error: &anyhow::Error) -> bool {
    classify(error) != DbFailure::Internal
}

fn pool_sqlstate<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a str> {
    match cause.downcast_ref::<deadpool_postgres::PoolError>()? {
        deadpool_postgres::PoolError::Backend(e) => e.code().map(|c| c.code()),
        _ => None,
    }
}

/// A driver error without a SQLSTATE that means the connection is gone or never came: closed,
/// an I/O error on its socket, a connect or a timeout. Conversion errors (bugs) are not.
fn connection_lost(db: &tokio_postgres::Error) -> bool {
    if db.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(db);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    // The driver's connect and timeout errors carry no source to tell them apart by.
    let text = db.to_string();
    text.starts_with("error connecting to server") || text.starts_with("timeout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_or_a_lost_connection_is_unavailable() {
        for code in [
            "57P01", "57P02", "57P03", "57014", "08006", "08001", "08003", "08P01", "53300",
            "53100", "53200", "58030", "25006", "55P03", "40003",
        ] {
            assert_eq!(by_sqlstate(code), DbFailure::Unavailable, "{code}");
        }
    }

    #[test]
    fn a_serialization_failure_or_deadlock_is_a_conflict_to_retry() {
        assert_eq!(by_sqlstate("40001"), DbFailure::Conflict);
        assert_eq!(by_sqlstate("40P01"), DbFailure::Conflict);
    }

    #[test]
    fn bugs_and_corruption_stay_internal() {
        for code in [
            "XX000", "XX001", "42P01", "42703", "23505", "22P02", "40002",
        ] {
            assert_eq!(by_sqlstate(code), DbFailure::Internal, "{code}");
        }
    }

    #[test]
    fn an_error_without_a_database_failure_is_internal() {
        assert_eq!(classify(&anyhow::anyhow!("a bug")), DbFailure::Internal);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(
            classify(&anyhow::Error::new(io).context("failed to read")),
            DbFailure::Unavailable
        );
    }
}
