//! Every stream as a resource (`read.resources`: its kind, governing tenant and lifecycle,
//! what authorizes reads of it) and the metadata any resource carries: annotations, statuses
//! and finalizers. The `resources` projection.

use chrono::{DateTime, Utc};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

use plinth_domain::{AggregateKind, Event};

use super::engine::{
    unzip4, Entities, Keyed, KeyedTable, Patch, Patched, Row, Staged, Table, Value,
};
use super::Envelope;

pub(super) const TABLES: &[Table] = &[
    Table::entity::<ResourceRow>(),
    Table::Keyed(&ANNOTATIONS),
    Table::Keyed(&STATUSES),
    Table::Keyed(&FINALIZERS),
];

/// value by (resource, key).
const ANNOTATIONS: KeyedTable = KeyedTable {
    name: "annotations",
    key: ("resource_id", "key"),
    values: &[Value {
        column: "value",
        param: "text[]",
        upsert: "u.value",
        staged: "txt",
    }],
};

/// data (JSON, carried as text) by (resource, source).
const STATUSES: KeyedTable = KeyedTable {
    name: "statuses",
    key: ("resource_id", "source"),
    values: &[Value {
        column: "data",
        param: "text[]",
        upsert: "u.data::jsonb",
        staged: "txt::jsonb",
    }],
};

/// (resource, finalizer) pairs.
const FINALIZERS: KeyedTable = KeyedTable {
    name: "finalizers",
    key: ("resource_id", "finalizer"),
    values: &[],
};

/// What `read.resources` holds. Deliberately nothing that changes with every event of the
/// stream (a version, an updated-at): metadata events are most of a busy log, and each would
/// then rewrite this row.
#[derive(Debug)]
struct ResourceRow {
    id: String,
    kind: &'static str,
    tenant_id: Option<String>,
    lifecycle: &'static str,
    deletion_requested_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    created_position: i64,
}

impl Row for ResourceRow {
    const TABLE: &'static str = "resources";
    const COLUMNS: &'static str =
        "id, kind, tenant_id, lifecycle, deletion_requested_at, created_at, created_position";
    const PATCHED: Patched = Patched::Deletion;
    fn types() -> Vec<Type> {
        vec![
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::TIMESTAMPTZ,
            Type::INT8,
        ]
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn patch(&mut self, p: &Patch) {
        if let Some(l) = p.lifecycle {
            self.lifecycle = l;
        }
        if p.deletion_requested_at.is_some() {
            self.deletion_requested_at = p.deletion_requested_at;
        }
    }
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.id,
            &self.kind,
            &self.tenant_id,
            &self.lifecycle,
            &self.deletion_requested_at,
            &self.created_at,
            &self.created_position,
        ]
    }
}

/// One batch's changes to resources and their metadata.
#[derive(Debug, Default)]
pub(super) struct Resources {
    resources: Entities<ResourceRow>,
    annotations: Keyed<String>,
    statuses: Keyed<String>,
    finalizers: Keyed<()>,
}

