//! The rdkafka producer and admin client, configured for ordered, at-least-once delivery.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use plinth_commands::StoredEvent;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};

use super::message::{HeaderWriter, UNKNOWN_KIND_SUFFIX};
use super::RelayConfig;

/// Routes librdkafka's logs and errors to `tracing` (the `log` crate is not wired up here).
#[derive(Debug, Clone, Copy, Default)]
pub struct Context;

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "{fac}: {message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac}: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{fac}: {message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Broker-down errors repeat every reconnect attempt while the broker is away; they are
        // expected during an outage and the relay's lag shows their effect.
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

/// Consumers (the example consumer, the bench) keep the default rebalance behaviour.
impl rdkafka::consumer::ConsumerContext for Context {}

pub(crate) type Producer = FutureProducer<Context>;

/// Settings shared by the producer and the admin client.
fn base_config(config: &RelayConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("client.id", format!("plinth-relay-{}", config.name))
        // Reconnect quickly once the broker is back; librdkafka backs off exponentially up to
        // the max between attempts.
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "2000");
    c
}

/// The producer. Ordering and delivery guarantees come from these settings:
/// - `enable.idempotence`: the broker drops a retried batch it already has and refuses one that
///   would leave a gap, so retries neither duplicate nor reorder within a partition;
/// - `acks=all`: confirmed means written to every in-sync replica;
/// - `max.in.flight.requests.per.connection=5`: the most idempotence keeps ordered;
/// - `message.timeout.ms=0` (never): during an outage messages wait in librdkafka and are sent
///   in order when the broker returns. A finite timeout would fail a message while later ones
///   of its partition may still succeed, which is exactly the reordering to avoid.
pub(crate) fn build(config: &RelayConfig) -> anyhow::Result<Producer> {
    let mut c = base_config(config);
    c.set("compression.type", &config.compression)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("retry.backoff.ms", "100")
        .set("retry.backoff.max.ms", "1000");
    for (k, v) in &config.client_overrides {
        c.set(k, v);
    }
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("message.timeout.ms", "0");
    c.create_with_context(Context)
        .context("invalid Kafka producer configuration")
}

fn admin(config: &RelayConfig) -> anyhow::Result<AdminClient<Context>> {
    let mut c = base_config(config);
    for (k, v) in &config.client_overrides {
        c.set(k, v);
    }
    c.create_with_context(Context)
        .context("invalid Kafka admin configuration")
}

/// Creates topics on first use and remembers which exist.
pub(crate) struct Topics {
    admin: AdminClient<Context>,
    prefix: String,
    partitions: i32,
    replication_factor: i32,
    /// Topic names by suffix, once created (or found to exist).
    known: HashMap<&'static str, String>,
}

impl std::fmt::Debug for Topics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topics")
            .field("prefix", &self.prefix)
            .field("known", &self.known)
            .finish()
    }
}

impl Topics {
    pub(crate) fn new(config: &RelayConfig) -> anyhow::Result<Self> {
        Ok(Self {
            admin: admin(config)?,
            prefix: config.topic_prefix.clone(),
            partitions: config.partitions,
            replication_factor: config.replication_factor,
            known: HashMap::new(),
        })
    }

    /// Creates the topic of every aggregate kind, so consumers can subscribe before the first
    /// event of a kind exists.
    pub(crate) async fn ensure_all(&mut self) -> anyhow::Result<()> {
        let suffixes: Vec<&'static str> = plinth_domain::AggregateKind::ALL
            .iter()
            .map(|k| k.plural())
            .collect();
        self.ensure(&suffixes).await
    }

    /// The topic for `stream_id` (see [`super::topic_for_stream`]), created if this relay has
    /// not seen it yet.
    pub(crate) async fn for_stream(&mut self, stream_id: &str) -> anyhow::Result<&str> {
        let suffix = plinth_domain::AggregateKind::of_stream(stream_id)
            .map_or(UNKNOWN_KIND_SUFFIX, plinth_domain::AggregateKind::plural);
        if !self.known.contains_key(suffix) {
            self.ensure(&[suffix]).await?;
        }
        Ok(&self.known[suffix])
    }

