//! The tenant tree (`read.tenants`): one row per tenant with its materialized path and
//! ancestors, so that subtree and ancestor queries are index lookups
//! (`docs/adr/0002-tenant-tree-read-model.md`). Part of the `tenants` projection, with `users`.

use chrono::{DateTime, Utc};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

use plinth_domain::{AggregateKind, Event};

use super::engine::{
    deleting, lifecycle_patch, named_patch, opt, Entities, Patch, Patched, Row, Table,
};
use super::Envelope;

pub(super) const TABLES: &[Table] = &[Table::entity::<TenantRow>()];

/// What `read.tenants` holds.
#[derive(Debug)]
struct TenantRow {
    id: String,
    parent_id: Option<String>,
    name: String,
    description: Option<String>,
    lifecycle: &'static str,
    depth: i32,
    path: String,
    ancestors: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_position: i64,
    last_position: i64,
}

impl Row for TenantRow {
    const TABLE: &'static str = "tenants";
    const COLUMNS: &'static str =
        "id, parent_id, name, description, lifecycle, depth, path, ancestors, \
                                   created_at, updated_at, created_position, last_position";
    const PATCHED: Patched = Patched::Named;
    fn types() -> Vec<Type> {
        vec![
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::INT4,
            Type::TEXT,
            Type::TEXT_ARRAY,
            Type::TIMESTAMPTZ,
            Type::TIMESTAMPTZ,
            Type::INT8,
            Type::INT8,
        ]
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn patch(&mut self, p: &Patch) {
        named_patch!(self, p);
    }
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.id,
            &self.parent_id,
            &self.name,
            &self.description,
            &self.lifecycle,
            &self.depth,
            &self.path,
            &self.ancestors,
            &self.created_at,
            &self.updated_at,
            &self.created_position,
            &self.last_position,
        ]
    }
}

/// One batch's changes to the tenant tree.
#[derive(Debug, Default)]
pub(super) struct Tenants {
    tenants: Entities<TenantRow>,
}

impl Tenants {
    pub(super) fn add(&mut self, e: &Envelope<'_>, event: &Event) {
        use Event as E;
        match event {
            E::TenantCreated {
                tenant_id,
                name,
                description,
                parent_id,
                path,
                depth,
            } => {
                let ancestors: Vec<String> = path.iter().map(|t| t.to_string()).collect();
                let mut full = ancestors.join("/");
                if !full.is_empty() {
                    full.push('/');
                }
                full.push_str(tenant_id.as_str());
                self.tenants.create(TenantRow {
                    id: tenant_id.to_string(),
                    parent_id: opt(parent_id),
                    name: name.to_string(),
                    description: opt(description),
                    lifecycle: "live",
                    depth: *depth as i32,
                    path: full,
                    ancestors,
                    created_at: e.recorded_at,
                    updated_at: e.recorded_at,
                    created_position: e.position,
                    last_position: e.position,
                });
            }
            E::TenantUpdated {
                tenant_id,
                name,
                description,
            } => self.tenants.patch(
                tenant_id.as_str(),
                Patch {
                    rename: Some((name.to_string(), opt(description))),
                    ..Patch::touched(e)
                },
            ),
            E::TenantDeleted { tenant_id } => self
                .tenants
                .patch(tenant_id.as_str(), lifecycle_patch(e, "deleted")),
            E::DeletionRequested { .. } if deleting(e, event, AggregateKind::Tenant) => self
                .tenants
                .patch(e.stream_id, lifecycle_patch(e, "deleting")),
            _ => {}
        }
    }

    pub(super) async fn flush(&self, tx: &Transaction<'_>, schema: &str) -> anyhow::Result<()> {
        self.tenants.flush(tx, schema).await
    }

    pub(super) async fn stage(
        &self,
        tx: &Transaction<'_>,
        schema: &str,
        seq: i64,
    ) -> anyhow::Result<()> {
        self.tenants.stage(tx, schema, seq).await
    }
}
