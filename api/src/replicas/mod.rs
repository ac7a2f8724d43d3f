//! Reads served by PostgreSQL streaming replicas (`PLINTH_READ_DATABASE_URLS`), ADR 0026.
//!
//! Commands, projectors, relays and leadership stay on the primary; the read routes take a
//! connection from a replica in rotation, round-robin, and the primary when none is. A replica
//! is in rotation while its monitor's last probe reached it, found it in recovery, and measured
//! its lag (`lag.rs`) at or under `PLINTH_READ_REPLICA_MAX_LAG_MS`; a read that fails on it puts
//! it out at once, and the next good probe puts it back.
//!
//! Read-your-writes (`?min_position=P`): a replica answers only once its own replayed
//! `read.checkpoints` cover the event at P, watched by a [`ReadProgress`] on the replica's pool
//! (the replica's copy of the log gives the event's place; until the event itself is replayed
//! it is not covered). After `PLINTH_READ_REPLICA_WAIT_MS` the primary answers instead, with
//! what is left of the request's wait, so a read is never served staler than its position.

pub(crate) mod lag;
pub(crate) mod route;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context as _;
use deadpool_postgres::Pool;
use tokio::time::Instant;

use plinth_projections::read::ReadProgress;

use lag::LsnHistory;

/// How often each replica is probed (and the primary's WAL position sampled).
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// A probe slower than this counts as a failed one.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How much WAL-position history the lag is measured against; a replica behind all of it
/// lags at least this long.
const LAG_WINDOW: Duration = Duration::from_secs(60);

/// The replicas of one process, and what its monitor last saw of each.
#[derive(Debug)]
pub struct Replicas {
    replicas: Vec<Arc<Replica>>,
    next: AtomicUsize,
    /// How long a `?min_position` read waits on a replica before the primary answers it.
    pub(crate) wait: Duration,
}

/// One replica: its pool, its read-your-writes watcher and its state as last probed.
#[derive(Debug)]
pub struct Replica {
    /// 1-based, in the order of `PLINTH_READ_DATABASE_URLS`: the `replica` label of metrics.
    pub(crate) number: usize,
    /// host:port, for `/readyz` (never the URL: it may hold a password).
    pub(crate) address: String,
    pub(crate) pool: Pool,
    pub(crate) progress: ReadProgress,
    in_rotation: AtomicBool,
    reachable: AtomicBool,
    /// Lag in microseconds as last measured; `u64::MAX` before the first good probe.
    lag_micros: AtomicU64,
}

impl Replica {
    pub(crate) fn in_rotation(&self) -> bool {
        self.in_rotation.load(Ordering::SeqCst)
    }

    /// Takes the replica out of rotation until its next good probe: a read just failed on it.
    pub(crate) fn suspend(&self, why: &str) {
        if self.in_rotation.swap(false, Ordering::SeqCst) {
            tracing::warn!(replica = self.number, why, "read replica out of rotation");
            self.publish();
        }
    }

