//! The read models' writes: a batch of events turned into row changes, coalesced per key,
//! then written set-wise.
//!
//! One file per read model holds its row types, which event changes what, and its per-table
//! write calls, so that a new column or event touches one file; [`engine`] holds what they all
//! share (coalescing, `COPY`, the set-wise SQL, a rebuild's staging and folding). This module
//! only hands each event to the models of the projections being applied. The incremental
//! projector and the rebuild run exactly this code; they differ only in batch size and target
//! schema.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tokio_postgres::Transaction;

use plinth_commands::StoredEvent;
use plinth_domain::Event;

use super::projection::{Projection, ProjectionSet};

mod engine;
mod locations;
mod providers;
mod resource_providers;
mod resources;
mod tenants;
mod users;

use engine::Table;

/// Where an event sits in the log: what the read models record besides the event itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Envelope<'a> {
    pub(crate) stream_id: &'a str,
    pub(crate) position: i64,
    pub(crate) recorded_at: DateTime<Utc>,
}

/// Everything one batch changes, for the projections in `set`.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    set: ProjectionSet,
    events: usize,
    tenants: tenants::Tenants,
    users: users::Users,
    locations: locations::Locations,
    resource_providers: resource_providers::ResourceProviders,
    providers: providers::Providers,
    resources: resources::Resources,
}

impl Changes {
    pub(crate) fn new(set: ProjectionSet) -> Self {
        Self {
            set,
            ..Self::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.events
    }

    /// Decodes and folds one stored event.
    pub(crate) fn add(&mut self, stored: &StoredEvent) -> anyhow::Result<()> {
        let envelope = Envelope {
            stream_id: &stored.stream_id,
            position: stored.position,
            recorded_at: stored.recorded_at,
        };
        let event = stored.decode().with_context(|| {
            format!(
                "event at position {} ({}) cannot be decoded",
                stored.position, stored.event_type
            )
        })?;
        self.add_decoded(&envelope, &event);
        Ok(())
    }

    pub(crate) fn add_decoded(&mut self, e: &Envelope<'_>, event: &Event) {
        self.events += 1;
        if self.set.contains(Projection::Tenants) {
            self.tenants.add(e, event);
            self.users.add(e, event);
        }
        if self.set.contains(Projection::Locations) {
            self.locations.add(e, event);
        }
        if self.set.contains(Projection::ResourceProviders) {
            self.resource_providers.add(e, event);
            self.providers.add(e, event);
        }
        if self.set.contains(Projection::Resources) {
            self.resources.add(e, event);
        }
    }

    /// A rebuild's fast path: new entities are copied into their tables as usual, but every
    /// other change is appended (with `COPY`, to unindexed, unlogged staging tables, tagged
    /// with the batch number `seq`) instead of being applied; [`resolve_sql`] folds them in
    /// once at the end. Appending costs the same whatever was written before, where upserts
    /// and updates pay for an index probe and a new row version each.
    pub(crate) async fn stage(
        &self,
        tx: &Transaction<'_>,
        schema: &str,
        seq: i64,
    ) -> anyhow::Result<()> {
        if self.set.contains(Projection::Tenants) {
            self.tenants.stage(tx, schema, seq).await?;
            self.users.stage(tx, schema, seq).await?;
        }
        if self.set.contains(Projection::Locations) {
            self.locations.stage(tx, schema, seq).await?;
        }
        if self.set.contains(Projection::ResourceProviders) {
            self.resource_providers.stage(tx, schema, seq).await?;
            self.providers.stage(tx, schema, seq).await?;
        }
        if self.set.contains(Projection::Resources) {
            self.resources.stage(tx, schema, seq).await?;
        }
        Ok(())
    }

    /// Writes everything to the tables of `schema` (`read`, or a rebuild's schema).
    pub(crate) async fn flush(&self, tx: &Transaction<'_>, schema: &str) -> anyhow::Result<()> {
        if self.set.contains(Projection::Tenants) {
            self.tenants.flush(tx, schema).await?;
            self.users.flush(tx, schema).await?;
        }
        if self.set.contains(Projection::Locations) {
            self.locations.flush(tx, schema).await?;
        }
        if self.set.contains(Projection::ResourceProviders) {
            self.resource_providers.flush(tx, schema).await?;
            self.providers.flush(tx, schema).await?;
        }
        if self.set.contains(Projection::Resources) {
            self.resources.flush(tx, schema).await?;
        }
        Ok(())
    }
}

/// The table named `name` (one of [`Projection::tables`]).
fn table(name: &str) -> &'static Table {
    [
        tenants::TABLES,
        users::TABLES,
        locations::TABLES,
        resource_providers::TABLES,
        providers::TABLES,
        resources::TABLES,
    ]
    .into_iter()
    .flatten()
    .find(|t| t.name() == name)
    .unwrap_or_else(|| panic!("{name} is not a read-model table"))
}

/// The staging table a staged rebuild appends `table`'s changes to, and its DDL.
pub(crate) fn staging_table(schema: &str, name: &str) -> String {
    table(name).staging_table(schema)
}

pub(crate) fn staging_ddl(schema: &str, name: &str) -> String {
    table(name).staging_ddl(schema)
}

/// Folds `table`'s staging table into it (see [`Table::resolve_sql`]).
pub(crate) fn resolve_sql(schema: &str, name: &str) -> String {
    table(name).resolve_sql(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every projection's tables have a model, and every model's tables a projection.
    #[test]
    fn the_models_write_exactly_the_projections_tables() {
        let mut owned: Vec<&str> = Projection::ALL
            .iter()
            .flat_map(|p| p.tables().iter().copied())
            .collect();
        let mut written: Vec<&str> = [
            tenants::TABLES,
            users::TABLES,
            locations::TABLES,
            resource_providers::TABLES,
            providers::TABLES,
            resources::TABLES,
        ]
        .into_iter()
        .flatten()
        .map(Table::name)
        .collect();
        owned.sort_unstable();
        written.sort_unstable();
        assert_eq!(owned, written);
    }
}
