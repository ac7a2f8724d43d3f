//! Stream locks: how writers serialize, and why the log's read order is right.
//!
//! Every transaction that appends events first locks, until it ends, the streams it writes
//! (exclusively) and the streams it reads (shared, with every tenant in their chains), and only
//! then reads them and writes. The locks are transaction-level advisory locks
//! (`migrations/V30__stream_locks.sql`), which, unlike row locks, take no transaction id: a
//! transaction gets its id at its first insert, after every lock it waited for was released by
//! a commit. So a writer's id is larger than the id of every writer it waited for, and readers
//! ordering the log by (transaction id, position) see each stream's events in version order and
//! each event after the events its command read (docs/adr/0004-log-order.md).

use tokio_postgres::GenericClient;

/// Locks the streams `$1` exclusively and `$2` (with their chains) shared; returns how many of
/// the named streams existed.
pub(crate) const LOCK_SQL: &str = "select plinth_lock_streams($1::text[], $2::text[])";

/// Takes the stream locks of the current transaction: `exclusive` for the streams it will
/// append to, `shared` for the streams it reads. Call it before the transaction's first write,
/// and read the streams only in statements sent after it returned. Returns how many of the
/// named streams exist.
pub async fn lock_streams(
    client: &impl GenericClient,
    exclusive: &[&str],
    shared: &[&str],
) -> Result<i32, tokio_postgres::Error> {
    let row = client.query_one(LOCK_SQL, &[&exclusive, &shared]).await?;
    Ok(row.get(0))
}