    fn lag(&self) -> Option<Duration> {
        match self.lag_micros.load(Ordering::SeqCst) {
            u64::MAX => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    /// One line of `/readyz`.
    pub(crate) fn describe(&self) -> String {
        let lag = match self.lag() {
            Some(lag) => format!("lag {:.3} s", lag.as_secs_f64()),
            None => "lag unknown".to_owned(),
        };
        let state = if self.in_rotation() {
            "in rotation"
        } else if !self.reachable.load(Ordering::SeqCst) {
            "out of rotation (unreachable)"
        } else {
            "out of rotation (lagging)"
        };
        format!("replica {} ({}): {state}, {lag}", self.number, self.address)
    }

    fn publish(&self) {
        let label = self.number.to_string();
        metrics::gauge!("plinth_read_replica_in_rotation", "replica" => label.clone())
            .set(if self.in_rotation() { 1.0 } else { 0.0 });
        if let Some(lag) = self.lag() {
            metrics::gauge!("plinth_read_replica_lag_seconds", "replica" => label)
                .set(lag.as_secs_f64());
        }
    }
}

impl Replicas {
    /// Pools for `urls` (connected lazily) and their monitor, which ends with the last handle.
    /// Nothing is connected here: a replica that is down at start is only out of rotation.
    pub fn start(
        urls: &[String],
        pool_size: usize,
        primary: Pool,
        max_lag: Duration,
        wait: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        let replicas = urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let config: tokio_postgres::Config =
                    url.parse().context("invalid PLINTH_READ_DATABASE_URLS")?;
                let address = config
                    .get_hosts()
                    .iter()
                    .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
                    .map(|(host, port)| match host {
                        tokio_postgres::config::Host::Tcp(h) => format!("{h}:{port}"),
                        #[cfg(unix)]
                        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                let pool = plinth_commands::pool(url, pool_size)?;
                Ok(Arc::new(Replica {
                    number: i + 1,
                    address,
                    progress: ReadProgress::start(pool.clone()),
                    pool,
                    in_rotation: AtomicBool::new(false),
                    reachable: AtomicBool::new(false),
                    lag_micros: AtomicU64::new(u64::MAX),
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for replica in &replicas {
            replica.publish();
        }
        let this = Arc::new(Self {
            replicas,
            next: AtomicUsize::new(0),
            wait,
        });
        if !this.replicas.is_empty() {
            tokio::spawn(monitor(Arc::downgrade(&this), primary, max_lag));
        }
        Ok(this)
    }

    /// No replicas: every read goes to the primary.
    pub fn none() -> Arc<Self> {
        Arc::new(Self {
            replicas: Vec::new(),
            next: AtomicUsize::new(0),
            wait: Duration::ZERO,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    /// The next replica in rotation, round-robin; `None` when none is.
    pub(crate) fn pick(&self) -> Option<Arc<Replica>> {
        let n = self.replicas.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.replicas[(start + i) % n])
            .find(|r| r.in_rotation())
            .cloned()
    }

    /// Each replica's state, one line each, for `/readyz`.
    pub(crate) fn describe(&self) -> Vec<String> {
        self.replicas.iter().map(|r| r.describe()).collect()
    }
}

/// Probes every replica each [`PROBE_INTERVAL`] until the last handle is dropped.
async fn monitor(replicas: Weak<Replicas>, primary: Pool, max_lag: Duration) {
    let mut history = LsnHistory::new(LAG_WINDOW);
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(replicas) = replicas.upgrade() else {
            return;
        };
        let now = Instant::now();
        // Sampled before the replicas: one that has replayed this far held all of it now.
        match tokio::time::timeout(PROBE_TIMEOUT, primary_lsn(&primary)).await {
            Ok(Ok(lsn)) => history.record(now, lsn),
            Ok(Err(e)) => tracing::debug!(error = format!("{e:#}"), "primary WAL position"),
            Err(_) => tracing::debug!("primary WAL position: timed out"),
        }
        let probes = replicas.replicas.iter().map(|replica| async move {
            let probed = tokio::time::timeout(PROBE_TIMEOUT, replayed_lsn(&replica.pool)).await;
            (replica, probed)
        });
        for (replica, probed) in futures::future::join_all(probes).await {
            let lag = match probed {
                Ok(Ok(replayed)) => {
                    replica.reachable.store(true, Ordering::SeqCst);
                    history.lag(now, replayed)
                }
                Ok(Err(e)) => {
                    tracing::debug!(
                        replica = replica.number,
                        error = format!("{e:#}"),
                        "replica probe failed"
                    );
                    replica.reachable.store(false, Ordering::SeqCst);
                    None
                }
                Err(_) => {
                    replica.reachable.store(false, Ordering::SeqCst);
                    None
                }
            };
            if let Some(lag) = lag {
                let micros = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX - 1);
                replica.lag_micros.store(micros, Ordering::SeqCst);
            }
            let fit = lag.is_some_and(|lag| lag <= max_lag);
            let was = replica.in_rotation.swap(fit, Ordering::SeqCst);
            if was != fit {
                tracing::info!(
                    replica = replica.number,
                    in_rotation = fit,
                    lag_secs = lag.map(|l| l.as_secs_f64()),
                    "read replica rotation changed"
                );
            }
            replica.publish();
        }
    }
}

/// The primary's current WAL write position.
async fn primary_lsn(primary: &Pool) -> anyhow::Result<u64> {
    let client = primary.get().await?;
    let row = client
        .query_one("select (pg_current_wal_lsn() - '0/0')::text", &[])
        .await?;
    Ok(row.get::<_, String>(0).parse()?)
}

/// How far the replica has replayed; an error when it is not a standby (a promoted replica
/// no longer follows the primary, so its reads could be of another history).
async fn replayed_lsn(replica: &Pool) -> anyhow::Result<u64> {
    let client = replica.get().await?;
    let row = client
        .query_one(
            "select pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0')::text",
            &[],
        )
        .await?;
    anyhow::ensure!(row.get::<_, bool>(0), "not in recovery: not a replica");
    let replayed: Option<String> = row.get(1);
    Ok(replayed.context("no WAL replayed yet")?.parse()?)
}
