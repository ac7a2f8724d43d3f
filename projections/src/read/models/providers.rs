//! Providers (`read.providers`): the concrete services registered under a resource provider,
//! acting through its grants. Part of the `resource_providers` projection.

use chrono::{DateTime, Utc};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

use plinth_domain::{AggregateKind, Event};

use super::engine::{deleting, lifecycle_patch, Entities, Patch, Patched, Row, Table};
use super::Envelope;

pub(super) const TABLES: &[Table] = &[Table::entity::<ProviderRow>()];

/// What `read.providers` holds.
#[derive(Debug)]
struct ProviderRow {
    id: String,
    tenant_id: String,
    rp_id: String,
    name: String,
    lifecycle: &'static str,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_position: i64,
    last_position: i64,
}

impl Row for ProviderRow {
    const TABLE: &'static str = "providers";
    const COLUMNS: &'static str = "id, tenant_id, rp_id, name, lifecycle, created_at, updated_at, \
                                   created_position, last_position";
    const PATCHED: Patched = Patched::Lifecycle;
    fn types() -> Vec<Type> {
        vec![
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
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
        if let Some(l) = p.lifecycle {
            self.lifecycle = l;
        }
        if let Some((at, position)) = p.touched {
            self.updated_at = at;
            self.last_position = position;
        }
    }
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.id,
            &self.tenant_id,
            &self.rp_id,
            &self.name,
            &self.lifecycle,
            &self.created_at,
            &self.updated_at,
            &self.created_position,
            &self.last_position,
        ]
    }
}

/// One batch's changes to providers.
#[derive(Debug, Default)]
pub(super) struct Providers {
    providers: Entities<ProviderRow>,
}

impl Providers {
    pub(super) fn add(&mut self, e: &Envelope<'_>, event: &Event) {
        use Event as E;
        match event {
            E::ProviderRegistered {
                provider_id,
                tenant_id,
                resource_provider_id,
                name,
            } => self.providers.create(ProviderRow {
                id: provider_id.to_string(),
                tenant_id: tenant_id.to_string(),
                rp_id: resource_provider_id.to_string(),
                name: name.to_string(),
                lifecycle: "live",
                created_at: e.recorded_at,
                updated_at: e.recorded_at,
                created_position: e.position,
                last_position: e.position,
            }),
            E::ProviderUnregistered { provider_id } => self
                .providers
                .patch(provider_id.as_str(), lifecycle_patch(e, "deleted")),
            E::DeletionRequested { .. } if deleting(e, event, AggregateKind::Provider) => self
                .providers
                .patch(e.stream_id, lifecycle_patch(e, "deleting")),
            _ => {}
        }
    }

    pub(super) async fn flush(&self, tx: &Transaction<'_>, schema: &str) -> anyhow::Result<()> {
        self.providers.flush(tx, schema).await
    }

    pub(super) async fn stage(
        &self,
        tx: &Transaction<'_>,
        schema: &str,
        seq: i64,
    ) -> anyhow::Result<()> {
        self.providers.stage(tx, schema, seq).await
    }
}
