//! Locations (`read.locations`) and to which tenants they are made available
//! (`read.location_availability`, with or without their sub-tenants): the `locations`
//! projection.

use chrono::{DateTime, Utc};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

use plinth_domain::{AggregateKind, Event};

use super::engine::{
    deleting, lifecycle_patch, named_patch, opt, unzip4, Entities, Keyed, KeyedTable, Patch,
    Patched, Row, Staged, Table, Value,
};
use super::Envelope;

pub(super) const TABLES: &[Table] = &[
    Table::entity::<LocationRow>(),
    Table::Keyed(&LOCATION_AVAILABILITY),
];

/// include_subtenants by (location, tenant).
const LOCATION_AVAILABILITY: KeyedTable = KeyedTable {
    name: "location_availability",
    key: ("location_id", "tenant_id"),
    values: &[Value {
        column: "include_subtenants",
        param: "bool[]",
        upsert: "u.include_subtenants",
        staged: "flag",
    }],
};

/// What `read.locations` holds.
#[derive(Debug)]
struct LocationRow {
    id: String,
    tenant_id: String,
    name: String,
    description: Option<String>,
    lifecycle: &'static str,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_position: i64,
    last_position: i64,
}

impl Row for LocationRow {
    const TABLE: &'static str = "locations";
    const COLUMNS: &'static str =
        "id, tenant_id, name, description, lifecycle, created_at, updated_at, \
                                   created_position, last_position";
    const PATCHED: Patched = Patched::Named;
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
        named_patch!(self, p);
    }
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.id,
            &self.tenant_id,
            &self.name,
            &self.description,
            &self.lifecycle,
            &self.created_at,
            &self.updated_at,
            &self.created_position,
            &self.last_position,
        ]
    }
}

/// One batch's changes to locations and their availability.
#[derive(Debug, Default)]
pub(super) struct Locations {
    locations: Entities<LocationRow>,
    location_availability: Keyed<bool>,
}

impl Locations {
    pub(super) fn add(&mut self, e: &Envelope<'_>, event: &Event) {
        use Event as E;
        match event {
            E::LocationCreated {
                location_id,
                tenant_id,
                name,
                description,
            } => self.locations.create(LocationRow {
                id: location_id.to_string(),
                tenant_id: tenant_id.to_string(),
                name: name.to_string(),
                description: opt(description),
                lifecycle: "live",
                created_at: e.recorded_at,
                updated_at: e.recorded_at,
                created_position: e.position,
                last_position: e.position,
            }),
            E::LocationUpdated {
                location_id,
                name,
                description,
            } => self.locations.patch(
                location_id.as_str(),
                Patch {
                    rename: Some((name.to_string(), opt(description))),
                    ..Patch::touched(e)
                },
            ),
            E::LocationDeleted { location_id } => self
                .locations
                .patch(location_id.as_str(), lifecycle_patch(e, "deleted")),
            E::DeletionRequested { .. } if deleting(e, event, AggregateKind::Location) => self
                .locations
                .patch(e.stream_id, lifecycle_patch(e, "deleting")),
            E::LocationMadeAvailable {
                location_id,
                tenant_id,
                include_subtenants,
            } => self.location_availability.put(
                location_id.as_str(),
                tenant_id.as_str(),
                *include_subtenants,
            ),
            E::LocationAvailabilityRevoked {
                location_id,
                tenant_id,
            } => self
                .location_availability
                .remove(location_id.as_str(), tenant_id.as_str()),
            _ => {}
        }
    }

    pub(super) async fn flush(&self, tx: &Transaction<'_>, schema: &str) -> anyhow::Result<()> {
        self.locations.flush(tx, schema).await?;
        let up = self
            .location_availability
            .delete(tx, schema, &LOCATION_AVAILABILITY)
            .await?;
        if !up.is_empty() {
            let (a, b, inc, _) = unzip4(up.iter().map(|(a, b, v)| (*a, *b, **v, ())));
            LOCATION_AVAILABILITY
                .upsert(tx, schema, &[&a, &b, &inc])
                .await?;
        }
        Ok(())
    }

    pub(super) async fn stage(
        &self,
        tx: &Transaction<'_>,
        schema: &str,
        seq: i64,
    ) -> anyhow::Result<()> {
        self.locations.stage(tx, schema, seq).await?;
        self.location_availability
            .stage(tx, schema, &LOCATION_AVAILABILITY, seq, |v| Staged {
                flag: Some(*v),
                ..Staged::default()
            })
            .await
    }
}
