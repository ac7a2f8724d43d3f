//! The NATS relay (issue 14): the event log published to NATS JetStream as the change and event
//! messages of Infratographer's `go.infratographer.com/x/events`, so that its consumers
//! (`SubscribeChanges`, `SubscribeEvents`) run unchanged against Plinth.
//!
//! It is the Kafka relay's twin (docs/adr/0012-nats-relay.md): the same log follower from its
//! own checkpoint (`nats` by default, in `relay_checkpoints`), one leader per name by the same
//! advisory lock, and the checkpoint moved only over a contiguous run of events JetStream
//! acknowledged, so a crash repeats events but never skips one. Every message carries the
//! event id as `Nats-Msg-Id`, so a repeat inside the stream's duplicate window is dropped by
//! the server itself. The bytes come from [`message`], which needs each stream's state before
//! the event: [`history`] folds it from the log.
//!
//! Stream order follows log order because, by default ([`Ordering::Chained`]), every publish of
//! a session but the first names its predecessor in `Nats-Expected-Last-Msg-Id`: a message whose
//! predecessor was lost in flight is refused instead of overtaking it (see `session`).
//!
//! Plinth publishes; it does not own the stream. A subject no stream captures is an error (the
//! session fails and retries from the checkpoint, so nothing is lost while the operator adds
//! the stream); [`ensure_stream`] makes one for development and tests.

mod history;
mod json;
pub mod message;
mod republish;
mod session;
mod stream;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use deadpool_postgres::Pool;

pub use crate::relay::checkpoint::checkpoint;
pub use crate::relay::lag::{lag, Lag};
pub use message::{MessageConfig, Outgoing, StreamState};
pub use republish::{republish, Republished};
pub use stream::{ensure_stream, StreamConfig};

/// Whether each publish names the one before it, so that JetStream refuses a message whose
/// predecessor is not the stream's last message (`PLINTH_NATS_ORDERING`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ordering {
    /// Every publish of a session but the first carries `Nats-Expected-Last-Msg-Id` = the
    /// previous event's id: stream order is log order, but the stream must be Plinth's alone (a
    /// message of another publisher between two of Plinth's makes the second one refused).
    #[default]
    Chained,
    /// No expectation: other publishers may share the stream, but a publish lost in flight
    /// while later ones are stored is stored after them when re-sent.
    Unchained,
}

impl std::str::FromStr for Ordering {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "chained" => Ok(Self::Chained),
            "unchained" => Ok(Self::Unchained),
            other => Err(format!(
                "`{other}` is not a NATS ordering: `chained` or `unchained`"
            )),
        }
    }
}

impl std::fmt::Display for Ordering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Chained => "chained",
            Self::Unchained => "unchained",
        })
    }
}

/// The checkpoint name `plinth serve` and `plinth nats relay` use unless told otherwise.
pub const DEFAULT_NAME: &str = "nats";

/// How the relay connects and publishes.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated (`nats://host:4222`); credentials may go in the URL.
    pub url: String,
    /// Subject prefix and `source` of the messages.
    pub message: MessageConfig,
    /// Checkpoint name; processes sharing it share one checkpoint and one leader.
    pub name: String,
    /// A PostgreSQL URL for the relay's LISTEN and lock connections (see the Kafka relay's
    /// `RelayConfig::database_url`).
    pub database_url: Option<String>,
    /// Events read per query, and so published per batch.
    pub batch_size: i64,
    /// Batches published but not yet acknowledged: with `batch_size`, the bound on messages in
    /// flight (and on what a crash sends twice).
    pub max_batches_in_flight: usize,
    /// How long to wait for JetStream's acknowledgement of one message.
    pub ack_timeout: Duration,
    /// Whether publishes are chained by `Nats-Expected-Last-Msg-Id`.
    pub ordering: Ordering,
    /// Stream states kept between events (see `history`).
    pub state_cache: usize,
    pub poll_interval: Duration,
    pub lock_retry_interval: Duration,
    pub lag_interval: Duration,
    /// On shutdown, how long to wait for acknowledgements still due.
    pub shutdown_grace: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            message: MessageConfig::default(),
            name: DEFAULT_NAME.to_owned(),
            database_url: None,
            batch_size: 500,
            max_batches_in_flight: 4,
            ack_timeout: Duration::from_secs(5),
            ordering: Ordering::Chained,
            state_cache: 10_000,
            poll_interval: Duration::from_millis(500),
            lock_retry_interval: Duration::from_secs(1),
            lag_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(5),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl NatsConfig {
    /// The default configuration for the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    fn listen_config(&self) -> anyhow::Result<Option<tokio_postgres::Config>> {
        self.database_url
            .as_deref()
            .map(|url| url.parse().context("invalid database URL for the relay"))
            .transpose()
    }

    /// Messages in flight at most.
    fn max_in_flight(&self) -> usize {
        (self.batch_size.max(1) as usize).saturating_mul(self.max_batches_in_flight.max(1))
    }

    /// Checks the configuration without connecting to anything.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.url.trim().is_empty(), "the relay needs a NATS URL");
        validate_prefix(&self.message.prefix)?;
        anyhow::ensure!(
            !self.message.source.is_empty(),
            "the source must not be empty"
        );
        anyhow::ensure!(!self.name.is_empty(), "the relay name must not be empty");
        anyhow::ensure!(self.batch_size > 0, "batch size must be positive");
        anyhow::ensure!(
            self.max_batches_in_flight > 0,
            "at least one batch must be in flight"
        );
        self.listen_config()?;
        Ok(())
    }
}

/// A subject prefix is one or more dot-separated tokens without wildcards or whitespace.
pub fn validate_prefix(prefix: &str) -> anyhow::Result<()> {
    let valid = !prefix.is_empty()
        && prefix.split('.').all(|token| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| !c.is_whitespace() && c != '*' && c != '>')
        });
    anyhow::ensure!(
        valid,
        "`{prefix}` is not a NATS subject prefix (dot-separated tokens, no wildcards or spaces)"
    );
    Ok(())
}

/// Connects to NATS with a JetStream context whose acknowledgements time out after
/// `ack_timeout`, and that holds at most `max_in_flight` unacknowledged publishes (waiting for a
/// slot rather than failing).
pub(crate) async fn connect(
    url: &str,
    name: &str,
    ack_timeout: Duration,
    max_in_flight: usize,
) -> anyhow::Result<async_nats::jetstream::Context> {
    let client = async_nats::ConnectOptions::new()
        .name(format!("plinth-relay-{name}"))
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .with_context(|| format!("failed to connect to NATS at {url}"))?;
    Ok(async_nats::jetstream::ContextBuilder::new()
        .timeout(ack_timeout)
        .max_ack_inflight(max_in_flight.max(1))
        .backpressure_on_inflight(true)
        .build(client))
}

/// Runs the relay until `shutdown` completes: publishes the log as leader of `config.name`, or
/// stands by. Errors (NATS, database, a missing stream) are logged and retried with backoff
/// from the checkpoint; only an invalid configuration returns an error.
pub async fn run(
    pool: Pool,
    config: NatsConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    config.validate()?;
    let listen = config.listen_config()?;
    let config = Arc::new(config);
    crate::relay::run_until_shutdown(&pool, &config.name, config.lag_interval, shutdown, |stop| {
        session::run(pool.clone(), config.clone(), listen, stop)
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests;
