//! An example consumer (`plinth consume`): reads Plinth topics in a consumer group, hands each
//! event to a handler, and commits its offset only after the handler succeeded, so a crash
//! re-delivers rather than skips. Redeliveries (the relay is at-least-once) are recognised by
//! `ce_id` and skipped.

use std::collections::{HashSet, VecDeque};
use std::future::Future;

use anyhow::Context as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers as _, Message as _};
use serde::Serialize;
use uuid::Uuid;

use super::producer::Context;

/// Where and how to consume.
#[derive(Debug, Clone)]
pub struct ConsumeConfig {
    pub brokers: String,
    /// The consumer group: offsets are committed per group.
    pub group_id: String,
    /// Full topic names, e.g. `plinth.tenants`.
    pub topics: Vec<String>,
    /// Where a group without committed offsets starts: the beginning, or only new events.
    pub from_beginning: bool,
    /// Stop after handling this many events.
    pub max_events: Option<u64>,
    /// How many recent event ids to remember for skipping redeliveries. A real consumer
    /// records the ids (or, per key, the highest stream version) it applied in its own
    /// database, in the transaction that applies the event.
    pub dedupe_window: usize,
    /// Extra librdkafka settings (TLS, SASL, ...).
    pub client_overrides: Vec<(String, String)>,
}

impl ConsumeConfig {
    pub fn new(
        brokers: impl Into<String>,
        group_id: impl Into<String>,
        topics: Vec<String>,
    ) -> Self {
        Self {
            brokers: brokers.into(),
            group_id: group_id.into(),
            topics,
            from_beginning: true,
            max_events: None,
            dedupe_window: 100_000,
            client_overrides: Vec::new(),
        }
    }
}

/// One event as a consumer sees it: the message's coordinates, its CloudEvents attributes and
/// Plinth's extension headers, and the data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceivedEvent {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The message key: the stream (aggregate) id.
    pub key: String,
    pub id: Uuid,
    pub event_type: String,
    pub source: String,
    pub subject: String,
    pub time: String,
    pub position: i64,
    pub stream_version: i64,
    pub schema_version: i32,
    pub correlation_id: Uuid,
    /// The event data, exactly as stored (JSON text).
    pub data: serde_json::Value,
}

impl ReceivedEvent {
    /// Reads a message the relay published.
    pub fn from_message(message: &BorrowedMessage<'_>) -> anyhow::Result<Self> {
        let header = |name: &str| -> anyhow::Result<String> {
            let headers = message.headers().context("message has no headers")?;
            let value = headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .with_context(|| format!("message has no {name} header"))?;
            Ok(String::from_utf8(value.to_vec())?)
        };
        let key = message.key().context("message has no key")?;
        let payload = message.payload().context("message has no value")?;
        Ok(Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: String::from_utf8(key.to_vec())?,
            id: header("ce_id")?.parse()?,
            event_type: header("ce_type")?,
            source: header("ce_source")?,
            subject: header("ce_subject")?,
            time: header("ce_time")?,
            position: header("plinth_position")?.parse()?,
            stream_version: header("plinth_stream_version")?.parse()?,
            schema_version: header("plinth_schema_version")?.parse()?,
            correlation_id: header("plinth_correlation_id")?.parse()?,
            data: serde_json::from_slice(payload).context("message value is not JSON")?,
        })
    }
}

/// What a [`consume`] run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumeStats {
    pub handled: u64,
    pub duplicates: u64,
}

/// Consumes until `shutdown`, a handler error, or `max_events`. The handler sees each event
/// id once (within the dedupe window); an offset is stored for commit only after the handler
/// returned `Ok`, and stored offsets are committed synchronously before returning.
pub async fn consume<F, Fut>(
    config: &ConsumeConfig,
    shutdown: impl Future<Output = ()>,
    mut handler: F,
) -> anyhow::Result<ConsumeStats>
where
    F: FnMut(ReceivedEvent) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set(
            "auto.offset.reset",
            if config.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        )
        // Commit in the background, but only offsets stored after processing.
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    for (k, v) in &config.client_overrides {
        client.set(k, v);
    }
    let consumer: StreamConsumer<Context> = client
        .create_with_context(Context)
        .context("invalid Kafka consumer configuration")?;
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).context("failed to subscribe")?;

    let mut stats = ConsumeStats::default();
    let mut seen = HashSet::new();
    let mut seen_order = VecDeque::new();
    tokio::pin!(shutdown);
    let result = loop {
        if config.max_events.is_some_and(|max| stats.handled >= max) {
            break Ok(());
        }
        let message = tokio::select! {
            m = consumer.recv() => m,
            () = &mut shutdown => break Ok(()),
        };
        let message = match message {
            Ok(m) => m,
            // Transient (broker away, rebalance): librdkafka recovers by itself.
            Err(e) => {
                tracing::debug!(error = %e, "consumer error");
                continue;
            }
        };
        let event = match ReceivedEvent::from_message(&message) {
            Ok(event) => event,
            Err(e) => {
                let at = format!(
                    "{}/{}@{}",
                    message.topic(),
                    message.partition(),
                    message.offset()
                );
                break Err(e.context(format!("unreadable message at {at}")));
            }
        };
        if seen.contains(&event.id) {
            stats.duplicates += 1;
        } else {
            let id = event.id;
            if let Err(e) = handler(event).await {
                break Err(e);
            }
            stats.handled += 1;
            seen.insert(id);
            seen_order.push_back(id);
            if seen_order.len() > config.dedupe_window {
                if let Some(old) = seen_order.pop_front() {
                    seen.remove(&old);
                }
            }
        }
        consumer
            .store_offset_from_message(&message)
            .context("failed to store the offset")?;
    };
    // Commit what was processed; `NoOffset` only means nothing was stored.
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        if e.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::NoOffset) {
            return Err(anyhow::Error::new(e).context("failed to commit offsets"));
        }
    }
    result.map(|()| stats)
}
