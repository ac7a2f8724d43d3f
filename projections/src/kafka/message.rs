//! What one event looks like on Kafka: topic, key, value and CloudEvents binary-mode headers.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike as _, Timelike as _, Utc};
use plinth_commands::StoredEvent;
use plinth_domain::AggregateKind;
use rdkafka::message::{Header, OwnedHeaders};

/// Topic suffix for streams whose id has no known prefix. The write side never creates such
/// streams; rows written by hand still have to go somewhere, since skipping them would leave
/// a hole and stalling on them would stop the whole relay.
pub(crate) const UNKNOWN_KIND_SUFFIX: &str = "unknown";

/// Every header the relay sets, in the order it sets them. The last two are present only when
/// the event has an actor / a trace context.
pub const HEADER_NAMES: [&str; 15] = [
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_subject",
    "ce_time",
    "content-type",
    "plinth_position",
    "plinth_stream_version",
    "plinth_schema_version",
    "plinth_correlation_id",
    "plinth_causation_id",
    "plinth_command_id",
    "plinth_actor",
    "traceparent",
];

/// `<prefix>.<plural of the stream's aggregate kind>`, e.g. `plinth.resource-providers`.
pub fn topic_for_stream(prefix: &str, stream_id: &str) -> String {
    let suffix =
        AggregateKind::of_stream(stream_id).map_or(UNKNOWN_KIND_SUFFIX, AggregateKind::plural);
    format!("{prefix}.{suffix}")
}

/// Builds the headers of events. Values are UTF-8 text so any client (and kcat) can read them.
///
/// librdkafka copies each header value, so values are written into one reused buffer (UUIDs
/// into a stack buffer) instead of a fresh `String` apiece: at tens of thousands of events a
/// second, allocations are most of the relay's own CPU time.
#[derive(Debug, Default)]
pub(crate) struct HeaderWriter {
    text: String,
}

impl HeaderWriter {
    /// `schema_version` is the version of the payload sent, which is the current one of the
    /// event's type even when the event was stored in an older one.
    pub(crate) fn headers(
        &mut self,
        event: &StoredEvent,
        schema_version: i32,
        source: &str,
    ) -> OwnedHeaders {
        fn h<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
            Header {
                key,
                value: Some(value),
            }
        }
        let meta = &event.metadata;
        let mut uuid = uuid::Uuid::encode_buffer();
        let mut headers = OwnedHeaders::new_with_capacity(HEADER_NAMES.len())
            .insert(h("ce_specversion", "1.0"))
            .insert(h(
                "ce_id",
                event.event_id.hyphenated().encode_lower(&mut uuid),
            ))
            .insert(h("ce_source", source))
            .insert(h("ce_type", &event.event_type))
            .insert(h("ce_subject", &event.stream_id))
            .insert(h("ce_time", self.rfc3339(event.recorded_at)))
            .insert(h("content-type", "application/json"))
            .insert(h("plinth_position", self.number(event.position)))
            .insert(h(
                "plinth_stream_version",
                self.number(event.stream_version),
            ))
            .insert(h(
                "plinth_schema_version",
                self.number(schema_version.into()),
            ))
            .insert(h(
                "plinth_correlation_id",
                meta.correlation_id.hyphenated().encode_lower(&mut uuid),
            ))
            .insert(h(
                "plinth_causation_id",
                meta.causation_id.hyphenated().encode_lower(&mut uuid),
            ))
            .insert(h(
                "plinth_command_id",
                meta.command_id.hyphenated().encode_lower(&mut uuid),
            ));
        if let Some(actor) = &meta.actor {
            headers = headers.insert(h("plinth_actor", actor.as_str()));
        }
        if let Some(traceparent) = &meta.traceparent {
            headers = headers.insert(h("traceparent", traceparent));
        }
        headers
    }

    fn number(&mut self, n: i64) -> &str {
        self.text.clear();
        let _ = write!(self.text, "{n}");
        &self.text
    }

    /// RFC 3339 in UTC with microseconds (what PostgreSQL stores), e.g.
    /// `2026-01-02T03:04:05.123456Z`; the same text as
    /// `to_rfc3339_opts(SecondsFormat::Micros, true)`, without its allocation.
    fn rfc3339(&mut self, at: DateTime<Utc>) -> &str {
        self.text.clear();
        let _ = write!(
            self.text,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            at.year(),
            at.month(),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.timestamp_subsec_micros().min(999_999)
        );
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plinth_commands::EventMetadata;
    use plinth_domain::{LocationId, TenantId, UserId};
    use rdkafka::message::Headers;

    fn event(stream_id: &str) -> StoredEvent {
        let id = uuid::Uuid::now_v7();
        StoredEvent {
            position: 42,
            tx: 7,
            event_id: id,
            stream_id: stream_id.to_owned(),
            stream_version: 3,
            event_type: "TenantUpdated".to_owned(),
            schema_version: 1,
            data: r#"{"tenant_id":"x"}"#.to_owned(),
            metadata: EventMetadata {
                actor: Some(UserId::for_identity("i", "s").to_string()),
                command_id: id,
                correlation_id: uuid::Uuid::now_v7(),
                causation_id: id,
                traceparent: None,
            },
            recorded_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            hash: vec![],
        }
    }

    #[test]
    fn ce_time_is_rfc3339_with_microseconds_in_utc() {
        let mut writer = HeaderWriter::default();
        for micros in [
            0,
            1_700_000_000_000_001,
            1_700_000_000_999_999,
            253_402_300_799_999_999,
        ] {
            let at = chrono::DateTime::from_timestamp_micros(micros).unwrap();
            assert_eq!(
                writer.rfc3339(at),
                at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            );
        }
    }

    #[test]
    fn topics_follow_the_aggregate_kind_of_the_stream() {
        assert_eq!(
            topic_for_stream("p", TenantId::generate().as_str()),
            "p.tenants"
        );
        assert_eq!(
            topic_for_stream("p", LocationId::generate().as_str()),
            "p.locations"
        );
        assert_eq!(topic_for_stream("p", "not-an-id"), "p.unknown");
    }

    #[test]
    fn headers_carry_cloudevents_attributes_and_plinth_extensions() {
        let e = event(TenantId::generate().as_str());
        let h = HeaderWriter::default().headers(&e, e.schema_version, "plinth");
        let get = |k: &str| {
            h.iter()
                .find(|x| x.key == k)
                .and_then(|x| x.value)
                .map(|v| String::from_utf8(v.to_vec()).unwrap())
        };
        assert_eq!(get("ce_specversion").as_deref(), Some("1.0"));
        assert_eq!(get("ce_id"), Some(e.event_id.to_string()));
        assert_eq!(get("ce_type").as_deref(), Some("TenantUpdated"));
        assert_eq!(get("ce_subject"), Some(e.stream_id.clone()));
        assert_eq!(
            get("ce_time").as_deref(),
            Some("2023-11-14T22:13:20.123456Z")
        );
        assert_eq!(get("content-type").as_deref(), Some("application/json"));
        assert_eq!(get("plinth_position").as_deref(), Some("42"));
        assert_eq!(get("plinth_stream_version").as_deref(), Some("3"));
        assert_eq!(
            get("plinth_correlation_id"),
            Some(e.metadata.correlation_id.to_string())
        );
        assert_eq!(
            get("plinth_actor"),
            e.metadata.actor.as_ref().map(|a| a.to_string())
        );
        assert_eq!(get("traceparent"), None);
        assert!(h.iter().all(|x| HEADER_NAMES.contains(&x.key)));
    }
}
