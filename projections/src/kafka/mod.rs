//! The Kafka relay (issue 4): the event store is the outbox.
//!
//! One relay per name (default `kafka`) tails the global log gap-safely from its checkpoint
//! (the write side's `plinth_commands::follower`, in the log's order) and publishes every event
//! with an idempotent rdkafka producer (`acks=all`, at most 5 requests in flight, lz4) to
//! `<prefix>.<aggregate plural>`, keyed by the stream id, the value being the event data exactly
//! as stored, with CloudEvents binary-mode headers. The checkpoint (`relay_checkpoints`) moves
//! only over a contiguous run of events the broker confirmed, so a crash at any point repeats
//! events (at-least-once; consumers dedupe by `ce_id`) but never skips one.
//!
//! The write side never waits for any of this: it only runs `pg_notify('plinth_events', '')` in
//! its transaction, which wakes the relay's follower; a fallback poll covers missed
//! notifications.
//! A broker outage stalls deliveries (librdkafka retries them forever, in order); the relay
//! session is restarted with exponential backoff on anything worse, resuming from the
//! checkpoint. Processes running the same relay name elect one leader with a PostgreSQL
//! advisory lock; the others stand by and take over when the leader's session ends.
//!
//! Not here: the consumers' side of deduplication (see `docs/events.md`), and topic
//! configuration beyond partitions and replication (retention etc. belong to the operator).

mod catalogue;
mod consume;
mod leader;
mod message;
mod producer;
pub mod raw;
mod republish;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use deadpool_postgres::Pool;

pub use crate::relay::checkpoint::checkpoint;
pub use crate::relay::lag::{lag, Lag};
pub(crate) use crate::relay::{checkpoint, is_stopped, stopped};
pub use catalogue::{catalogue_markdown, check_docs, event_schema_json, topics_of_event_type};
pub use consume::{consume, ConsumeConfig, ConsumeStats, ReceivedEvent};
pub use message::{topic_for_stream, HEADER_NAMES};
/// The rdkafka client context that routes librdkafka's logs to `tracing` (for other clients of
/// the broker, such as `plinth bench relay`'s consumer).
pub use producer::Context as TracingContext;
pub use republish::republish;

/// The checkpoint name `plinth serve` and `plinth relay` use unless told otherwise.
pub const DEFAULT_NAME: &str = "kafka";

/// How the relay connects and publishes. `RelayConfig::default()` suits a local broker; see
/// each field for what to change in production.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Kafka bootstrap servers (`host:port,host:port`).
    pub brokers: String,
    /// Topics are `<topic_prefix>.tenants`, `.users`, `.locations`, `.resource-providers`,
    /// `.providers`.
    pub topic_prefix: String,
    /// Checkpoint name. Relays with different names publish the whole log independently
    /// (e.g. to two clusters); processes sharing a name share one checkpoint and one leader.
    pub name: String,
    /// CloudEvents `ce_source`.
    pub source: String,
    /// A PostgreSQL URL for the relay's own connections: the one that LISTENs for
    /// `plinth_events` and the one that holds its leadership lock (e.g. to bypass a pooler
    /// that does not keep sessions). Without it the relay takes the lock connection out of the
    /// pool and listens with the server, user and database of the pool's connections, without
    /// a password (enough for trust or peer authentication; else notifications are missed and
    /// the relay finds new events by polling, every `poll_interval`).
    pub database_url: Option<String>,
    /// Events read per query.
    pub batch_size: i64,
    /// Batches handed to the producer but not yet confirmed; bounds memory during an outage.
    pub max_batches_in_flight: usize,
    /// Fallback poll of the log when no notification arrives.
    pub poll_interval: Duration,
    /// How often a standby relay retries the leadership lock.
    pub lock_retry_interval: Duration,
    /// How often the lag gauges are refreshed.
    pub lag_interval: Duration,
    /// On shutdown, how long to wait for in-flight deliveries before giving up on them (they
    /// are re-sent by the next leader).
    pub shutdown_grace: Duration,
    /// Backoff between failed relay sessions, doubling from `min` up to `max`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Partitions of the topics the relay creates. Changing it later re-keys partitions, so
    /// choose generously.
    pub partitions: i32,
    /// Replication factor of the topics the relay creates: 1 for a single test broker; 3 in
    /// production (with `min.insync.replicas=2` on the broker, so `acks=all` means something).
    pub replication_factor: i32,
    /// `compression.type`: lz4 (cheap) or zstd (smaller).
    pub compression: String,
    /// Extra librdkafka settings for the producer and admin client (TLS, SASL, ...), applied
    /// last. The delivery guarantees (`enable.idempotence`, `acks`,
    /// `max.in.flight.requests.per.connection`, `message.timeout.ms`) cannot be overridden.
    pub client_overrides: Vec<(String, String)>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_owned(),
            topic_prefix: "plinth".to_owned(),
            name: DEFAULT_NAME.to_owned(),
            source: "plinth".to_owned(),
            database_url: None,
            batch_size: 2000,
            max_batches_in_flight: 16,
            poll_interval: Duration::from_millis(500),
            lock_retry_interval: Duration::from_secs(1),
            lag_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(5),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            partitions: 6,
            replication_factor: 1,
            compression: "lz4".to_owned(),
            client_overrides: Vec::new(),
        }
    }
}

impl RelayConfig {
    /// The default configuration for `brokers` and `topic_prefix`.
    pub fn new(brokers: impl Into<String>, topic_prefix: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic_prefix: topic_prefix.into(),
            ..Self::default()
        }
    }

    /// Where to LISTEN: `database_url` if given, else derived from the pool by the follower.
    fn listen_config(&self) -> anyhow::Result<Option<tokio_postgres::Config>> {
        self.database_url
            .as_deref()
            .map(|url| url.parse().context("invalid database URL for the relay"))
            .transpose()
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.brokers.trim().is_empty(),
            "the relay needs Kafka brokers"
        );
        anyhow::ensure!(
            !self.topic_prefix.is_empty(),
            "the topic prefix must not be empty"
        );
        anyhow::ensure!(!self.name.is_empty(), "the relay name must not be empty");
        anyhow::ensure!(self.batch_size > 0, "batch size must be positive");
        anyhow::ensure!(
            self.max_batches_in_flight > 0,
            "at least one batch must be in flight"
        );
        anyhow::ensure!(self.partitions > 0, "topics need at least one partition");
        self.listen_config()?;
        // Building a producer checks every librdkafka setting, so a typo fails at start-up
        // instead of in a retry loop.
        drop(producer::build(self)?);
        Ok(())
    }
}

/// Runs the relay until `shutdown` completes: publishes the log as leader of `config.name`,
/// or stands by while another process leads. Errors (broker, database) are retried with
/// backoff from the last checkpoint; only an invalid configuration returns an error.
pub async fn run(
    pool: Pool,
    config: RelayConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    config.validate()?;
    let listen = config.listen_config()?;
    let config = Arc::new(config);
    crate::relay::run_until_shutdown(&pool, &config.name, config.lag_interval, shutdown, |stop| {
        leader::run(pool.clone(), config.clone(), listen, stop)
    })
    .await;
    Ok(())
}
