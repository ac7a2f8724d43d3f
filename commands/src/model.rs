//! The shapes the event store reads and writes.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use plinth_domain::{DecodeError, Event};

/// Stored with every event: who, why, and in answer to what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The acting principal's id: a user's (`idntusr-…`) or a resource provider's
    /// (`resopro-…`, signed in with a bound identity); `null` for events the system records
    /// itself.
    pub actor: Option<String>,
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

    /// The event's data in the current schema version of its type, with that version: the
    /// stored text byte for byte when it is current (or its type is unknown here), the upcast
    /// data otherwise. What the relay publishes and the audit log shows
    /// (docs/adr/0006-schema-evolution.md).
    pub fn current_data(&self) -> Result<(i32, Cow<'_, str>), DecodeError> {
        let current = plinth_domain::upcast::current_version(&self.event_type);
        let known = Event::TYPES.contains(&self.event_type.as_str());
        if self.schema_version == current || !known {
            return Ok((self.schema_version, Cow::Borrowed(&self.data)));
        }
        let data = serde_json::from_str(&self.data).map_err(|source| DecodeError::Data {
            event_type: self.event_type.clone(),
            source,
        })?;
        let data = plinth_domain::upcast::upcast(&self.event_type, self.schema_version, data)?;
        Ok((current, Cow::Owned(data.to_string())))
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppendedEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub stream_version: i64,
    pub position: i64,
}

/// The result of a command: what `POST /v1/commands` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(event_type: &str, schema_version: i32, data: &str) -> StoredEvent {
        let id = Uuid::now_v7();
        StoredEvent {
            position: 7,
            tx: 1,
            event_id: id,
            stream_id: "tnntten-x".to_owned(),
            stream_version: 1,
            event_type: event_type.to_owned(),
            schema_version,
            data: data.to_owned(),
            metadata: EventMetadata {
                actor: None,
                command_id: id,
                correlation_id: id,
                causation_id: id,
                traceparent: None,
            },
            recorded_at: Utc::now(),
            hash: Vec::new(),
        }
    }

    #[test]
    fn current_events_keep_their_stored_bytes_and_old_ones_are_upcast() {
        let current = stored("TenantDeleted", 1, r#"{ "tenant_id":"t" }"#);
        let (version, data) = current.current_data().unwrap();
        assert_eq!((version, data.as_ref()), (1, current.data.as_str()));
        assert!(matches!(data, Cow::Borrowed(_)));

        let old = stored("TenantCreated", 1, r#"{"path":["a","b"]}"#);
        let (version, data) = old.current_data().unwrap();
        assert_eq!(version, 2);
        let data: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(data["depth"], 2);
    }

    #[test]
    fn a_version_from_the_future_is_an_error_naming_type_and_version() {
        let future = stored("TenantCreated", 9, "{}");
        let err = future.current_data().unwrap_err().to_string();
        assert!(err.contains("TenantCreated") && err.contains('9'), "{err}");
    }

    #[test]
    fn unknown_types_pass_through_untouched() {
        let unknown = stored("SomethingElse", 3, r#"{"x":1}"#);
        let (version, data) = unknown.current_data().unwrap();
        assert_eq!((version, data.as_ref()), (3, r#"{"x":1}"#));
    }
}
