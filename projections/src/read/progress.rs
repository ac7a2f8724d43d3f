//! Read-your-writes for many readers at once: how far the read models have got, watched by one
//! task per process instead of by every waiting read.
//!
//! A read with `?min_position=P` may answer only once every projection has applied the event at
//! P, i.e. once the slowest projection's checkpoint is at or past that event's place in the log
//! `(tx, P)` (the log's order is by transaction, then position: `plinth_commands::log`). Each
//! waiter looks up its event's place once; then it only watches [`ReadProgress`]'s
//! last-known slowest checkpoint, which one refresher task reads from `read.checkpoints`:
//!
//! - after every commit of a projector of this process (at once), and
//! - every [`REFRESH_INTERVAL`] while anyone waits (projectors of other processes), and
//! - never while nobody waits.
//!
//! Had every waiter polled the checkpoints itself (as before), a slow moment would have been
//! self-sustaining: more reads waiting → more polls taking pool connections and database time →
//! projectors and reads slower still → more reads waiting.
//!
//! Checkpoints only move forward (the projector and a rebuild's swap both advance them), so a
//! slowest checkpoint read at any time is a lower bound ever after: a waiter may trust an old one
//! when it already covers its event, and waits for a newer one otherwise.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use plinth_commands::Checkpoint;

use super::projection::ProjectionSet;

/// How often the refresher reads the checkpoints while anyone waits, for projectors of other
/// processes (this process's own wake it at once).
const REFRESH_INTERVAL: Duration = Duration::from_millis(10);

/// Wakes every [`ReadProgress`] of this process whenever one of its projectors commits.
static PROJECTED: Notify = Notify::const_new();

/// Called by the projector after each commit.
pub(super) fn projected() {
    PROJECTED.notify_waiters();
}

/// Whether every projection has applied the event at `position` now (false while it is not an
/// event): one look, for callers that do not wait.
pub async fn has_reached(pool: &Pool, position: i64) -> anyhow::Result<bool> {
    if position <= 0 {
        return Ok(true);
    }
    let client = pool.get().await?;
    let names = ProjectionSet::all().names();
    plinth_commands::log::projections_reached(&client, &names, position).await
}

/// The projections have not reached a position within the allowed wait.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the read models have not reached position {position} yet")]
pub struct NotYet {
    pub position: i64,
}

/// The read models' progress as this process last saw it; cheap to clone (one refresher task
/// per [`ReadProgress::start`], shared by the clones, ended with the last of them).
#[derive(Debug, Clone)]
pub struct ReadProgress {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    pool: Pool,
    /// The slowest projection's checkpoint as last read (None: not read yet, or some projection
    /// has no checkpoint row).
    slowest: watch::Sender<Option<Checkpoint>>,
    /// Reads waiting now; the refresher runs only while there are some.
    waiting: AtomicUsize,
    /// Wakes the refresher: when the first reader starts waiting, and when the last handle is
    /// dropped (so that it ends).
    wake: Arc<Notify>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

impl ReadProgress {
    /// Starts the refresher on the current runtime; it ends when the last clone is dropped.
    pub fn start(pool: Pool) -> Self {
        let shared = Arc::new(Shared {
            pool,
            slowest: watch::Sender::new(None),
            waiting: AtomicUsize::new(0),
            wake: Arc::new(Notify::new()),
        });
        tokio::spawn(refresh(Arc::downgrade(&shared), shared.wake.clone()));
        Self { shared }
    }

    /// Waits until every projection has applied the event at `position` (read-your-writes for
    /// a command that returned it), or `timeout` passes. A position that is not (yet) an event
    /// is waited for like any other.
    pub async fn wait_for(&self, position: i64, timeout: Duration) -> Result<(), NotYet> {
        if position <= 0 {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        let not_yet = NotYet { position };
        let target = tokio::time::timeout_at(deadline, self.place_of(position))
            .await
            .map_err(|_| not_yet.clone())?;
        let _waiting = Waiting::register(&self.shared);
        let mut slowest = self.shared.slowest.subscribe();
        let reached = slowest.wait_for(|cp| cp.is_some_and(|cp| cp >= target));
        let reached = tokio::time::timeout_at(deadline, reached).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            // The refresher cannot end while `self` holds the sender's Arc; and the deadline
            // decides in any case.
            Ok(Err(_)) | Err(_) => Err(not_yet),
        }
    }

