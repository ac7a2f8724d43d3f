//! Golden tests of the wire format: the bytes an Infratographer consumer receives.
//!
//! The inline goldens were written by hand from x/events' `ChangeMessage`/`EventMessage`
//! declarations and tenant-api's generated ent hooks, not produced by this code. The golden
//! file covers every event type; it was produced once by this code and then checked by eye
//! against the same rules (`PLINTH_UPDATE_GOLDEN=1` rewrites it).

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use plinth_commands::{EventMetadata, StoredEvent};
use plinth_domain::{upcast, Event, UserId};
use serde_json::{json, Value};
use uuid::Uuid;

use super::message::{self, kebab_case, MapError, MessageConfig, Outgoing, StreamState};
use super::Ordering;

const ROOT: &str = "tnntten-rootaaaaaaaaaaaaaaaaa";
const CHILD: &str = "tnntten-childaaaaaaaaaaaaaaaa";
const USER: &str = "idntusr-useraaaaaaaaaaaaaaaaa";
const LOC: &str = "lctnloc-locaaaaaaaaaaaaaaaaaa";
const RP: &str = "resopro-rpaaaaaaaaaaaaaaaaaaa";
const PROV: &str = "resoprv-provaaaaaaaaaaaaaaaaa";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn config() -> MessageConfig {
    MessageConfig {
        prefix: "com.infratographer".to_owned(),
        source: "plinth-test".to_owned(),
    }
}

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
}

/// A log being written: events with positions, per-stream versions and fixed times.
#[derive(Default)]
struct Log {
    events: Vec<StoredEvent>,
    versions: HashMap<String, i64>,
}

impl Log {
    /// Appends `event_type` with `data` to `stream`, recorded `seconds` and `micros` after
    /// [`base`].
    #[allow(clippy::too_many_arguments)]
    fn append(
        &mut self,
        stream: &str,
        event_type: &str,
        data: Value,
        actor: Option<&str>,
        traceparent: Option<&str>,
        seconds: i64,
        micros: i64,
    ) -> &StoredEvent {
        let position = self.events.len() as i64 + 1;
        let version = self.versions.entry(stream.to_owned()).or_default();
        *version += 1;
        let id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + position as u128);
        // Through the domain type, so that the data is exactly what Plinth would store.
        let event = Event::decode(event_type, upcast::current_version(event_type), data)
            .unwrap_or_else(|e| panic!("{event_type}: {e}"));
        self.events.push(StoredEvent {
            position,
            tx: position,
            event_id: id,
            stream_id: stream.to_owned(),
            stream_version: *version,
            event_type: event_type.to_owned(),
            schema_version: event.schema_version(),
            data: event.data().to_string(),
            metadata: EventMetadata {
                actor: actor.map(|a| UserId::parse(a).unwrap().to_string()),
                command_id: id,
                correlation_id: id,
                causation_id: id,
                traceparent: traceparent.map(str::to_owned),
            },
            recorded_at: base() + Duration::seconds(seconds) + Duration::microseconds(micros),
            hash: Vec::new(),
        });
        self.events.last().unwrap()
    }

    /// The messages of all events, folding each stream as the relay does.
    fn messages(&self) -> Vec<Outgoing> {
        let mut states: HashMap<&str, StreamState> = HashMap::new();
        self.events
            .iter()
            .map(|stored| {
                let event = stored.decode().unwrap();
                let state = states.entry(&stored.stream_id).or_default();
                let out = message::message(stored, &event, state, &config()).unwrap();
                state.apply(stored, &event);
                out
            })
            .collect()
    }
}

fn text(out: &Outgoing) -> &str {
    std::str::from_utf8(&out.payload).unwrap()
}

/// tenant-api's own pubsub test, as a log: root create, child create, rename, deletes.
fn tenant_log() -> Log {
    let mut log = Log::default();
    log.append(
        ROOT,
        "TenantCreated",
        json!({"tenant_id": ROOT, "name": "Root", "description": "Tenant <one> & co",
               "parent_id": null, "path": [], "depth": 0}),
        Some(USER),
        Some(TRACEPARENT),
        0,
        123_456,
    );
    log.append(
        CHILD,
        "TenantCreated",
        json!({"tenant_id": CHILD, "name": "child", "description": null,
               "parent_id": ROOT, "path": [ROOT], "depth": 1}),
        None,
        None,
        1,
        0,
    );
    log.append(
        CHILD,
        "TenantUpdated",
        json!({"tenant_id": CHILD, "name": "renamed", "description": null}),
        Some(USER),
        None,
        2,
        500_000,
    );
    log.append(
        CHILD,
        "TenantDeleted",
        json!({"tenant_id": CHILD}),
        Some(USER),
        None,
        3,
        10,
    );
    log.append(
        ROOT,
        "TenantDeleted",
        json!({"tenant_id": ROOT}),
        Some(USER),
        None,
        4,
        0,
    );
    log
}

