//! From a stored event to the NATS message an Infratographer service would have published for
//! the same change (`go.infratographer.com/x/events`, unchanged from v0.3.5 to v0.13.2).
//!
//! Pure: the subject and the bytes depend only on the event and on its stream's state before it
//! ([`StreamState`], folded from the log by the caller), never on read models or the clock, so
//! that re-publishing an event produces the identical message (and JetStream's de-duplication
//! by `Nats-Msg-Id` sees the same thing twice).
//!
//! Create/update/delete of tenants, locations, resource providers, providers and users become
//! `ChangeMessage`s on `<prefix>.changes.<create|update|delete>.<subject type>`, with field
//! changes as the services' ent hooks derive them: snake_case names, `created_at` and
//! `updated_at` first, times to the second, `previousValue` `""` on create, an update lists
//! `updated_at` and only the fields that changed, a delete lists none (`null`) but keeps the
//! parent or owner in `additionalSubjects`. Every other event becomes an `EventMessage` on
//! `<prefix>.events.<kebab-case event type>.<subject type>` whose `data` is the event's data.

use chrono::{DateTime, SecondsFormat, Timelike as _, Utc};
use plinth_commands::StoredEvent;
use plinth_domain::values::Description;
use plinth_domain::{apply, Aggregate, AggregateKind, Body, DecodeError, Event};

use super::json;

/// What Infratographer services put in `actorID` when no user caused the change.
pub const UNKNOWN_ACTOR: &str = "unknown-actor";

/// How messages are addressed and signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageConfig {
    /// Subject prefix: x/events' `PublishPrefix` (`com.infratographer` in their deployments).
    pub prefix: String,
    /// The messages' `source` (x/events' `Source`, the publishing app's name).
    pub source: String,
}

impl Default for MessageConfig {
    fn default() -> Self {
        Self {
            prefix: "com.infratographer".to_owned(),
            source: "plinth".to_owned(),
        }
    }
}

/// A message ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub subject: String,
    /// The JSON body, as Go's `json.Marshal` writes the message.
    pub payload: Vec<u8>,
    /// `Nats-Msg-Id`: the event id, so the stream drops a re-sent copy inside its window.
    pub msg_id: String,
}

/// Why an event cannot be mapped. Each means the log is not what the domain writes (or this
/// Plinth is older than the one that wrote it); the relay stops rather than skip the event.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("stream `{0}` is of no kind Plinth knows")]
    UnknownStream(String),
    #[error(
        "{event_type} at position {position}: its stream `{stream}` has no {needed} before it"
    )]
    MissingState {
        event_type: String,
        position: i64,
        stream: String,
        needed: &'static str,
    },
}

/// A stream's state after some prefix of its events: what the next event's message needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamState {
    /// The stream version last applied (0: none).
    pub version: i64,
    pub aggregate: Option<Aggregate>,
    /// When it was created, and when it was last created, updated or deleted: the times
    /// Plinth's read models and API show as `created_at` and `updated_at`.
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl StreamState {
    /// Folds the next event of the stream in.
    pub fn apply(&mut self, stored: &StoredEvent, event: &Event) {
        self.aggregate = apply(self.aggregate.take(), event);
        if creates(event) {
            self.created_at.get_or_insert(stored.recorded_at);
        }
        if touches(event) {
            self.updated_at = Some(stored.recorded_at);
        }
        self.version = stored.stream_version;
    }
}

fn creates(event: &Event) -> bool {
    matches!(change_type(event), Some(ChangeType::Create))
}

/// Events that move `updated_at`, as in the read models: creates, updates, deletes and a
/// requested deletion (metadata, grants and availability do not).
fn touches(event: &Event) -> bool {
    change_type(event).is_some() || matches!(event, Event::DeletionRequested { .. })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChangeType {
    Create,
    Update,
    Delete,
}

impl ChangeType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

fn change_type(event: &Event) -> Option<ChangeType> {
    use Event as E;
    Some(match event {
        E::TenantCreated { .. }
        | E::UserCreated { .. }
        | E::LocationCreated { .. }
        | E::ResourceProviderCreated { .. }
        | E::ProviderRegistered { .. } => ChangeType::Create,
        E::TenantUpdated { .. } | E::LocationUpdated { .. } | E::ResourceProviderUpdated { .. } => {
            ChangeType::Update
        }
        E::TenantDeleted { .. }
        | E::LocationDeleted { .. }
        | E::ResourceProviderDeleted { .. }
        | E::ProviderUnregistered { .. } => ChangeType::Delete,
        _ => return None,
    })
}

/// The subject type of a stream, as the Infratographer services name theirs.
pub fn subject_type(kind: AggregateKind) -> &'static str {
    match kind {
        AggregateKind::Tenant => "tenant",
        AggregateKind::User => "user",
        AggregateKind::Location => "location",
        AggregateKind::ResourceProvider => "resource-provider",
        AggregateKind::Provider => "provider",
    }
}