    /// The place in the log of the event at `position`, looked up until it exists (a position
    /// from another process may be a moment early) with a growing pause.
    async fn place_of(&self, position: i64) -> Checkpoint {
        let mut pause = Duration::from_millis(2);
        loop {
            match self.lookup(position).await {
                Ok(Some(tx)) => return Checkpoint { tx, position },
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "read-your-writes lookup failed"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    async fn lookup(&self, position: i64) -> anyhow::Result<Option<i64>> {
        let client = self.shared.pool.get().await?;
        plinth_commands::log::tx_of(&client, position).await
    }
}

/// One waiting read, counted while it lives.
struct Waiting<'a>(&'a Shared);

impl<'a> Waiting<'a> {
    fn register(shared: &'a Shared) -> Self {
        if shared.waiting.fetch_add(1, Ordering::SeqCst) == 0 {
            shared.wake.notify_one();
        }
        Self(shared)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads the slowest checkpoint while anyone waits, on each projector commit of this process
/// and every [`REFRESH_INTERVAL`]; idle while nobody waits. Holds the shared state only while
/// it works, and ends once the last handle is gone.
async fn refresh(shared: std::sync::Weak<Shared>, wake: Arc<Notify>) {
    loop {
        // Registered before the checks below, so that a wake-up between them is not lost.
        let projected = PROJECTED.notified();
        let woken = wake.notified();
        tokio::pin!(projected, woken);
        projected.as_mut().enable();
        woken.as_mut().enable();
        let waiting = {
            let Some(s) = shared.upgrade() else { return };
            let waiting = s.waiting.load(Ordering::SeqCst) > 0;
            if waiting {
                match read_slowest(&s.pool).await {
                    Ok(cp) => {
                        s.slowest.send_if_modified(|old| {
                            let newer = *old != cp;
                            *old = cp;
                            newer
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the read models' checkpoints failed")
                    }
                }
            }
            waiting
        };
        if waiting {
            tokio::select! {
                () = &mut projected => {}
                () = &mut woken => {}
                () = tokio::time::sleep(REFRESH_INTERVAL) => {}
            }
        } else {
            woken.await;
        }
    }
}

async fn read_slowest(pool: &Pool) -> anyhow::Result<Option<Checkpoint>> {
    let client = pool.get().await?;
    slowest_checkpoint(&client).await
}

/// The slowest projection's checkpoint, None while some projection has none.
async fn slowest_checkpoint(client: &impl GenericClient) -> anyhow::Result<Option<Checkpoint>> {
    let names = ProjectionSet::all().names();
    // The count is over all the projection's rows (a window is computed before the limit).
    let row = client
        .query_opt(
            "select tx, position, count(*) over () = cardinality($1::text[])
             from read.checkpoints where projection = any($1::text[])
             order by tx, position limit 1",
            &[&names],
        )
        .await?;
    Ok(row.filter(|r| r.get::<_, bool>(2)).map(|r| Checkpoint {
        tx: r.get(0),
        position: r.get(1),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plinth_test_support::{seed_log, test_server_url, ScratchDatabase};

    /// A log of three events with every projection's checkpoint at its start, and the place of
    /// the last event. No projector runs: the checkpoints move only as the test moves them, as
    /// a projector of another process would (which wakes nothing in this one).
    async fn log_behind_checkpoints() -> (ScratchDatabase, Pool, Checkpoint) {
        let db = ScratchDatabase::create(&test_server_url(), "plinth_progress")
            .await
            .expect("PostgreSQL must be running (scripts/postgres-up)");
        let pool = db.migrated_pool(4).await.unwrap();
        seed_log(&pool, 3, 3).await.unwrap();
        let client = pool.get().await.unwrap();
        client
            .execute(
                "insert into read.checkpoints (projection) select unnest($1::text[])",
                &[&ProjectionSet::all().names()],
            )
            .await
            .unwrap();
        let row = client
            .query_one(
                "select tx, position from events order by position desc limit 1",
                &[],
            )
            .await
            .unwrap();
        let last = Checkpoint {
            tx: row.get(0),
            position: row.get(1),
        };
        (db, pool, last)
    }

    async fn move_checkpoints(pool: &Pool, to: Checkpoint) {
        pool.get()
            .await
            .unwrap()
            .execute(
                "update read.checkpoints set tx = $1, position = $2",
                &[&to.tx, &to.position],
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn many_reads_wait_for_one_watcher_and_answer_when_another_process_projects() {
        let (db, pool, last) = log_behind_checkpoints().await;
        let progress = ReadProgress::start(pool.clone());
        assert_eq!(
            progress
                .wait_for(last.position, Duration::from_millis(200))
                .await,
            Err(NotYet {
                position: last.position
            }),
            "the checkpoints are behind the event"
        );
        assert!(!has_reached(&pool, last.position).await.unwrap());
        // More readers than the pool has connections: they share the watcher's reads.
        let readers: Vec<_> = (0..64)
            .map(|_| {
                let progress = progress.clone();
                tokio::spawn(async move {
                    progress
                        .wait_for(last.position, Duration::from_secs(5))
                        .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            readers.iter().all(|r| !r.is_finished()),
            "none may answer early"
        );
        let moved = Instant::now();
        move_checkpoints(&pool, last).await;
        for reader in readers {
            assert_eq!(reader.await.unwrap(), Ok(()));
        }
        assert!(
            moved.elapsed() < Duration::from_secs(1),
            "answered by the watcher's poll, not at the deadline: {:?}",
            moved.elapsed()
        );
        assert!(has_reached(&pool, last.position).await.unwrap());
        // A position that is no event waits out its bound.
        assert!(progress
            .wait_for(last.position + 100, Duration::from_millis(100))
            .await
            .is_err());
        drop(progress);
        db.drop().await.unwrap();
    }

    #[tokio::test]
    async fn a_checkpoint_past_the_event_by_transaction_covers_it_and_one_behind_does_not() {
        let (db, pool, last) = log_behind_checkpoints().await;
        let progress = ReadProgress::start(pool.clone());
        // The log's order is (tx, position): a later transaction with a lower position is past.
        move_checkpoints(
            &pool,
            Checkpoint {
                tx: last.tx,
                position: last.position - 1,
            },
        )
        .await;
        assert!(progress
            .wait_for(last.position, Duration::from_millis(100))
            .await
            .is_err());
        move_checkpoints(
            &pool,
            Checkpoint {
                tx: last.tx + 1,
                position: 0,
            },
        )
        .await;
        assert_eq!(
            progress
                .wait_for(last.position, Duration::from_secs(2))
                .await,
            Ok(())
        );
        drop(progress);
        db.drop().await.unwrap();
    }
}
