//! The projector runner: tails the log into every projection, each with its own checkpoint
//! written in the same transaction as its rows.
//!
//! - **Exactly one applier per projection.** A process applies a projection only while it
//!   holds that projection's session-level advisory lock. Standbys retry the lock every few
//!   seconds; when the holder's connection ends (crash, network), PostgreSQL releases the lock
//!   and a standby takes over from the checkpoint. The lock only avoids wasted work: every
//!   apply also locks the projection's checkpoint row and checks it is still where the events
//!   were read from, so even two appliers could not apply an event twice.
//! - **Promptly.** A dedicated connection `LISTEN`s on `plinth_events`; the write side notifies
//!   in every appending transaction, with the highest position it wrote. The gap-safe tail
//!   only shows events whose transaction is older than the oldest transaction still running in
//!   the whole cluster, so a notified event may not be readable yet: the runner re-reads with
//!   short, growing sleeps until its checkpoints pass the notified position. A fallback poll
//!   covers lost notifications and a LISTEN connection that cannot be had.
//! - **Batched.** Projections whose checkpoints agree (the normal case) read each batch once
//!   and apply it in one transaction.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use deadpool_postgres::{GenericClient, Pool};
use futures::StreamExt as _;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use plinth_commands::{read_after, Checkpoint};

use super::changes::Changes;
use super::projection::{Projection, ProjectionSet};

/// The channel the write side notifies on.
pub const CHANNEL: &str = "plinth_events";

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
    let (wake_tx, wake_rx) = watch::channel(Wake::default());
    let listen_config = match config.listen.clone() {
        Some(c) => Some(c),
        None => derive_listen_config(&pool).await,
    };
    let listener = listen_config.map(|c| tokio::spawn(listen_forever(c, wake_tx)));
    let runner = run_loop(pool, config, wake_rx);
    tokio::pin!(shutdown);
    let result = tokio::select! {
        () = &mut shutdown => Ok(()),
        result = runner => result,
    };
    if let Some(l) = listener {
        l.abort();
    }
    result
}

/// What the LISTEN connection reports: a counter bumped per notification (or reconnect), and
/// the highest position notified.
#[derive(Debug, Default, Clone, Copy)]
struct Wake {
    seq: u64,
    max_position: i64,
}

async fn derive_listen_config(pool: &Pool) -> Option<tokio_postgres::Config> {
    let client = pool.get().await.ok()?;
    let row = client
        .query_one(
            "select current_user::text, current_database()::text, host(inet_server_addr()), inet_server_port()",
            &[],
        )
        .await
        .ok()?;
    let mut config = tokio_postgres::Config::new();
    config.user(row.get::<_, String>(0));
    config.dbname(row.get::<_, String>(1));
    match row.get::<_, Option<String>>(2) {
        Some(host) => config.host(&host),
        None => config.host_path("/var/run/postgresql"),
    };
    if let Some(port) = row.get::<_, Option<i32>>(3) {
        config.port(port as u16);
    }
    config.application_name("plinth-projector-listen");
    Some(config)
}

/// Keeps a LISTEN connection up, reconnecting with backoff.
async fn listen_forever(config: tokio_postgres::Config, wake: watch::Sender<Wake>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        match listen_once(&config, &wake).await {
            Ok(()) => tracing::info!("LISTEN connection closed; reconnecting"),
            Err(e) => tracing::warn!(error = %e, "LISTEN connection failed; polling meanwhile"),
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(100);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    wake: &watch::Sender<Wake>,
) -> anyhow::Result<()> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().parse::<i64>().unwrap_or(0)).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client.batch_execute(&format!("listen {CHANNEL}")).await?;
    // Anything committed while we were not listening: look once.
    wake.send_modify(|w| w.seq += 1);
    while let Some(position) = rx.recv().await {
        wake.send_modify(|w| {
            w.seq += 1;
            w.max_position = w.max_position.max(position);
        });
    }
    drop(client);
    driver.await??;
    Ok(())
}