    async fn ensure(&mut self, suffixes: &[&'static str]) -> anyhow::Result<()> {
        let names: Vec<String> = suffixes
            .iter()
            .map(|s| format!("{}.{s}", self.prefix))
            .collect();
        let new: Vec<NewTopic<'_>> = names
            .iter()
            .map(|n| {
                NewTopic::new(
                    n,
                    self.partitions,
                    TopicReplication::Fixed(self.replication_factor),
                )
            })
            .collect();
        let options = AdminOptions::new()
            .request_timeout(Some(Duration::from_secs(10)))
            .operation_timeout(Some(Duration::from_secs(10)));
        let results = self
            .admin
            .create_topics(&new, &options)
            .await
            .context("failed to create topics")?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => anyhow::bail!("failed to create topic {name}: {code}"),
            }
        }
        for (suffix, name) in suffixes.iter().zip(names) {
            self.known.insert(suffix, name);
        }
        Ok(())
    }
}

/// A producer with its topics and header scratch space: what sends events.
pub(crate) struct Publisher {
    pub(crate) producer: Producer,
    topics: Topics,
    headers: HeaderWriter,
    source: String,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topics", &self.topics)
            .finish()
    }
}

impl Publisher {
    pub(crate) fn new(config: &RelayConfig) -> anyhow::Result<Self> {
        Ok(Self {
            producer: build(config)?,
            topics: Topics::new(config)?,
            headers: HeaderWriter::default(),
            source: config.source.clone(),
        })
    }

    pub(crate) async fn ensure_all_topics(&mut self) -> anyhow::Result<()> {
        self.topics.ensure_all().await
    }

    /// Hands one event to librdkafka (waiting while its local queue is full) and returns the
    /// future of its delivery report.
    pub(crate) async fn send(&mut self, event: &StoredEvent) -> anyhow::Result<DeliveryFuture> {
        let topic = self.topics.for_stream(&event.stream_id).await?;
        // Consumers get every event in its type's current shape (old ones upcast), with
        // `plinth_schema_version` naming that shape: docs/adr/0006-schema-evolution.md.
        let (schema_version, data) = event.current_data().with_context(|| {
            format!(
                "event {} at position {} ({} v{}) cannot be published",
                event.event_id, event.position, event.event_type, event.schema_version
            )
        })?;
        loop {
            let record = FutureRecord::to(topic)
                .key(event.stream_id.as_str())
                .payload(data.as_ref())
                .headers(self.headers.headers(event, schema_version, &self.source));
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    fatal(&self.producer)?;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "failed to enqueue event at position {}",
                        event.position
                    )))
                }
            }
        }
    }
}

/// An idempotent producer can hit a fatal error (e.g. the broker lost its sequence state); it
/// must then be replaced, and the relay restarts its session from the checkpoint.
pub(crate) fn fatal(producer: &Producer) -> anyhow::Result<()> {
    match producer.client().fatal_error() {
        Some((code, reason)) => {
            anyhow::bail!("the Kafka producer hit a fatal error: {code}: {reason}")
        }
        None => Ok(()),
    }
}

/// Waits for a delivery report. `Ok(false)` if `give_up` resolved first.
pub(crate) async fn confirmed(
    producer: &Producer,
    delivery: &mut DeliveryFuture,
    position: i64,
    mut give_up: impl FnMut() -> bool,
) -> anyhow::Result<bool> {
    // Most reports are in by the time they are awaited: check once before arming a timer.
    let mut report = futures::FutureExt::now_or_never(&mut *delivery).map(Ok);
    loop {
        let outcome = match report.take() {
            Some(ready) => ready,
            None => tokio::time::timeout(Duration::from_millis(500), &mut *delivery).await,
        };
        match outcome {
            Ok(Ok(Ok(_))) => return Ok(true),
            Ok(Ok(Err((e, _)))) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "the broker refused the event at position {position}"
                )))
            }
            Ok(Err(_canceled)) => {
                anyhow::bail!("the producer dropped the event at position {position}")
            }
            Err(_elapsed) => {
                fatal(producer)?;
                if give_up() {
                    return Ok(false);
                }
            }
        }
    }
}
