//! The one loop that tails the log for every consumer of it: the projector runner, the Kafka
//! relay, and any later relay.
//!
//! A [`Follower`] reads the gap-safe tail ([`log::read_after`]) after each checkpoint its
//! [`Consumer`] names and hands every batch over; storing checkpoints stays with the consumer,
//! which knows when an event counts as done (a projector in the transaction that writes its
//! rows, a relay once the broker confirmed delivery). Between batches it waits for:
//!
//! - **a notification.** Every appending statement runs `pg_notify('plinth_events', '')`;
//!   [`listen`] keeps a LISTEN connection up and turns each notification into a wake-up. The
//!   payload carries nothing, so a wake-up only says "look again".
//! - **the eager re-reads.** A notified event may not be readable yet: the tail shows it only
//!   once no older transaction that can write this database is running (ADR 0023), and that
//!   older transaction may write no events (and so never notify). After a wake-up the follower looks again after
//!   1, 2, 4 … ms, at most 100 ms apart, until a poll interval has passed since the wake-up.
//! - **the poll**, for lost notifications and for when no LISTEN connection can be had.
//!
//! Only one process should feed a given consumer: [`leadership`] holds session-level advisory
//! locks on a connection of their own, so that a dead process's locks go with its connection.

pub mod leadership;
mod listen;

use std::convert::Infallible;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use deadpool_postgres::Pool;
use tokio::sync::watch;

use crate::log;
use crate::model::{Checkpoint, StoredEvent};

pub use leadership::{LockConnection, LockKey};
pub use listen::CHANNEL;

/// After a wake-up, the follower looks again after 1, 2, 4 … ms, never more than this apart,
/// until one poll interval has passed: the notified event shows as soon as the transactions
/// hiding it end, however long that takes, without a tight loop.
const EAGER_MAX_DELAY: Duration = Duration::from_millis(100);

/// How a follower is woken and paced.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    /// Where to `LISTEN`. `None`: the server, user and database of the pool's connections,
    /// without a password (fine for trust or peer authentication; give the real settings
    /// otherwise). Without a LISTEN connection the follower still works, by polling.
    pub listen: Option<tokio_postgres::Config>,
    /// Fallback poll of the log when no notification arrives.
    pub poll_interval: Duration,
    /// Events read per query.
    pub batch_size: i64,
}

/// What a follower feeds.
pub trait Consumer: Send {
    /// The checkpoints to read after: one per group of readers that stand at the same place
    /// (the projector runner keeps one per group of projections, a relay one). Asked before
    /// every read, so a consumer may change them (or return none, e.g. while it leads nothing).
    fn cursors(
        &mut self,
        client: &mut deadpool_postgres::Client,
    ) -> impl Future<Output = anyhow::Result<Vec<Checkpoint>>> + Send;

    /// Handles `events`, the next ones in the log after `after` (one of the cursors).
    fn consume(
        &mut self,
        client: &mut deadpool_postgres::Client,
        after: Checkpoint,
        events: Vec<StoredEvent>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// How long the consumer may wait idle at most, when it has work of its own to do sooner
    /// than the poll (a standby retrying leadership).
    fn idle_at_most(&self) -> Option<Duration> {
        None
    }
}

/// A wake-up not yet answered by a batch: when it came, and how many reads found nothing since.
#[derive(Debug, Clone, Copy)]
struct Wake {
    at: Instant,
    empty_reads: u32,
}

/// Tails the log for one consumer at a time; see the module comment.
#[derive(Debug)]
pub struct Follower {
    pool: Pool,
    poll_interval: Duration,
    batch_size: i64,
    wake: watch::Receiver<u64>,
    _listener: listen::Listener,
}

impl Follower {
    /// Starts listening for notifications (reconnecting with backoff for as long as the
    /// follower lives).
    pub fn start(pool: Pool, config: FollowerConfig) -> Self {
        let (listener, wake) = listen::start(pool.clone(), config.listen);
        Self {
            pool,
            poll_interval: config.poll_interval,
            batch_size: config.batch_size,
            wake,
            _listener: listener,
        }
    }

    /// One pass over the consumer's cursors: reads what follows each and hands it over.
    /// Whether anything was found.
    #[tracing::instrument(level = "debug", skip_all)]
    async fn step(
        &self,
        client: &mut deadpool_postgres::Client,
        consumer: &mut impl Consumer,
        woken: &mut Option<Wake>,
    ) -> anyhow::Result<bool> {
        let mut found = false;
        for after in consumer.cursors(client).await? {
            let reading = Instant::now();
            let events = log::read_after(client, after, self.batch_size).await?;
            if events.is_empty() {
                if let Some(wake) = woken {
                    wake.empty_reads += 1;
                }
                continue;
            }
            found = true;
            let (read, n) = (reading.elapsed(), events.len());
            let consuming = Instant::now();
            consumer.consume(client, after, events).await?;
            // Where a batch's time went, for `RUST_LOG=plinth_commands::follower=debug`
            // (docs/performance.md, "Where the latency goes").
            let since_wake = woken.take();
            tracing::debug!(
                events = n,
                since_wake_us = since_wake.map(|w| w.at.elapsed().as_micros() as u64),
                empty_reads = since_wake.map(|w| w.empty_reads),
                read_us = read.as_micros() as u64,
                consume_us = consuming.elapsed().as_micros() as u64,
                "batch"
            );
        }
        Ok(found)
    }

    /// Feeds `consumer` from the log on one pooled connection until something fails (cancel
    /// the future to stop). Dropped mid-batch, the consumer's checkpoint is where it last
    /// stored it, so the next session repeats a batch at most.
    pub async fn follow(&mut self, consumer: &mut impl Consumer) -> anyhow::Result<Infallible> {
        let mut client = self
            .pool
            .get()
            .await
            .context("failed to get a connection for reading the log")?;
        // While a wake-up is recent: when to stop looking eagerly, and the next delay.
        let mut eager: Option<(Instant, Duration)> = None;
        // The last wake-up not yet answered by a batch (for the timings of `step`).
        let mut woken: Option<Wake> = None;
        loop {
            // Wake-ups until now are answered by the reads below.
            self.wake.borrow_and_update();
            if self.step(&mut client, consumer, &mut woken).await? {
                continue;
            }
            let now = Instant::now();
            let mut idle = match &mut eager {
                Some((until, delay)) if now < *until => {
                    let this = (*delay).min(*until - now);
                    *delay = (*delay * 2).min(EAGER_MAX_DELAY);
                    this
                }
                _ => {
                    eager = None;
                    self.poll_interval
                }
            };
            if let Some(limit) = consumer.idle_at_most() {
                idle = idle.min(limit);
            }
            match tokio::time::timeout(idle, self.wake.changed()).await {
                Ok(Ok(())) => {
                    woken.get_or_insert(Wake {
                        at: Instant::now(),
                        empty_reads: 0,
                    });
                    eager = Some((
                        Instant::now() + self.poll_interval,
                        Duration::from_millis(1),
                    ))
                }
                // The listener is gone (it only ends by panicking): poll.
                Ok(Err(_)) => tokio::time::sleep(idle).await,
                Err(_elapsed) => {}
            }
        }
    }
}
