//! Resource providers and the access they hold: `read.resource_providers` (with the scopes
//! each requests), where they are available (`read.rp_availability`), the scopes tenants
//! authorized them for (`read.rp_authorizations`) and the locations they serve
//! (`read.rp_locations`) and the identities bound to them (`read.rp_identities`). Part of the
//! `resource_providers` projection, with `providers`.

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
    Table::entity::<RpRow>(),
    Table::Keyed(&RP_AVAILABILITY),
    Table::Keyed(&RP_AUTHORIZATIONS),
    Table::Keyed(&RP_LOCATIONS),
    Table::Keyed(&RP_IDENTITIES),
];

/// (issuer, subject) by (resource provider, identity): `identity` is the JSON array
/// `[issuer, subject]`, one key column for the pair (V40).
const RP_IDENTITIES: KeyedTable = KeyedTable {
    name: "rp_identities",
    key: ("rp_id", "identity"),
    values: &[
        Value {
            column: "issuer",
            param: "text[]",
            upsert: "u.issuer",
            staged: "arr[1]",
        },
        Value {
            column: "subject",
            param: "text[]",
            upsert: "u.subject",
            staged: "arr[2]",
        },
    ],
};

/// The key column of an identity in `read.rp_identities`.
fn identity_key(issuer: &str, subject: &str) -> String {
    serde_json::json!([issuer, subject]).to_string()
}

/// include_subtenants by (resource provider, tenant).
const RP_AVAILABILITY: KeyedTable = KeyedTable {
    name: "rp_availability",
    key: ("rp_id", "tenant_id"),
    values: &[Value {
        column: "include_subtenants",
        param: "bool[]",
        upsert: "u.include_subtenants",
        staged: "flag",
    }],
};

/// include_subtenants and the scopes granted, by (resource provider, tenant). Scopes travel
/// comma-joined in the upsert (a `text[][]` parameter must be rectangular).
const RP_AUTHORIZATIONS: KeyedTable = KeyedTable {
    name: "rp_authorizations",
    key: ("rp_id", "tenant_id"),
    values: &[
        Value {
            column: "include_subtenants",
            param: "bool[]",
            upsert: "u.include_subtenants",
            staged: "flag",
        },
        Value {
            column: "scopes",
            param: "text[]",
            upsert: "string_to_array(u.scopes, ',')",
            staged: "arr",
        },
    ],
};

/// (resource provider, location) pairs.
const RP_LOCATIONS: KeyedTable = KeyedTable {
    name: "rp_locations",
    key: ("rp_id", "location_id"),
    values: &[],
};

/// What `read.resource_providers` holds.
#[derive(Debug)]
struct RpRow {
    id: String,
    tenant_id: String,
    name: String,
    description: Option<String>,
    scopes: Vec<String>,
    lifecycle: &'static str,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_position: i64,
    last_position: i64,
}

impl Row for RpRow {
    const TABLE: &'static str = "resource_providers";
    const COLUMNS: &'static str =
        "id, tenant_id, name, description, scopes, lifecycle, created_at, \
                                   updated_at, created_position, last_position";
    const PATCHED: Patched = Patched::Named;
    fn types() -> Vec<Type> {
        vec![
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT_ARRAY,
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
            &self.scopes,
            &self.lifecycle,
            &self.created_at,
            &self.updated_at,
            &self.created_position,
            &self.last_position,
        ]
    }
}

/// One batch's changes to resource providers and their access.
#[derive(Debug, Default)]
pub(super) struct ResourceProviders {
    rps: Entities<RpRow>,
    rp_availability: Keyed<bool>,
    rp_authorizations: Keyed<(bool, String)>,
    rp_locations: Keyed<()>,
    rp_identities: Keyed<(String, String)>,
}