/// `TenantAccessGranted` → `tenant-access-granted`.
pub fn kebab_case(event_type: &str) -> String {
    let mut out = String::with_capacity(event_type.len() + 4);
    for (i, c) in event_type.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The message for `stored` (decoded: `event`), given its stream's state before it.
pub fn message(
    stored: &StoredEvent,
    event: &Event,
    before: &StreamState,
    config: &MessageConfig,
) -> Result<Outgoing, MapError> {
    let kind = AggregateKind::of_stream(&stored.stream_id)
        .ok_or_else(|| MapError::UnknownStream(stored.stream_id.clone()))?;
    let subject_type = subject_type(kind);
    let (subject, payload) = match change_type(event) {
        Some(change) => {
            let (additional, fields) = change_of(stored, event, before)?;
            let subject = format!(
                "{}.changes.{}.{subject_type}",
                config.prefix,
                change.as_str()
            );
            let body = change_message(stored, change, &additional, fields.as_deref(), config);
            (subject, body)
        }
        None => {
            let name = kebab_case(&stored.event_type);
            let subject = format!("{}.events.{name}.{subject_type}", config.prefix);
            let additional: Vec<String> = involved(event)
                .into_iter()
                .filter(|id| *id != stored.stream_id)
                .collect();
            let (_, data) = stored.current_data()?;
            let data: serde_json::Value =
                serde_json::from_str(&data).map_err(|source| DecodeError::Data {
                    event_type: stored.event_type.clone(),
                    source,
                })?;
            let body = event_message(stored, &name, &additional, &data, config);
            (subject, body)
        }
    };
    Ok(Outgoing {
        subject,
        payload: payload.into_bytes(),
        msg_id: stored.event_id.to_string(),
    })
}

/// One entry of `fieldChanges`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldChange {
    field: &'static str,
    previous: String,
    current: String,
}

fn created(field: &'static str, current: impl Into<String>) -> FieldChange {
    FieldChange {
        field,
        previous: String::new(),
        current: current.into(),
    }
}