#[test]
fn tenant_messages_are_byte_for_byte_what_tenant_api_publishes() {
    let messages = tenant_log().messages();
    let expected = [
        (
            "com.infratographer.changes.create.tenant",
            r#"{"subjectID":"tnntten-rootaaaaaaaaaaaaaaaaa","eventType":"create","additionalSubjects":[],"actorID":"idntusr-useraaaaaaaaaaaaaaaaa","source":"plinth-test","timestamp":"2026-01-02T03:04:05.123456Z","traceContext":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},"traceID":"","spanID":"","subjectFields":null,"fieldChanges":[{"field":"created_at","previousValue":"","currentValue":"2026-01-02T03:04:05Z"},{"field":"updated_at","previousValue":"","currentValue":"2026-01-02T03:04:05Z"},{"field":"name","previousValue":"","currentValue":"Root"},{"field":"description","previousValue":"","currentValue":"Tenant \u003cone\u003e \u0026 co"}],"additionalData":null}"#,
        ),
        (
            "com.infratographer.changes.create.tenant",
            r#"{"subjectID":"tnntten-childaaaaaaaaaaaaaaaa","eventType":"create","additionalSubjects":["tnntten-rootaaaaaaaaaaaaaaaaa"],"actorID":"unknown-actor","source":"plinth-test","timestamp":"2026-01-02T03:04:06Z","traceContext":{},"traceID":"","spanID":"","subjectFields":null,"fieldChanges":[{"field":"created_at","previousValue":"","currentValue":"2026-01-02T03:04:06Z"},{"field":"updated_at","previousValue":"","currentValue":"2026-01-02T03:04:06Z"},{"field":"name","previousValue":"","currentValue":"child"},{"field":"parent_tenant_id","previousValue":"","currentValue":"tnntten-rootaaaaaaaaaaaaaaaaa"}],"additionalData":null}"#,
        ),
        (
            "com.infratographer.changes.update.tenant",
            r#"{"subjectID":"tnntten-childaaaaaaaaaaaaaaaa","eventType":"update","additionalSubjects":["tnntten-rootaaaaaaaaaaaaaaaaa"],"actorID":"idntusr-useraaaaaaaaaaaaaaaaa","source":"plinth-test","timestamp":"2026-01-02T03:04:07.5Z","traceContext":{},"traceID":"","spanID":"","subjectFields":null,"fieldChanges":[{"field":"updated_at","previousValue":"2026-01-02T03:04:06Z","currentValue":"2026-01-02T03:04:07Z"},{"field":"name","previousValue":"child","currentValue":"renamed"}],"additionalData":null}"#,
        ),
        (
            "com.infratographer.changes.delete.tenant",
            r#"{"subjectID":"tnntten-childaaaaaaaaaaaaaaaa","eventType":"delete","additionalSubjects":["tnntten-rootaaaaaaaaaaaaaaaaa"],"actorID":"idntusr-useraaaaaaaaaaaaaaaaa","source":"plinth-test","timestamp":"2026-01-02T03:04:08.00001Z","traceContext":{},"traceID":"","spanID":"","subjectFields":null,"fieldChanges":null,"additionalData":null}"#,
        ),
        (
            "com.infratographer.changes.delete.tenant",
            r#"{"subjectID":"tnntten-rootaaaaaaaaaaaaaaaaa","eventType":"delete","additionalSubjects":[],"actorID":"idntusr-useraaaaaaaaaaaaaaaaa","source":"plinth-test","timestamp":"2026-01-02T03:04:09Z","traceContext":{},"traceID":"","spanID":"","subjectFields":null,"fieldChanges":null,"additionalData":null}"#,
        ),
    ];
    assert_eq!(messages.len(), expected.len());
    for (i, (message, (subject, payload))) in messages.iter().zip(expected).enumerate() {
        assert_eq!(message.subject, subject, "message {i}");
        assert_eq!(text(message), payload, "message {i}");
    }
    // The message id is the event id, so the stream's de-duplication keys on the event.
    assert_eq!(
        messages[0].msg_id,
        tenant_log().events[0].event_id.to_string()
    );
}

