//! The projector runner: tails the log into every projection, each with its own checkpoint
//! written in the same transaction as its rows. The tailing itself (wake-ups, re-reads,
//! polling) is the write side's [`Follower`]; this module is what the projections add to it.
//!
//! - **Exactly one applier per projection.** A process applies a projection only while it
//!   holds that projection's session-level advisory lock ([`LockConnection`]). Standbys retry
//!   the lock every `takeover_interval`; when the holder's connection ends (crash, network),
//!   PostgreSQL releases the lock and a standby takes over from the checkpoint. The lock only
//!   avoids wasted work: every apply also locks the projection's checkpoint row and checks it
//!   is still where the events were read from, so even two appliers could not apply an event
//!   twice.
//! - **Batched.** Projections whose checkpoints agree (the normal case) read each batch once
//!   and apply it in one transaction.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use deadpool_postgres::Pool;

use plinth_commands::follower::{Consumer, Follower, FollowerConfig, LockConnection, LockKey};
use plinth_commands::{Checkpoint, StoredEvent};

use super::models::Changes;
use super::projection::{Projection, ProjectionSet};

pub use plinth_commands::follower::CHANNEL;

/// How the runner connects and paces itself. `Default` suits `plinth serve`.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Where to `LISTEN`. `None`: the server, user and database of the pool's connections,
    /// without a password (fine for trust/peer authentication; pass the real settings
    /// otherwise). If no LISTEN connection can be had, the runner still works by polling.
    pub listen: Option<tokio_postgres::Config>,
    /// Fallback poll, for missed notifications.
    pub poll_interval: Duration,
    /// How often a standby tries to take over a projection held by another process.
    pub takeover_interval: Duration,
    /// Events per transaction.
    pub batch_size: i64,
    /// The projections to run.
    pub projections: ProjectionSet,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            listen: None,
            poll_interval: Duration::from_millis(500),
            takeover_interval: Duration::from_secs(2),
            batch_size: 2_000,
            projections: ProjectionSet::all(),
        }
    }
}

/// Runs every projection until `shutdown` resolves. Several processes may run this at once:
/// each projection is applied by one of them at a time, and another takes over when it dies.
pub async fn run_projectors(
    pool: Pool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_projectors_with(pool, RunnerConfig::default(), shutdown).await
}