/// `time.Format(time.RFC3339)` of a UTC time: to the second.
fn to_second(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Go's `time.Time` JSON form (RFC 3339 with nanoseconds, trailing zeros dropped).
fn go_time(at: DateTime<Utc>) -> String {
    let base = at.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = at.nanosecond() % 1_000_000_000;
    if nanos == 0 {
        return format!("{base}Z");
    }
    let fraction = format!("{nanos:09}");
    format!("{base}.{}Z", fraction.trim_end_matches('0'))
}

/// An optional description as ent hooks print it: `""` when unset.
fn description_text(description: Option<&Description>) -> String {
    description
        .map(|d| d.as_str().to_owned())
        .unwrap_or_default()
}

/// The additional subjects and field changes (`None`: a delete's `null`) of a CRUD event.
fn change_of(
    stored: &StoredEvent,
    event: &Event,
    before: &StreamState,
) -> Result<(Vec<String>, Option<Vec<FieldChange>>), MapError> {
    use Event as E;
    let at = stored.recorded_at;
    let missing = |needed: &'static str| MapError::MissingState {
        event_type: stored.event_type.clone(),
        position: stored.position,
        stream: stored.stream_id.clone(),
        needed,
    };
    let previous = || before.aggregate.as_ref().ok_or_else(|| missing("state"));
    let stamps = || {
        vec![
            created("created_at", to_second(at)),
            created("updated_at", to_second(at)),
        ]
    };
    // An update: `updated_at`, then each listed field whose value differs.
    let update = |changes: &[(&'static str, String, String)]| -> Result<_, MapError> {
        let last = before.updated_at.ok_or_else(|| missing("updated_at"))?;
        let mut fields = vec![FieldChange {
            field: "updated_at",
            previous: to_second(last),
            current: to_second(at),
        }];
        fields.extend(
            changes
                .iter()
                .filter(|(_, previous, current)| previous != current)
                .map(|(field, previous, current)| FieldChange {
                    field,
                    previous: previous.clone(),
                    current: current.clone(),
                }),
        );
        Ok(Some(fields))
    };
    Ok(match event {
        E::TenantCreated {
            name,
            description,
            parent_id,
            ..
        } => {
            let mut fields = stamps();
            fields.push(created("name", name.as_str()));
            if let Some(d) = description {
                fields.push(created("description", d.as_str()));
            }
            if let Some(p) = parent_id {
                fields.push(created("parent_tenant_id", p.as_str()));
            }
            (
                parent_id.iter().map(|p| p.to_string()).collect(),
                Some(fields),
            )
        }
        E::UserCreated {
            issuer, subject, ..
        } => {
            let mut fields = stamps();
            fields.push(created("issuer", issuer.as_str()));
            fields.push(created("subject", subject.as_str()));
            (Vec::new(), Some(fields))
        }
        E::LocationCreated {
            tenant_id,
            name,
            description,
            ..
        }
        | E::ResourceProviderCreated {
            tenant_id,
            name,
            description,
            ..
        } => {
            let mut fields = stamps();
            fields.push(created("name", name.as_str()));
            if let Some(d) = description {
                fields.push(created("description", d.as_str()));
            }
            fields.push(created("owner_id", tenant_id.as_str()));
            (vec![tenant_id.to_string()], Some(fields))
        }
        E::ProviderRegistered {
            tenant_id,
            resource_provider_id,
            name,
            ..
        } => {
            let mut fields = stamps();
            fields.push(created("name", name.as_str()));
            fields.push(created("owner_id", tenant_id.as_str()));
            fields.push(created(
                "resource_provider_id",
                resource_provider_id.as_str(),
            ));
            (
                vec![tenant_id.to_string(), resource_provider_id.to_string()],
                Some(fields),
            )
        }
        E::TenantUpdated {
            name, description, ..
        }
        | E::LocationUpdated {
            name, description, ..
        }
        | E::ResourceProviderUpdated {
            name, description, ..
        } => {
            let previous = previous()?;
            let (old_name, old_description) = named(previous).ok_or_else(|| missing("name"))?;
            let fields = update(&[
                ("name", old_name.to_owned(), name.to_string()),
                (
                    "description",
                    old_description,
                    description_text(description.as_ref()),
                ),
            ])?;
            (owners(previous), fields)
        }
        E::TenantDeleted { .. }
        | E::LocationDeleted { .. }
        | E::ResourceProviderDeleted { .. }
        | E::ProviderUnregistered { .. } => (owners(previous()?), None),
        _ => unreachable!("change_of is called for create, update and delete events only"),
    })
}

/// Name and description (`""` when none) of a named, described aggregate.
fn named(aggregate: &Aggregate) -> Option<(&str, String)> {
    let (name, description) = match &aggregate.body {
        Body::Tenant(t) => (&t.name, &t.description),
        Body::Location(l) => (&l.name, &l.description),
        Body::ResourceProvider(r) => (&r.name, &r.description),
        Body::User(_) | Body::Provider(_) => return None,
    };
    Some((name.as_str(), description_text(description.as_ref())))
}

/// The subjects the services list beside an existing resource: a tenant's parent, a location's
/// or resource provider's owner, a provider's owner and resource provider.
fn owners(aggregate: &Aggregate) -> Vec<String> {
    match &aggregate.body {
        Body::Tenant(t) => t.parent_id.iter().map(|p| p.to_string()).collect(),
        Body::Location(l) => vec![l.tenant_id.to_string()],
        Body::ResourceProvider(r) => vec![r.tenant_id.to_string()],
        Body::Provider(p) => vec![p.tenant_id.to_string(), p.resource_provider_id.to_string()],
        Body::User(_) => Vec::new(),
    }
}

/// Every id an event names, in the order of its fields.
fn involved(event: &Event) -> Vec<String> {
    use Event as E;
    let ids: Vec<&str> = match event {
        E::TenantCreated {
            tenant_id,
            parent_id,
            ..
        } => std::iter::once(tenant_id.as_str())
            .chain(parent_id.as_ref().map(|p| p.as_str()))
            .collect(),
        E::TenantUpdated { tenant_id, .. } | E::TenantDeleted { tenant_id } => {
            vec![tenant_id.as_str()]
        }
        E::UserCreated { user_id, .. } => vec![user_id.as_str()],
        E::TenantAccessGranted {
            tenant_id, user_id, ..
        }
        | E::TenantAccessRevoked { tenant_id, user_id } => {
            vec![tenant_id.as_str(), user_id.as_str()]
        }
        E::LocationCreated {
            location_id,
            tenant_id,
            ..
        }
        | E::LocationMadeAvailable {
            location_id,
            tenant_id,
            ..
        }
        | E::LocationAvailabilityRevoked {
            location_id,
            tenant_id,
        } => vec![location_id.as_str(), tenant_id.as_str()],
        E::LocationUpdated { location_id, .. } | E::LocationDeleted { location_id } => {
            vec![location_id.as_str()]
        }
        E::ResourceProviderCreated {
            resource_provider_id,
            tenant_id,
            ..
        }
        | E::ResourceProviderMadeAvailable {
            resource_provider_id,
            tenant_id,
            ..
        }
        | E::ResourceProviderAvailabilityRevoked {
            resource_provider_id,
            tenant_id,
        }
        | E::ProviderAuthorized {
            resource_provider_id,
            tenant_id,
            ..
        }
        | E::ProviderAuthorizationRevoked {
            resource_provider_id,
            tenant_id,
        } => vec![resource_provider_id.as_str(), tenant_id.as_str()],
        E::ResourceProviderUpdated {
            resource_provider_id,
            ..
        }
        | E::ResourceProviderDeleted {
            resource_provider_id,
        }
        | E::ResourceProviderIdentityBound {
            resource_provider_id,
            ..
        }
        | E::ResourceProviderIdentityUnbound {
            resource_provider_id,
            ..
        } => vec![resource_provider_id.as_str()],
        E::ResourceProviderLocationAdded {
            resource_provider_id,
            location_id,
        }
        | E::ResourceProviderLocationRemoved {
            resource_provider_id,
            location_id,
        } => vec![resource_provider_id.as_str(), location_id.as_str()],
        E::ProviderRegistered {
            provider_id,
            tenant_id,
            resource_provider_id,
            ..
        } => vec![
            provider_id.as_str(),
            tenant_id.as_str(),
            resource_provider_id.as_str(),
        ],
        E::ProviderUnregistered { provider_id } => vec![provider_id.as_str()],
        E::AnnotationSet { resource_id, .. }
        | E::AnnotationRemoved { resource_id, .. }
        | E::StatusSet { resource_id, .. }
        | E::StatusRemoved { resource_id, .. }
        | E::FinalizerAdded { resource_id, .. }
        | E::FinalizerRemoved { resource_id, .. }
        | E::DeletionRequested { resource_id, .. } => vec![resource_id.as_str()],
    };
    ids.into_iter().map(str::to_owned).collect()
}

/// `traceContext`: `{}`, or the request's W3C `traceparent` (the map x/events' OpenTelemetry
/// propagator fills).
fn trace_context(out: &mut String, stored: &StoredEvent) {
    match &stored.metadata.traceparent {
        Some(traceparent) => {
            out.push_str("{\"traceparent\":");
            json::string(out, traceparent);
            out.push('}');
        }
        None => out.push_str("{}"),
    }
}

/// x/events' `ChangeMessage`, its fields in declaration order (as `json.Marshal` writes them).
fn change_message(
    stored: &StoredEvent,
    change: ChangeType,
    additional: &[String],
    fields: Option<&[FieldChange]>,
    config: &MessageConfig,
) -> String {
    let mut out = String::with_capacity(512);
    out.push_str("{\"subjectID\":");
    json::string(&mut out, &stored.stream_id);
    out.push_str(",\"eventType\":");
    json::string(&mut out, change.as_str());
    out.push_str(",\"additionalSubjects\":");
    json::strings(&mut out, additional);
    out.push_str(",\"actorID\":");
    let actor = stored.metadata.actor.as_ref();
    json::string(&mut out, actor.map_or(UNKNOWN_ACTOR, |a| a.as_str()));
    out.push_str(",\"source\":");
    json::string(&mut out, &config.source);
    out.push_str(",\"timestamp\":");
    json::string(&mut out, &go_time(stored.recorded_at));
    out.push_str(",\"traceContext\":");
    trace_context(&mut out, stored);
    out.push_str(",\"traceID\":\"\",\"spanID\":\"\",\"subjectFields\":null,\"fieldChanges\":");
    match fields {
        None => out.push_str("null"),
        Some(fields) => {
            out.push('[');
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"field\":");
                json::string(&mut out, f.field);
                out.push_str(",\"previousValue\":");
                json::string(&mut out, &f.previous);
                out.push_str(",\"currentValue\":");
                json::string(&mut out, &f.current);
                out.push('}');
            }
            out.push(']');
        }
    }
    out.push_str(",\"additionalData\":null}");
    out
}

/// x/events' `EventMessage`, its fields in declaration order.
fn event_message(
    stored: &StoredEvent,
    event_type: &str,
    additional: &[String],
    data: &serde_json::Value,
    config: &MessageConfig,
) -> String {
    let mut out = String::with_capacity(512);
    out.push_str("{\"subjectID\":");
    json::string(&mut out, &stored.stream_id);
    out.push_str(",\"eventType\":");
    json::string(&mut out, event_type);
    out.push_str(",\"additionalSubjects\":");
    json::strings(&mut out, additional);
    out.push_str(",\"source\":");
    json::string(&mut out, &config.source);
    out.push_str(",\"timestamp\":");
    json::string(&mut out, &go_time(stored.recorded_at));
    out.push_str(",\"traceContext\":");
    trace_context(&mut out, stored);
    out.push_str(",\"traceID\":\"\",\"spanID\":\"\",\"data\":");
    json::value(&mut out, data);
    out.push('}');
    out
}