impl Resources {
    pub(super) fn add(&mut self, e: &Envelope<'_>, event: &Event) {
        use Event as E;
        let created = |kind: AggregateKind, tenant_id: Option<String>| ResourceRow {
            id: e.stream_id.to_owned(),
            kind: kind.as_str(),
            tenant_id,
            lifecycle: "live",
            deletion_requested_at: None,
            created_at: e.recorded_at,
            created_position: e.position,
        };
        let row = match event {
            E::TenantCreated { tenant_id, .. } => {
                Some(created(AggregateKind::Tenant, Some(tenant_id.to_string())))
            }
            E::UserCreated { .. } => Some(created(AggregateKind::User, None)),
            E::LocationCreated { tenant_id, .. } => Some(created(
                AggregateKind::Location,
                Some(tenant_id.to_string()),
            )),
            E::ResourceProviderCreated { tenant_id, .. } => Some(created(
                AggregateKind::ResourceProvider,
                Some(tenant_id.to_string()),
            )),
            E::ProviderRegistered { tenant_id, .. } => Some(created(
                AggregateKind::Provider,
                Some(tenant_id.to_string()),
            )),
            _ => None,
        };
        if let Some(row) = row {
            self.resources.create(row);
            return;
        }
        match event {
            E::TenantDeleted { .. }
            | E::LocationDeleted { .. }
            | E::ResourceProviderDeleted { .. }
            | E::ProviderUnregistered { .. } => self.resources.patch(
                e.stream_id,
                Patch {
                    lifecycle: Some("deleted"),
                    ..Patch::default()
                },
            ),
            E::DeletionRequested { requested_at, .. } => self.resources.patch(
                e.stream_id,
                Patch {
                    lifecycle: Some("deleting"),
                    deletion_requested_at: Some(*requested_at),
                    ..Patch::default()
                },
            ),
            E::AnnotationSet {
                resource_id,
                key,
                value,
            } => self
                .annotations
                .put(resource_id.as_str(), key.as_str(), value.to_string()),
            E::AnnotationRemoved { resource_id, key } => {
                self.annotations.remove(resource_id.as_str(), key.as_str())
            }
            E::StatusSet {
                resource_id,
                source,
                data,
            } => self.statuses.put(
                resource_id.as_str(),
                source.as_str(),
                serde_json::Value::from(data.clone()).to_string(),
            ),
            E::StatusRemoved {
                resource_id,
                source,
            } => self.statuses.remove(resource_id.as_str(), source.as_str()),
            E::FinalizerAdded {
                resource_id,
                finalizer,
            } => self
                .finalizers
                .put(resource_id.as_str(), finalizer.as_str(), ()),
            E::FinalizerRemoved {
                resource_id,
                finalizer,
            } => self
                .finalizers
                .remove(resource_id.as_str(), finalizer.as_str()),
            _ => {}
        }
    }

    pub(super) async fn flush(&self, tx: &Transaction<'_>, schema: &str) -> anyhow::Result<()> {
        self.resources.flush(tx, schema).await?;
        let up = self.annotations.delete(tx, schema, &ANNOTATIONS).await?;
        if !up.is_empty() {
            let (a, b, v, _) = unzip4(up.iter().map(|(a, b, v)| (*a, *b, v.as_str(), ())));
            ANNOTATIONS.upsert(tx, schema, &[&a, &b, &v]).await?;
        }
        let up = self.statuses.delete(tx, schema, &STATUSES).await?;
        if !up.is_empty() {
            let (a, b, v, _) = unzip4(up.iter().map(|(a, b, v)| (*a, *b, v.as_str(), ())));
            STATUSES.upsert(tx, schema, &[&a, &b, &v]).await?;
        }
        let up = self.finalizers.delete(tx, schema, &FINALIZERS).await?;
        if !up.is_empty() {
            let (a, b, _, _) = unzip4(up.iter().map(|(a, b, _)| (*a, *b, (), ())));
            FINALIZERS.upsert(tx, schema, &[&a, &b]).await?;
        }
        Ok(())
    }

    pub(super) async fn stage(
        &self,
        tx: &Transaction<'_>,
        schema: &str,
        seq: i64,
    ) -> anyhow::Result<()> {
        self.resources.stage(tx, schema, seq).await?;
        self.annotations
            .stage(tx, schema, &ANNOTATIONS, seq, |v| Staged {
                txt: Some(v.as_str()),
                ..Staged::default()
            })
            .await?;
        self.statuses
            .stage(tx, schema, &STATUSES, seq, |v| Staged {
                txt: Some(v.as_str()),
                ..Staged::default()
            })
            .await?;
        self.finalizers
            .stage(tx, schema, &FINALIZERS, seq, |_| Staged::default())
            .await
    }
}
