//! Writing valid events straight into the log, in bulk, for benchmarks and property tests:
//! the events a real write side would have appended (stream versions in order, metadata with
//! the ids `StoredEvent::decode` and the audit expect), without the cost of deciding each
//! command. Hashes are not chained: `plinth audit verify` would reject such a log, so it is
//! never for a real database.

use std::collections::HashMap;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use futures::pin_mut;
use serde_json::json;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use uuid::Uuid;

use plinth_domain::Event;

/// Appends events to the log with consecutive stream versions.
#[derive(Debug)]
pub struct LogWriter {
    versions: HashMap<String, i64>,
    clock: DateTime<Utc>,
    /// Events are recorded for these users in turn, so that an actor's events are a known
    /// share of the log spread all along it (as a busy platform's are).
    actors: Vec<String>,
    written: usize,
}

impl Default for LogWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl LogWriter {
    /// A writer whose events all have one actor.
    pub fn new() -> Self {
        Self::with_actors(1)
    }

    /// A writer whose events have `actors` (at least one) different actors, in turn.
    pub fn with_actors(actors: usize) -> Self {
        Self {
            versions: HashMap::new(),
            clock: DateTime::from_timestamp_micros(Utc::now().timestamp_micros())
                .unwrap_or_default(),
            actors: (0..actors.max(1))
                .map(|i| {
                    plinth_domain::UserId::for_identity("plinth-synthetic", &format!("writer-{i}"))
                        .to_string()
                })
                .collect(),
            written: 0,
        }
    }

    /// The actors events are recorded for.
    pub fn actors(&self) -> &[String] {
        &self.actors
    }

    /// Writes `events` ((stream id, event), in log order) in one transaction with `COPY`.
    pub async fn write(
        &mut self,
        client: &mut deadpool_postgres::Client,
        events: &[(String, Event)],
    ) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let tx = client.transaction().await?;
        let sink = tx
            .copy_in(
                "copy events (event_id, stream_id, stream_version, event_type, schema_version, data,
                              metadata, recorded_at, hash) from stdin binary",
            )
            .await?;
        let types = [
            Type::UUID,
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::INT4,
            Type::JSON,
            Type::JSON,
            Type::TIMESTAMPTZ,
            Type::BYTEA,
        ];
        let writer = BinaryCopyInWriter::new(sink, &types);
        pin_mut!(writer);
        let hash = vec![0u8; 32];
        for (stream, event) in events {
            let version = self.versions.entry(stream.clone()).or_insert(0);
            *version += 1;
            let event_id = Uuid::now_v7();
            let actor = &self.actors[self.written % self.actors.len()];
            self.written += 1;
            let metadata = json!({
                "actor": actor,
                "command_id": event_id,
                "correlation_id": event_id,
                "causation_id": event_id,
            });
            self.clock += ChronoDuration::microseconds(1);
            writer
                .as_mut()
                .write(&[
                    &event_id,
                    stream,
                    &*version,
                    &event.event_type(),
                    &event.schema_version(),
                    &event.data(),
                    &metadata,
                    &self.clock,
                    &hash,
                ])
                .await?;
        }
        writer.finish().await?;
        tx.commit().await?;
        Ok(())
    }
}
