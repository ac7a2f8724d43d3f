//! The event log itself, as the audit log and a stream's history show it: not a read model,
//! but authorized by the tenant tree like the rest.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;

use plinth_commands::{log, Checkpoint, StoredEvent};

use super::resources::visible_resource;
use super::tenants::tenant_ref;
use super::{Page, PageRequest, Viewer};

/// An event as the audit log and stream history show it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct AuditItem {
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub stream_id: String,
    pub stream_version: i64,
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub actor: Option<String>,
    pub command_id: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// The schema version `data` is in: the current one of its type (older events are shown
    /// upcast, as every reader sees them).
    pub schema_version: i32,
    pub data: serde_json::Value,
}

impl AuditItem {
    fn of(event: &StoredEvent) -> anyhow::Result<Self> {
        let metadata = &event.metadata;
        let (schema_version, data) = event
            .current_data()
            .with_context(|| format!("event at position {} cannot be shown", event.position))?;
        Ok(Self {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            stream_id: event.stream_id.clone(),
            stream_version: event.stream_version,
            position: event.position,
            recorded_at: event.recorded_at,
            actor: metadata.actor.as_ref().map(ToString::to_string),
            command_id: Some(metadata.command_id.to_string()),
            correlation_id: Some(metadata.correlation_id.to_string()),
            causation_id: Some(metadata.causation_id.to_string()),
            schema_version,
            data: serde_json::from_str(&data)?,
        })
    }
}

fn audit_items(events: &[StoredEvent]) -> anyhow::Result<Vec<AuditItem>> {
    events.iter().map(AuditItem::of).collect()
}

/// A stream's events, oldest first, paginated by stream version.
pub async fn stream_events(
    client: &impl GenericClient,
    viewer: &Viewer,
    stream_id: &str,
    page: &PageRequest,
) -> anyhow::Result<Option<Page<AuditItem>>> {
    if visible_resource(client, viewer, stream_id, true)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let after: i64 = page.after().parse().unwrap_or(0);
    let events = log::read_stream(client, stream_id, after + 1, page.fetch()).await?;
    Ok(Some(Page::from_rows(
        audit_items(&events)?,
        page.limit,
        |e: &AuditItem| e.stream_version.to_string(),
    )))
}

/// Filters of the audit log; all optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// That tenant's whole subtree (the streams its tenants govern).
    pub tenant_id: Option<String>,
    /// One stream's events.
    pub stream_id: Option<String>,
    pub actor: Option<String>,
    /// Everything done for one originating request.
    pub correlation_id: Option<uuid::Uuid>,
    pub event_type: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Why an audit query was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditRefusal {
    /// The tenant does not exist or the viewer may not see it.
    TenantNotVisible,
    /// Only platform administrators may read the audit log without a tenant filter.
    NeedsTenant,
}

/// The audit log's cursor: the place in the log of the page's last event, `tx.position`.
/// `None` if `after` is not one.
pub fn audit_cursor(after: &str) -> Option<Checkpoint> {
    let (tx, position) = after.split_once('.')?;
    Some(Checkpoint {
        tx: tx.parse().ok()?,
        position: position.parse().ok()?,
    })
}

/// The audit log in the log's own order (`plinth_commands::log::audit`): a page never skips
/// an event that commits after it was read.
pub async fn audit(
    client: &impl GenericClient,
    viewer: &Viewer,
    filter: &AuditFilter,
    page: &PageRequest,
) -> anyhow::Result<Result<Page<AuditItem>, AuditRefusal>> {
    let tenant_path: Option<String> = match &filter.tenant_id {
        Some(t) => match tenant_ref(client, viewer, t, true).await? {
            Some(r) if r.rank.is_some() => Some(r.path),
            _ => return Ok(Err(AuditRefusal::TenantNotVisible)),
        },
        None if *viewer == Viewer::Platform => None,
        None => return Ok(Err(AuditRefusal::NeedsTenant)),
    };
    let after = audit_cursor(page.after()).unwrap_or_default();
    let log_filter = log::AuditFilter {
        tenant_path,
        stream_id: filter.stream_id.clone(),
        actor: filter.actor.clone(),
        correlation_id: filter.correlation_id,
        event_type: filter.event_type.clone(),
        since: filter.since,
        until: filter.until,
    };
    let events = log::audit(client, &log_filter, after, page.fetch()).await?;
    let Page { items, next } = Page::from_rows(events, page.limit, |e: &StoredEvent| {
        let Checkpoint { tx, position } = e.checkpoint();
        format!("{tx}.{position}")
    });
    Ok(Ok(Page {
        items: audit_items(&items)?,
        next,
    }))
}