#[test]
fn other_events_are_event_messages_with_their_data() {
    let mut log = tenant_log();
    log.events.truncate(1);
    log.append(
        ROOT,
        "TenantAccessGranted",
        json!({"tenant_id": ROOT, "user_id": USER, "role": "editor"}),
        Some(USER),
        None,
        10,
        42,
    );
    let messages = log.messages();
    assert_eq!(
        messages[1].subject,
        "com.infratographer.events.tenant-access-granted.tenant"
    );
    assert_eq!(
        text(&messages[1]),
        r#"{"subjectID":"tnntten-rootaaaaaaaaaaaaaaaaa","eventType":"tenant-access-granted","additionalSubjects":["idntusr-useraaaaaaaaaaaaaaaaa"],"source":"plinth-test","timestamp":"2026-01-02T03:04:15.000042Z","traceContext":{},"traceID":"","spanID":"","data":{"role":"editor","tenant_id":"tnntten-rootaaaaaaaaaaaaaaaaa","user_id":"idntusr-useraaaaaaaaaaaaaaaaa"}}"#
    );
}

#[test]
fn an_update_lists_updated_at_and_only_what_changed() {
    let mut log = Log::default();
    log.append(
        LOC,
        "LocationCreated",
        json!({"location_id": LOC, "tenant_id": ROOT, "name": "DC", "description": "old"}),
        None,
        None,
        0,
        0,
    );
    // Name unchanged, description changed.
    log.append(
        LOC,
        "LocationUpdated",
        json!({"location_id": LOC, "name": "DC", "description": "new"}),
        None,
        None,
        60,
        0,
    );
    // Description removed: its current value is "".
    log.append(
        LOC,
        "LocationUpdated",
        json!({"location_id": LOC, "name": "DC", "description": null}),
        None,
        None,
        120,
        0,
    );
    let messages = log.messages();
    let changes = |i: usize| {
        let v: Value = serde_json::from_slice(&messages[i].payload).unwrap();
        (v["additionalSubjects"].clone(), v["fieldChanges"].clone())
    };
    assert_eq!(
        changes(1),
        (
            json!([ROOT]),
            json!([
                {"field": "updated_at", "previousValue": "2026-01-02T03:04:05Z", "currentValue": "2026-01-02T03:05:05Z"},
                {"field": "description", "previousValue": "old", "currentValue": "new"},
            ])
        )
    );
    assert_eq!(
        changes(2).1,
        json!([
            {"field": "updated_at", "previousValue": "2026-01-02T03:05:05Z", "currentValue": "2026-01-02T03:06:05Z"},
            {"field": "description", "previousValue": "new", "currentValue": ""},
        ])
    );
}

#[test]
fn updated_at_follows_updates_not_metadata() {
    let mut log = Log::default();
    log.append(
        RP,
        "ResourceProviderCreated",
        json!({"resource_provider_id": RP, "tenant_id": ROOT, "name": "lb",
               "description": null, "scopes": ["loadbalancer:*"]}),
        None,
        None,
        0,
        0,
    );
    log.append(
        RP,
        "AnnotationSet",
        json!({"resource_id": RP, "key": "example.com/a", "value": "b"}),
        None,
        None,
        30,
        0,
    );
    log.append(
        RP,
        "ResourceProviderUpdated",
        json!({"resource_provider_id": RP, "name": "lb2", "description": null}),
        None,
        None,
        60,
        0,
    );
    let v: Value = serde_json::from_slice(&log.messages()[2].payload).unwrap();
    assert_eq!(
        v["fieldChanges"][0]["previousValue"],
        "2026-01-02T03:04:05Z"
    );
}

#[test]
fn a_refolded_state_gives_the_same_bytes_as_a_followed_one() {
    let log = every_event_type();
    let followed = log.messages();
    for (i, stored) in log.events.iter().enumerate() {
        // Fold the stream from scratch, as after a restart or for a republished range.
        let mut state = StreamState::default();
        for before in log.events[..i]
            .iter()
            .filter(|e| e.stream_id == stored.stream_id)
        {
            state.apply(before, &before.decode().unwrap());
        }
        let again = message::message(stored, &stored.decode().unwrap(), &state, &config()).unwrap();
        assert_eq!(again, followed[i], "event {i} ({})", stored.event_type);
    }
}

#[test]
fn an_update_or_delete_without_its_creation_is_an_error_not_a_guess() {
    let mut log = Log::default();
    log.append(
        CHILD,
        "TenantUpdated",
        json!({"tenant_id": CHILD, "name": "x", "description": null}),
        None,
        None,
        0,
        0,
    );
    let stored = &log.events[0];
    let result = message::message(
        stored,
        &stored.decode().unwrap(),
        &StreamState::default(),
        &config(),
    );
    assert!(
        matches!(result, Err(MapError::MissingState { .. })),
        "{result:?}"
    );
}