/// [`run_projectors`] with explicit settings.
pub async fn run_projectors_with(
    pool: Pool,
    config: RunnerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut follower = Follower::start(
        pool.clone(),
        FollowerConfig {
            listen: config.listen.clone(),
            poll_interval: config.poll_interval,
            batch_size: config.batch_size,
        },
    );
    let mut backoff = Duration::from_millis(100);
    tokio::pin!(shutdown);
    loop {
        // Dropping a session (on shutdown) closes its lock connection: standbys take over.
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            result = session(&pool, &config, &mut follower) => {
                let Err(e) = result;
                tracing::error!(error = format!("{e:#}"), "projector session failed; restarting");
            }
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One session: a lock connection, and the follower feeding the projections it wins.
async fn session(
    pool: &Pool,
    config: &RunnerConfig,
    follower: &mut Follower,
) -> anyhow::Result<Infallible> {
    let lock = LockConnection::take(pool).await?;
    let names = config.projections.names();
    lock.execute(
        "insert into read.checkpoints (projection) select unnest($1::text[]) on conflict do nothing",
        &[&names],
    )
    .await
    .context("failed to create checkpoints")?;
    let mut leading = Leading {
        lock,
        wanted: config.projections,
        takeover_interval: config.takeover_interval,
        last_takeover: None,
        projector: Projector::default(),
    };
    follower.follow(&mut leading).await
}

/// The projections this process applies, and the leadership that lets it.
struct Leading {
    lock: LockConnection,
    wanted: ProjectionSet,
    takeover_interval: Duration,
    last_takeover: Option<Instant>,
    projector: Projector,
}

impl Leading {
    /// Tries the locks of the wanted projections not yet owned, at most every
    /// `takeover_interval`.
    async fn take_over(&mut self) -> anyhow::Result<()> {
        let owned = self.projector.owned;
        if owned == self.wanted
            || self
                .last_takeover
                .is_some_and(|t| t.elapsed() < self.takeover_interval)
        {
            return Ok(());
        }
        self.last_takeover = Some(Instant::now());
        for p in self.wanted.iter().filter(|p| !owned.contains(*p)) {
            if self.lock.try_lock(LockKey::Number(p.lock_key())).await? {
                tracing::info!(projection = p.name(), "applying projection");
                self.projector.own(p);
            }
        }
        Ok(())
    }
}

impl Consumer for Leading {
    async fn cursors(
        &mut self,
        client: &mut deadpool_postgres::Client,
    ) -> anyhow::Result<Vec<Checkpoint>> {
        // Without the lock connection, another process may be applying already.
        self.lock.ensure_open()?;
        self.take_over().await?;
        self.projector.cursors(client).await
    }

    async fn consume(
        &mut self,
        client: &mut deadpool_postgres::Client,
        after: Checkpoint,
        events: Vec<StoredEvent>,
    ) -> anyhow::Result<()> {
        self.projector.consume(client, after, &events).await
    }

    fn idle_at_most(&self) -> Option<Duration> {
        (self.projector.owned != self.wanted).then_some(self.takeover_interval)
    }
}

/// Applies batches to the projections it owns, grouped by checkpoint.
#[derive(Debug, Default)]
struct Projector {
    owned: ProjectionSet,
    /// The owned projections by checkpoint: read from `read.checkpoints` when `None`, then
    /// kept up to date by each apply, so that a batch costs no extra round trip to look them
    /// up (the projector's cycle time is most of command → read model latency). Dropped when
    /// an apply finds a checkpoint moved by someone else (a rebuild's swap) and when the owned
    /// set changes.
    groups: Option<BTreeMap<Checkpoint, ProjectionSet>>,
}

impl Projector {
    /// Owns `p` from now on.
    fn own(&mut self, p: Projection) {
        self.owned = self.owned.with(p);
        self.groups = None;
    }

    /// The owned projections' checkpoints, one per group of projections that agree.
    async fn cursors(
        &mut self,
        client: &deadpool_postgres::Client,
    ) -> anyhow::Result<Vec<Checkpoint>> {
        if self.owned.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(groups) = &self.groups {
            return Ok(groups.keys().copied().collect());
        }
        let rows = client
            .query(
                "select projection, tx, position from read.checkpoints where projection = any($1::text[])",
                &[&self.owned.names()],
            )
            .await?;
        let mut groups = BTreeMap::<Checkpoint, ProjectionSet>::new();
        for row in rows {
            let Some(p) = Projection::parse(row.get(0)) else {
                continue;
            };
            let cp = Checkpoint {
                tx: row.get(1),
                position: row.get(2),
            };
            let set = groups.entry(cp).or_default();
            *set = set.with(p);
        }
        let cursors = groups.keys().copied().collect();
        self.groups = Some(groups);
        Ok(cursors)
    }

    /// Applies `events` (read after `after`) to the group at `after`.
    async fn consume(
        &mut self,
        client: &mut deadpool_postgres::Client,
        after: Checkpoint,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        let Some(groups) = &mut self.groups else {
            return Ok(());
        };
        let (Some(&set), Some(last)) = (groups.get(&after), events.last()) else {
            return Ok(());
        };
        let mut changes = Changes::new(set);
        for e in events {
            changes.add(e)?;
        }
        let to = last.checkpoint();
        if apply(client, set, after, to, &changes).await? {
            groups.remove(&after);
            let moved = groups.entry(to).or_default();
            *moved = moved.union(set);
        } else {
            // Someone else moved a checkpoint: look them up again.
            self.groups = None;
        }
        Ok(())
    }
}

/// Applies everything readable now to `set` in batches of `batch_size`, waiting for events
/// that were committed but are not yet below the snapshot horizon (tests).
#[cfg(test)]
pub(crate) async fn catch_up(
    client: &mut deadpool_postgres::Client,
    set: ProjectionSet,
    batch_size: i64,
) -> anyhow::Result<()> {
    use plinth_commands::log;
    let names = set.names();
    client
        .execute(
            "insert into read.checkpoints (projection) select unnest($1::text[]) on conflict do nothing",
            &[&names],
        )
        .await?;
    let head = log::head_position(&*client).await?;
    let mut projector = Projector {
        owned: set,
        ..Projector::default()
    };
    loop {
        let mut read = 0;
        for after in projector.cursors(client).await? {
            let events = log::read_after(&*client, after, batch_size).await?;
            read += events.len();
            projector.consume(client, after, &events).await?;
        }
        if read > 0 {
            continue;
        }
        if head == 0 || log::projections_reached(&*client, &names, head).await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One transaction: lock the checkpoints, check nobody moved them, write rows and checkpoints.
/// Returns false (and writes nothing) when a checkpoint moved meanwhile.
async fn apply(
    client: &mut deadpool_postgres::Client,
    set: ProjectionSet,
    from: Checkpoint,
    to: Checkpoint,
    changes: &Changes,
) -> anyhow::Result<bool> {
    let tx = client.transaction().await?;
    let names = set.names();
    // Moves the checkpoints first, only where they still stand at `from`: one statement that
    // locks the rows in name order (as a rebuild's swap does; a concurrent applier waits here,
    // then finds them moved) and checks them, where a `select … for update` and a later
    // `update` took two round trips. Rows and checkpoints still commit together.
    let moved = tx
        .execute(
            "update read.checkpoints c set tx = $4, position = $5, updated_at = now()
             from (select projection from read.checkpoints where projection = any($1::text[])
                   order by projection for update) locked
             where c.projection = locked.projection and c.tx = $2 and c.position = $3",
            &[&names, &from.tx, &from.position, &to.tx, &to.position],
        )
        .await?;
    if moved != names.len() as u64 {
        tx.rollback().await?;
        return Ok(false);
    }
    let flushing = Instant::now();
    changes.flush(&tx, "read").await?;
    let committing = Instant::now();
    tx.commit().await?;
    tracing::debug!(
        write_us = (committing - flushing).as_micros() as u64,
        commit_us = committing.elapsed().as_micros() as u64,
        "projected"
    );
    super::progress::projected();
    metrics::counter!("plinth_projected_events_total").increment(changes.len() as u64);
    Ok(true)
}
