//! The shapes the event store reads and writes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use plinth_domain::{DecodeError, Event, UserId};

/// Stored with every event: who, why, and in answer to what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The acting user; `null` for events the system records itself.
    pub actor: Option<UserId>,
    pub command_id: Uuid,
    /// Shared by everything done for one originating request.
    pub correlation_id: Uuid,
    /// What directly caused this event: the command, unless the caller named a cause.
    pub causation_id: Uuid,
    /// W3C `traceparent` of the request, when it carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// A position in the global log that a reader has processed up to. Ordered by the appending
/// transaction first: see `EventStore::read_after`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Checkpoint {
    pub tx: i64,
    pub position: i64,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub position: i64,
    pub tx: i64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    /// The exact stored JSON text of the data (what was hashed and what is published).
    pub data: String,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
    pub hash: Vec<u8>,
}

impl StoredEvent {
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            tx: self.tx,
            position: self.position,
        }
    }

    /// The domain event, upcast to the current schema.
    pub fn decode(&self) -> Result<Event, DecodeError> {
        let data = serde_json::from_str(&self.data).map_err(|source| DecodeError::Data {
            event_type: self.event_type.clone(),
            source,
        })?;
        Event::decode(&self.event_type, self.schema_version, data)
    }
}

/// One appended event, as reported to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendedEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub stream_version: i64,
    pub position: i64,
}

/// The result of a command: what `POST /v1/commands` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    pub command_id: Uuid,
    pub aggregate_id: String,
    pub stream_id: String,
    /// The stream's version after the command.
    pub version: i64,
    /// The global position of the stream's last event after the command (for
    /// `?min_position=` read-your-writes).
    pub position: i64,
    pub events: Vec<AppendedEvent>,
}