#[test]
fn orderings_read_as_the_setting_spells_them() {
    assert_eq!(Ordering::default(), Ordering::Chained);
    for ordering in [Ordering::Chained, Ordering::Unchained] {
        assert_eq!(ordering.to_string().parse::<Ordering>(), Ok(ordering));
    }
    assert_eq!(
        "Chained".parse::<Ordering>(),
        Err("`Chained` is not a NATS ordering: `chained` or `unchained`".to_owned())
    );
}

#[test]
fn event_types_become_kebab_case() {
    assert_eq!(kebab_case("TenantAccessGranted"), "tenant-access-granted");
    assert_eq!(
        kebab_case("ResourceProviderAvailabilityRevoked"),
        "resource-provider-availability-revoked"
    );
    assert_eq!(kebab_case("StatusSet"), "status-set");
}

/// A log with at least one event of every type, on streams of every kind.
fn every_event_type() -> Log {
    let mut log = tenant_log();
    let mut t = 100;
    let mut add = |log: &mut Log, stream: &str, event_type: &str, data: Value| {
        t += 1;
        log.append(stream, event_type, data, Some(USER), None, t, 0);
    };
    add(
        &mut log,
        USER,
        "UserCreated",
        json!({"user_id": USER, "issuer": "https://issuer.example", "subject": "alice"}),
    );
    let root2 = "tnntten-root2aaaaaaaaaaaaaaaa";
    add(
        &mut log,
        root2,
        "TenantCreated",
        json!({"tenant_id": root2, "name": "Acme", "description": "d", "parent_id": null, "path": [], "depth": 0}),
    );
    add(
        &mut log,
        root2,
        "TenantUpdated",
        json!({"tenant_id": root2, "name": "Acme", "description": null}),
    );
    add(
        &mut log,
        root2,
        "TenantAccessGranted",
        json!({"tenant_id": root2, "user_id": USER, "role": "admin"}),
    );
    add(
        &mut log,
        root2,
        "TenantAccessRevoked",
        json!({"tenant_id": root2, "user_id": USER}),
    );
    add(
        &mut log,
        LOC,
        "LocationCreated",
        json!({"location_id": LOC, "tenant_id": root2, "name": "DC1", "description": null}),
    );
    add(
        &mut log,
        LOC,
        "LocationUpdated",
        json!({"location_id": LOC, "name": "DC-1", "description": "east"}),
    );
    add(
        &mut log,
        LOC,
        "LocationMadeAvailable",
        json!({"location_id": LOC, "tenant_id": ROOT, "include_subtenants": true}),
    );
    add(
        &mut log,
        LOC,
        "LocationAvailabilityRevoked",
        json!({"location_id": LOC, "tenant_id": ROOT}),
    );
    add(
        &mut log,
        RP,
        "ResourceProviderCreated",
        json!({"resource_provider_id": RP, "tenant_id": root2, "name": "LB", "description": "load balancers", "scopes": ["loadbalancer:*"]}),
    );
    add(
        &mut log,
        RP,
        "ResourceProviderUpdated",
        json!({"resource_provider_id": RP, "name": "LBaaS", "description": "load balancers"}),
    );
    add(
        &mut log,
        RP,
        "ResourceProviderMadeAvailable",
        json!({"resource_provider_id": RP, "tenant_id": ROOT, "include_subtenants": false}),
    );
    add(
        &mut log,
        RP,
        "ResourceProviderLocationAdded",
        json!({"resource_provider_id": RP, "location_id": LOC}),
    );
    add(
        &mut log,
        RP,
        "ProviderAuthorized",
        json!({"resource_provider_id": RP, "tenant_id": ROOT, "include_subtenants": true, "scopes": ["loadbalancer:*"]}),
    );
    add(
        &mut log,
        PROV,
        "ProviderRegistered",
        json!({"provider_id": PROV, "tenant_id": ROOT, "resource_provider_id": RP, "name": "haproxy"}),
    );
    add(
        &mut log,
        PROV,
        "AnnotationSet",
        json!({"resource_id": PROV, "key": "example.com/team", "value": "net"}),
    );
    add(
        &mut log,
        PROV,
        "AnnotationRemoved",
        json!({"resource_id": PROV, "key": "example.com/team"}),
    );
    add(
        &mut log,
        PROV,
        "StatusSet",
        json!({"resource_id": PROV, "source": "example.com/probe", "data": {"up": true, "load": 0.5}}),
    );
    add(
        &mut log,
        PROV,
        "StatusRemoved",
        json!({"resource_id": PROV, "source": "example.com/probe"}),
    );
    add(
        &mut log,
        PROV,
        "FinalizerAdded",
        json!({"resource_id": PROV, "finalizer": "example.com/cleanup"}),
    );
    add(
        &mut log,
        PROV,
        "DeletionRequested",
        json!({"resource_id": PROV, "requested_at": "2026-01-02T03:06:00Z", "finalizers": ["example.com/cleanup"]}),
    );
    add(
        &mut log,
        PROV,
        "FinalizerRemoved",
        json!({"resource_id": PROV, "finalizer": "example.com/cleanup"}),
    );
    add(
        &mut log,
        PROV,
        "ProviderUnregistered",
        json!({"provider_id": PROV}),
    );
    add(
        &mut log,
        RP,
        "ResourceProviderIdentityBound",
        json!({"resource_provider_id": RP, "issuer": "https://idp.example.com", "subject": "lb-operator"}),
    );
    add(
        &mut log,
        RP,
        "ResourceProviderIdentityUnbound",
        json!({"resource_provider_id": RP, "issuer": "https://idp.example.com", "subject": "lb-operator"}),
    );
    add(
        &mut log,
        RP,
        "ProviderAuthorizationRevoked",
        json!({"resource_provider_id": RP, "tenant_id": ROOT}),
    );
    add(
        &mut log,
        RP,
        "ResourceProviderLocationRemoved",
        json!({"resource_provider_id": RP, "location_id": LOC}),
    );
    add(
        &mut log,
        RP,
        "ResourceProviderAvailabilityRevoked",
        json!({"resource_provider_id": RP, "tenant_id": ROOT}),
    );
    add(
        &mut log,
        RP,
        "ResourceProviderDeleted",
        json!({"resource_provider_id": RP}),
    );
    add(
        &mut log,
        LOC,
        "LocationDeleted",
        json!({"location_id": LOC}),
    );
    log
}