/// Sessions, one after another: a session ends when its connection fails.
async fn run_loop(
    pool: Pool,
    config: RunnerConfig,
    mut wake: watch::Receiver<Wake>,
) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match pool.get().await {
            Ok(client) => {
                let mut client = Detached(Some(client));
                let result = session(client.get(), &config, &mut wake).await;
                drop(client);
                if let Err(e) = result {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "projector session failed; restarting"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "projector cannot connect; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// A pooled connection that is closed, never handed back to the pool, when dropped: it holds
/// session-level advisory locks, and closing it is what releases them (on shutdown, on
/// error, and when the runner's future is simply dropped) so that a standby can take over.
struct Detached(Option<deadpool_postgres::Client>);

impl Detached {
    fn get(&mut self) -> &mut deadpool_postgres::Client {
        self.0.as_mut().expect("present until dropped")
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

async fn session(
    client: &mut deadpool_postgres::Client,
    config: &RunnerConfig,
    wake: &mut watch::Receiver<Wake>,
) -> anyhow::Result<()> {
    let names = config.projections.names();
    client
        .execute(
            "insert into read.checkpoints (projection) select unnest($1::text[]) on conflict do nothing",
            &[&names],
        )
        .await
        .context("failed to create checkpoints")?;
    let mut owned = ProjectionSet::default();
    let mut last_takeover: Option<Instant> = None;
    // The highest notified position not yet known to be applied.
    let mut target: Option<i64> = None;
    let mut retry = Duration::from_millis(2);
    loop {
        if owned != config.projections
            && last_takeover.is_none_or(|t| t.elapsed() >= config.takeover_interval)
        {
            last_takeover = Some(Instant::now());
            let missing: Vec<Projection> = config
                .projections
                .iter()
                .filter(|p| !owned.contains(*p))
                .collect();
            for p in missing {
                let row = client
                    .query_one("select pg_try_advisory_lock($1)", &[&p.lock_key()])
                    .await?;
                if row.get::<_, bool>(0) {
                    tracing::info!(projection = p.name(), "applying projection");
                    owned = owned.with(p);
                }
            }
        }
        {
            let w = *wake.borrow_and_update();
            if w.max_position > 0 && target.is_none_or(|t| w.max_position > t) {
                target = Some(w.max_position);
            }
        }
        let applied = if owned.is_empty() {
            0
        } else {
            step(client, owned, config.batch_size).await?
        };
        if applied > 0 {
            retry = Duration::from_millis(2);
            continue;
        }
        if let Some(t) = target {
            if owned.is_empty() || caught_up(&*client, owned, t).await? {
                target = None;
            } else {
                // Notified but not yet readable: another transaction somewhere in the cluster
                // still holds the snapshot horizon back. Look again shortly.
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_millis(100));
                continue;
            }
        }
        let idle = if owned == config.projections {
            config.poll_interval
        } else {
            config.poll_interval.min(config.takeover_interval)
        };
        let _ = tokio::time::timeout(idle, wake.changed()).await;
    }
}

/// Applies everything readable now to `set` in batches of `batch_size`, waiting for events
/// that were committed but are not yet below the snapshot horizon (tests).
#[cfg(test)]
pub(crate) async fn catch_up(
    client: &mut deadpool_postgres::Client,
    set: ProjectionSet,
    batch_size: i64,
) -> anyhow::Result<usize> {
    let names = set.names();
    client
        .execute(
            "insert into read.checkpoints (projection) select unnest($1::text[]) on conflict do nothing",
            &[&names],
        )
        .await?;
    let last: Option<i64> = client
        .query_one("select max(position) from events", &[])
        .await?
        .get(0);
    let mut applied = 0;
    loop {
        let n = step(client, set, batch_size).await?;
        applied += n;
        if n > 0 {
            continue;
        }
        match last {
            Some(last) if !caught_up(&*client, set, last).await? => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            _ => return Ok(applied),
        }
    }
}

/// Whether every projection in `set` has applied the event at `position` (or it never was).
async fn caught_up(
    client: &impl GenericClient,
    set: ProjectionSet,
    position: i64,
) -> anyhow::Result<bool> {
    let row = client
        .query_one(
            "select coalesce(bool_and((c.tx, c.position) >= (e.tx, e.position)), true)
             from events e, read.checkpoints c
             where e.position = $1 and c.projection = any($2::text[])",
            &[&position, &set.names()],
        )
        .await?;
    Ok(row.get(0))
}

/// Applies at most one batch to each group of projections that share a checkpoint. Returns
/// the number of events applied.
async fn step(
    client: &mut deadpool_postgres::Client,
    owned: ProjectionSet,
    batch_size: i64,
) -> anyhow::Result<usize> {
    let rows = client
        .query(
            "select projection, tx, position from read.checkpoints where projection = any($1::text[])",
            &[&owned.names()],
        )
        .await?;
    let mut groups: BTreeMap<Checkpoint, ProjectionSet> = BTreeMap::new();
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
    let mut applied = 0;
    for (cp, set) in groups {
        let events = read_after(&*client, cp, batch_size).await?;
        let Some(last) = events.last().map(|e| e.checkpoint()) else {
            continue;
        };
        let mut changes = Changes::new(set);
        for e in &events {
            changes.add(e)?;
        }
        if apply(client, set, cp, last, &changes).await? {
            applied += events.len();
        }
    }
    Ok(applied)
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
    let rows = tx
        .query(
            "select tx, position from read.checkpoints where projection = any($1::text[])
             order by projection for update",
            &[&names],
        )
        .await?;
    let unmoved = rows.len() == names.len()
        && rows
            .iter()
            .all(|r| r.get::<_, i64>(0) == from.tx && r.get::<_, i64>(1) == from.position);
    if !unmoved {
        tx.rollback().await?;
        return Ok(false);
    }
    changes.flush(&tx, "read").await?;
    tx.execute(
        "update read.checkpoints set tx = $2, position = $3, updated_at = now()
         where projection = any($1::text[])",
        &[&names, &to.tx, &to.position],
    )
    .await?;
    tx.commit().await?;
    metrics::counter!("plinth_projected_events_total").increment(changes.len() as u64);
    Ok(true)
}

/// The projections have not reached a position within the allowed wait.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the read models have not reached position {position} yet")]
pub struct NotYet {
    pub position: i64,
}

/// Waits until every projection has applied the event at `position` (read-your-writes for a
/// command that returned it), or `timeout` passes.
pub async fn wait_for_position(
    pool: &Pool,
    position: i64,
    timeout: Duration,
) -> Result<(), NotYet> {
    if position <= 0 {
        return Ok(());
    }
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    let names = ProjectionSet::all().names();
    loop {
        let reached = async {
            let client = pool.get().await?;
            let row = client
                .query_one(
                    "select count(*) = cardinality($2::text[])
                        and coalesce(bool_and((c.tx, c.position) >= (e.tx, e.position)), false)
                     from events e, read.checkpoints c
                     where e.position = $1 and c.projection = any($2::text[])",
                    &[&position, &names],
                )
                .await?;
            anyhow::Ok(row.get::<_, bool>(0))
        }
        .await;
        match reached {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "read-your-writes check failed"),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(NotYet { position });
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
