//! Every read-model table, row by row, as the naive model says it must be. Rows are JSON
//! objects of the columns that follow from the events alone: times and log positions are left
//! to the comparison of the incremental projection with the rebuild.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use plinth_domain::aggregate::Body;
use plinth_domain::memory::MemoryStore;
use plinth_domain::Role;

use crate::read::ProjectionSet;

/// Rows of each table, as canonical JSON text.
pub(super) type Tables = BTreeMap<String, BTreeSet<String>>;

/// The columns compared, by table. A table of the projections missing here fails the test.
const COLUMNS: &[(&str, &str)] = &[
    (
        "tenants",
        "id, parent_id, name, description, lifecycle, depth, path, ancestors",
    ),
    ("users", "id, issuer, subject"),
    ("grants", "user_id, tenant_id, role, rank"),
    ("locations", "id, tenant_id, name, description, lifecycle"),
    (
        "location_availability",
        "location_id, tenant_id, include_subtenants",
    ),
    (
        "resource_providers",
        "id, tenant_id, name, description, scopes, lifecycle",
    ),
    ("rp_availability", "rp_id, tenant_id, include_subtenants"),
    (
        "rp_authorizations",
        "rp_id, tenant_id, include_subtenants, scopes",
    ),
    ("rp_locations", "rp_id, location_id"),
    ("rp_identities", "rp_id, identity, issuer, subject"),
    ("providers", "id, tenant_id, rp_id, name, lifecycle"),
    (
        "resources",
        "id, kind, tenant_id, lifecycle, deletion_requested_at is not null as deletion_requested",
    ),
    ("annotations", "resource_id, key, value"),
    ("statuses", "resource_id, source, data"),
    ("finalizers", "resource_id, finalizer"),
];

/// What the read models hold, in the compared columns.
pub(super) async fn read(client: &deadpool_postgres::Client) -> Tables {
    let mut out = Tables::new();
    for p in ProjectionSet::all().iter() {
        for table in p.tables() {
            let columns = COLUMNS
                .iter()
                .find(|(t, _)| t == table)
                .map(|(_, c)| *c)
                .unwrap_or_else(|| panic!("read.{table} has no model in tests/tables.rs"));
            let rows = client
                .query(
                    &format!(
                        "select row_to_json(t)::text from (select {columns} from read.{table}) t"
                    ),
                    &[],
                )
                .await
                .unwrap();
            let rows = rows.iter().map(|r| canonical(&r.get::<_, String>(0)));
            out.insert(table.to_string(), rows.collect());
        }
    }
    out
}

fn canonical(text: &str) -> String {
    serde_json::from_str::<Value>(text).unwrap().to_string()
}

/// What the read models must hold, from the model's streams.
pub(super) fn expected(store: &MemoryStore) -> Tables {
    let mut out: BTreeMap<&str, Vec<Value>> = COLUMNS.iter().map(|(t, _)| (*t, vec![])).collect();
    let mut row = |table: &'static str, value: Value| out.get_mut(table).unwrap().push(value);
    for (id, agg) in &store.streams {
        let lifecycle = agg.lifecycle.as_str();
        match &agg.body {
            Body::Tenant(t) => {
                let ancestors: Vec<&str> = t.path.iter().map(|p| p.as_str()).collect();
                let path = ancestors
                    .iter()
                    .copied()
                    .chain([id.as_str()])
                    .collect::<Vec<_>>();
                row(
                    "tenants",
                    json!({"id": id, "parent_id": t.parent_id, "name": t.name,
                    "description": t.description, "lifecycle": lifecycle, "depth": t.path.len(),
                    "path": path.join("/"), "ancestors": ancestors}),
                );
                for (user, role) in &t.grants {
                    row(
                        "grants",
                        json!({"user_id": user, "tenant_id": id, "role": role,
                        "rank": rank(*role)}),
                    );
                }
            }
            Body::User(u) => {
                row(
                    "users",
                    json!({"id": id, "issuer": u.issuer, "subject": u.subject}),
                );
            }
            Body::Location(l) => {
                row(
                    "locations",
                    json!({"id": id, "tenant_id": l.tenant_id, "name": l.name,
                    "description": l.description, "lifecycle": lifecycle}),
                );
                for (t, inc) in &l.available_to {
                    row(
                        "location_availability",
                        json!({"location_id": id, "tenant_id": t,
                        "include_subtenants": inc}),
                    );
                }
            }
            Body::ResourceProvider(r) => {
                row(
                    "resource_providers",
                    json!({"id": id, "tenant_id": r.tenant_id,
                    "name": r.name, "description": r.description, "scopes": r.scopes,
                    "lifecycle": lifecycle}),
                );
                for (t, inc) in &r.available_to {
                    row(
                        "rp_availability",
                        json!({"rp_id": id, "tenant_id": t,
                        "include_subtenants": inc}),
                    );
                }
                for (t, a) in &r.authorizations {
                    row(
                        "rp_authorizations",
                        json!({"rp_id": id, "tenant_id": t,
                        "include_subtenants": a.include_subtenants, "scopes": a.scopes}),
                    );
                }
                for l in &r.locations {
                    row("rp_locations", json!({"rp_id": id, "location_id": l}));
                }
                for i in &r.identities {
                    let identity = json!([i.issuer, i.subject]).to_string();
                    row(
                        "rp_identities",
                        json!({"rp_id": id, "identity": identity, "issuer": i.issuer,
                        "subject": i.subject}),
                    );
                }
            }
            Body::Provider(p) => {
                row(
                    "providers",
                    json!({"id": id, "tenant_id": p.tenant_id,
                    "rp_id": p.resource_provider_id, "name": p.name, "lifecycle": lifecycle}),
                );
            }
        }
        // A tenant's own row in `resources` names itself as its tenant; a user has none.
        let tenant_id = match &agg.body {
            Body::Tenant(_) => Some(id.clone()),
            _ => agg.governing_tenant().map(|t| t.to_string()),
        };
        row(
            "resources",
            json!({"id": id, "kind": agg.kind().as_str(), "tenant_id": tenant_id,
            "lifecycle": lifecycle,
            "deletion_requested": agg.metadata.deletion_requested_at.is_some()}),
        );
        for (key, value) in &agg.metadata.annotations {
            row(
                "annotations",
                json!({"resource_id": id, "key": key, "value": value}),
            );
        }
        for (source, data) in &agg.metadata.statuses {
            row(
                "statuses",
                json!({"resource_id": id, "source": source, "data": data}),
            );
        }
        for finalizer in &agg.metadata.finalizers {
            row(
                "finalizers",
                json!({"resource_id": id, "finalizer": finalizer}),
            );
        }
    }
    out.into_iter()
        .map(|(t, rows)| (t.to_owned(), rows.iter().map(Value::to_string).collect()))
        .collect()
}

/// The rank stored beside a role (`max()` of it is the effective role).
fn rank(role: Role) -> i16 {
    match role {
        Role::Viewer => 1,
        Role::Editor => 2,
        Role::Admin => 3,
    }
}