impl ResourceProviders {
    pub(super) fn add(&mut self, e: &Envelope<'_>, event: &Event) {
        use Event as E;
        match event {
            E::ResourceProviderCreated {
                resource_provider_id,
                tenant_id,
                name,
                description,
                scopes,
            } => self.rps.create(RpRow {
                id: resource_provider_id.to_string(),
                tenant_id: tenant_id.to_string(),
                name: name.to_string(),
                description: opt(description),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                lifecycle: "live",
                created_at: e.recorded_at,
                updated_at: e.recorded_at,
                created_position: e.position,
                last_position: e.position,
            }),
            E::ResourceProviderUpdated {
                resource_provider_id,
                name,
                description,
            } => self.rps.patch(
                resource_provider_id.as_str(),
                Patch {
                    rename: Some((name.to_string(), opt(description))),
                    ..Patch::touched(e)
                },
            ),
            E::ResourceProviderDeleted {
                resource_provider_id,
            } => self
                .rps
                .patch(resource_provider_id.as_str(), lifecycle_patch(e, "deleted")),
            E::DeletionRequested { .. } if deleting(e, event, AggregateKind::ResourceProvider) => {
                self.rps.patch(e.stream_id, lifecycle_patch(e, "deleting"))
            }
            E::ResourceProviderMadeAvailable {
                resource_provider_id,
                tenant_id,
                include_subtenants,
            } => self.rp_availability.put(
                resource_provider_id.as_str(),
                tenant_id.as_str(),
                *include_subtenants,
            ),
            E::ResourceProviderAvailabilityRevoked {
                resource_provider_id,
                tenant_id,
            } => self
                .rp_availability
                .remove(resource_provider_id.as_str(), tenant_id.as_str()),
            E::ResourceProviderLocationAdded {
                resource_provider_id,
                location_id,
            } => self
                .rp_locations
                .put(resource_provider_id.as_str(), location_id.as_str(), ()),
            E::ResourceProviderLocationRemoved {
                resource_provider_id,
                location_id,
            } => self
                .rp_locations
                .remove(resource_provider_id.as_str(), location_id.as_str()),
            E::ProviderAuthorized {
                resource_provider_id,
                tenant_id,
                include_subtenants,
                scopes,
            } => {
                let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
                self.rp_authorizations.put(
                    resource_provider_id.as_str(),
                    tenant_id.as_str(),
                    (*include_subtenants, scopes.join(",")),
                )
            }
            E::ProviderAuthorizationRevoked {
                resource_provider_id,
                tenant_id,
            } => self
                .rp_authorizations
                .remove(resource_provider_id.as_str(), tenant_id.as_str()),
            E::ResourceProviderIdentityBound {
                resource_provider_id,
                issuer,
                subject,
            } => self.rp_identities.put(
                resource_provider_id.as_str(),
                &identity_key(issuer.as_str(), subject.as_str()),
                (issuer.to_string(), subject.to_string()),
            ),
            E::ResourceProviderIdentityUnbound {
                resource_provider_id,
                issuer,
                subject,
            } => self.rp_identities.remove(
                resource_provider_id.as_str(),
                &identity_key(issuer.as_str(), subject.as_str()),
            ),
            _ => {}
        }
    }

    pub(super) async fn flush(&self, tx: &Transaction<'_>, schema: &str) -> anyhow::Result<()> {
        self.rps.flush(tx, schema).await?;
        let up = self
            .rp_availability
            .delete(tx, schema, &RP_AVAILABILITY)
            .await?;
        if !up.is_empty() {
            let (a, b, inc, _) = unzip4(up.iter().map(|(a, b, v)| (*a, *b, **v, ())));
            RP_AVAILABILITY.upsert(tx, schema, &[&a, &b, &inc]).await?;
        }
        let up = self
            .rp_authorizations
            .delete(tx, schema, &RP_AUTHORIZATIONS)
            .await?;
        if !up.is_empty() {
            let (a, b, inc, scopes) =
                unzip4(up.iter().map(|(a, b, v)| (*a, *b, v.0, v.1.as_str())));
            RP_AUTHORIZATIONS
                .upsert(tx, schema, &[&a, &b, &inc, &scopes])
                .await?;
        }
        let up = self.rp_locations.delete(tx, schema, &RP_LOCATIONS).await?;
        if !up.is_empty() {
            let (a, b, _, _) = unzip4(up.iter().map(|(a, b, _)| (*a, *b, (), ())));
            RP_LOCATIONS.upsert(tx, schema, &[&a, &b]).await?;
        }
        let up = self
            .rp_identities
            .delete(tx, schema, &RP_IDENTITIES)
            .await?;
        if !up.is_empty() {
            let (a, b, issuers, subjects) = unzip4(
                up.iter()
                    .map(|(a, b, v)| (*a, *b, v.0.as_str(), v.1.as_str())),
            );
            RP_IDENTITIES
                .upsert(tx, schema, &[&a, &b, &issuers, &subjects])
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
        self.rps.stage(tx, schema, seq).await?;
        self.rp_availability
            .stage(tx, schema, &RP_AVAILABILITY, seq, |v| Staged {
                flag: Some(*v),
                ..Staged::default()
            })
            .await?;
        self.rp_authorizations
            .stage(tx, schema, &RP_AUTHORIZATIONS, seq, |v| Staged {
                flag: Some(v.0),
                arr: Some(v.1.split(',').collect()),
                ..Staged::default()
            })
            .await?;
        self.rp_locations
            .stage(tx, schema, &RP_LOCATIONS, seq, |_| Staged::default())
            .await?;
        self.rp_identities
            .stage(tx, schema, &RP_IDENTITIES, seq, |v| Staged {
                arr: Some(vec![v.0.as_str(), v.1.as_str()]),
                ..Staged::default()
            })
            .await
    }
}