#[test]
fn every_event_type_matches_the_golden_file() {
    let log = every_event_type();
    let covered: std::collections::BTreeSet<&str> =
        log.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        covered.len(),
        Event::TYPES.len(),
        "every event type is covered"
    );
    let mut actual = String::new();
    for (stored, message) in log.events.iter().zip(log.messages()) {
        actual.push_str(&format!(
            "# {} {}\n{}\n{}\n\n",
            stored.position,
            stored.event_type,
            message.subject,
            text(&message)
        ));
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/nats/golden.txt");
    if std::env::var_os("PLINTH_UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &actual).unwrap();
    }
    let golden = std::fs::read_to_string(path).unwrap();
    for (i, (a, g)) in actual.lines().zip(golden.lines()).enumerate() {
        assert_eq!(a, g, "line {} of {path}", i + 1);
    }
    assert_eq!(actual, golden);
}

/// The key order of x/events' structs, as `json.Marshal` writes them.
const CHANGE_KEYS: [&str; 12] = [
    "subjectID",
    "eventType",
    "additionalSubjects",
    "actorID",
    "source",
    "timestamp",
    "traceContext",
    "traceID",
    "spanID",
    "subjectFields",
    "fieldChanges",
    "additionalData",
];
const EVENT_KEYS: [&str; 9] = [
    "subjectID",
    "eventType",
    "additionalSubjects",
    "source",
    "timestamp",
    "traceContext",
    "traceID",
    "spanID",
    "data",
];

/// The top-level keys of a JSON object, in the order they are written.
fn top_level_keys(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    struct Keys<'a>(&'a mut Vec<String>);
    impl<'de> serde::de::Visitor<'de> for Keys<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                self.0.push(key);
            }
            Ok(())
        }
    }
    serde::Deserializer::deserialize_map(&mut de, Keys(&mut keys)).unwrap();
    keys
}

#[test]
fn every_message_has_exactly_the_keys_of_its_go_struct_in_order() {
    for message in every_event_type().messages() {
        let keys = top_level_keys(text(&message));
        let expected: &[&str] = if message.subject.contains(".changes.") {
            &CHANGE_KEYS
        } else {
            &EVENT_KEYS
        };
        assert_eq!(keys, expected, "{}", message.subject);
        let v: Value = serde_json::from_slice(&message.payload).unwrap();
        assert!(v["additionalSubjects"].is_array());
        if message.subject.contains(".changes.delete.") {
            assert!(v["fieldChanges"].is_null());
        } else if message.subject.contains(".changes.") {
            let fields: Vec<&str> = v["fieldChanges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["field"].as_str().unwrap())
                .collect();
            let first = if message.subject.contains(".create.") {
                vec!["created_at", "updated_at"]
            } else {
                vec!["updated_at"]
            };
            assert_eq!(fields[..first.len()], first[..], "{}", message.subject);
        }
    }
}
