//! Property test: for random command sequences, the incremental projection (small batches, as
//! the runner applies them), a full rebuild, and a naive in-memory model of the rules (the
//! domain's `MemoryStore`, asked with the domain's own `available_to` / `holds_scope` /
//! `effective_role`) all agree. Needs PostgreSQL (`PLINTH_TEST_DATABASE_URL`, default local).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::json;

use plinth_domain::aggregate::available_to;
use plinth_domain::memory::MemoryStore;
use plinth_domain::{effective_role, Actor, Command, Lifecycle, Scope, TenantId, UserId};
use plinth_test_support::{test_server_url, LogWriter, ScratchDatabase};

use super::queries::{self, PageRequest, Viewer};
use super::{rebuild_in_batches, ProjectionSet};

async fn fresh_db() -> deadpool_postgres::Pool {
    let db = ScratchDatabase::create(&test_server_url(), "plinth_proj")
        .await
        .expect("PostgreSQL must be running (scripts/postgres-up)");
    db.migrated_pool(4).await.unwrap()
}

/// An abstract command over whatever exists when it runs (indices wrap around).
#[derive(Debug, Clone)]
enum Op {
    Tenant {
        parent: Option<u8>,
    },
    RenameTenant {
        t: u8,
    },
    DeleteTenant {
        t: u8,
    },
    Grant {
        user: u8,
        t: u8,
        role: u8,
    },
    Revoke {
        user: u8,
        t: u8,
    },
    Location {
        t: u8,
    },
    LocationAvailable {
        l: u8,
        t: u8,
        inc: bool,
    },
    LocationRevoke {
        l: u8,
        t: u8,
    },
    DeleteLocation {
        l: u8,
    },
    Rp {
        t: u8,
        scopes: u8,
    },
    RpAvailable {
        rp: u8,
        t: u8,
        inc: bool,
    },
    RpRevoke {
        rp: u8,
        t: u8,
    },
    Authorize {
        rp: u8,
        t: u8,
        inc: bool,
        scopes: u8,
    },
    Unauthorize {
        rp: u8,
        t: u8,
    },
    RpLocation {
        rp: u8,
        l: u8,
    },
    DeleteRp {
        rp: u8,
    },
    Annotate {
        t: u8,
        key: u8,
        remove: bool,
    },
    Status {
        t: u8,
        key: u8,
    },
    Finalizer {
        t: u8,
        remove: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let b = any::<bool>;
    let i = any::<u8>;
    prop_oneof![
        6 => proptest::option::weighted(0.9, i()).prop_map(|parent| Op::Tenant { parent }),
        1 => i().prop_map(|t| Op::RenameTenant { t }),
        1 => i().prop_map(|t| Op::DeleteTenant { t }),
        2 => (i(), i(), 0u8..3).prop_map(|(user, t, role)| Op::Grant { user, t, role }),
        1 => (i(), i()).prop_map(|(user, t)| Op::Revoke { user, t }),
        2 => i().prop_map(|t| Op::Location { t }),
        3 => (i(), i(), b()).prop_map(|(l, t, inc)| Op::LocationAvailable { l, t, inc }),
        1 => (i(), i()).prop_map(|(l, t)| Op::LocationRevoke { l, t }),
        1 => i().prop_map(|l| Op::DeleteLocation { l }),
        2 => (i(), 1u8..16).prop_map(|(t, scopes)| Op::Rp { t, scopes }),
        3 => (i(), i(), b()).prop_map(|(rp, t, inc)| Op::RpAvailable { rp, t, inc }),
        1 => (i(), i()).prop_map(|(rp, t)| Op::RpRevoke { rp, t }),
        4 => (i(), i(), b(), 0u8..16).prop_map(|(rp, t, inc, scopes)| Op::Authorize { rp, t, inc, scopes }),
        1 => (i(), i()).prop_map(|(rp, t)| Op::Unauthorize { rp, t }),
        1 => (i(), i()).prop_map(|(rp, l)| Op::RpLocation { rp, l }),
        1 => i().prop_map(|rp| Op::DeleteRp { rp }),
        2 => (i(), 0u8..3, b()).prop_map(|(t, key, remove)| Op::Annotate { t, key, remove }),
        1 => (i(), 0u8..2).prop_map(|(t, key)| Op::Status { t, key }),
        1 => (i(), b()).prop_map(|(t, remove)| Op::Finalizer { t, remove }),
    ]
}

const SCOPES: [&str; 4] = ["lb:*", "lb:read", "net:read", "net:write"];
const CHECKED: [&str; 5] = ["lb:read", "lb:write", "lb:*", "net:read", "net:write"];

fn scope_set(bits: u8) -> Vec<&'static str> {
    SCOPES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, s)| *s)
        .collect()
}

/// Runs the ops against the in-memory model; refused commands are simply skipped.
fn play(ops: &[Op]) -> (MemoryStore, Vec<UserId>) {
    let mut store = MemoryStore::default();
    let admin = Actor {
        user_id: store.create_user("prop", "admin"),
        platform_admin: true,
    };
    let users: Vec<UserId> = (0..3)
        .map(|i| store.create_user("prop", &format!("user-{i}")))
        .collect();
    let mut tenants: Vec<String> = Vec::new();
    let mut locations: Vec<String> = Vec::new();
    let mut rps: Vec<String> = Vec::new();
    let pick = |v: &[String], i: u8| -> Option<String> {
        (!v.is_empty()).then(|| v[i as usize % v.len()].clone())
    };
    // Tenants below `owner` (strict descendants), and tenants where a resource provider is
    // available: picking among them keeps most generated commands valid.
    let below = |store: &MemoryStore, owner: &str| -> Vec<String> {
        store
            .streams
            .iter()
            .filter(|(_, a)| a.lifecycle == Lifecycle::Live)
            .filter_map(|(id, a)| a.as_tenant().map(|t| (id, t)))
            .filter(|(_, t)| t.path.iter().any(|p| p.as_str() == owner))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let usable_by_rp = |store: &MemoryStore, rp: &str| -> Vec<String> {
        let Some(r) = store.streams.get(rp).and_then(|a| a.as_resource_provider()) else {
            return Vec::new();
        };
        store
            .streams
            .iter()
            .filter(|(_, a)| a.lifecycle == Lifecycle::Live)
            .filter_map(|(id, a)| a.as_tenant().map(|t| (id, t)))
            .filter(|(id, t)| r.is_available_at(&TenantId::parse(id).unwrap(), &t.path))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let owner_of = |store: &MemoryStore, id: &str| -> String {
        store
            .streams
            .get(id)
            .and_then(|a| a.owner_id())
            .unwrap_or_default()
    };
    for op in ops {
        let command = match op.clone() {
            Op::Tenant { parent } => {
                let parent = parent.and_then(|p| pick(&tenants, p));
                json!(["CreateTenant", {"name": format!("t{}", tenants.len()), "parent_id": parent}])
            }
            Op::RenameTenant { t } => match pick(&tenants, t) {
                Some(t) => {
                    json!(["UpdateTenant", {"tenant_id": t, "name": format!("renamed-{}", t.len())}])
                }
                None => continue,
            },
            Op::DeleteTenant { t } => match pick(&tenants, t) {
                Some(t) => json!(["DeleteTenant", {"tenant_id": t}]),
                None => continue,
            },
            Op::Grant { user, t, role } => match pick(&tenants, t) {
                Some(t) => {
                    let role = ["viewer", "editor", "admin"][role as usize];
                    json!(["GrantTenantAccess", {"tenant_id": t, "user_id": users[user as usize % 3], "role": role}])
                }
                None => continue,
            },
            Op::Revoke { user, t } => match pick(&tenants, t) {
                Some(t) => {
                    json!(["RevokeTenantAccess", {"tenant_id": t, "user_id": users[user as usize % 3]}])
                }
                None => continue,
            },
            Op::Location { t } => match pick(&tenants, t) {
                Some(t) => json!(["CreateLocation", {"tenant_id": t, "name": "l"}]),
                None => continue,
            },
            Op::LocationAvailable { l, t, inc } => match pick(&locations, l)
                .map(|l| (below(&store, &owner_of(&store, &l)), l))
                .map(|(c, l)| (Some(l), pick(&c, t)))
                .unwrap_or((None, None))
            {
                (Some(l), Some(t)) => {
                    json!(["MakeLocationAvailable", {"location_id": l, "tenant_id": t, "include_subtenants": inc}])
                }
                _ => continue,
            },
            Op::LocationRevoke { l, t } => match (pick(&locations, l), pick(&tenants, t)) {
                (Some(l), Some(t)) => {
                    json!(["RevokeLocationAvailability", {"location_id": l, "tenant_id": t}])
                }
                _ => continue,
            },
            Op::DeleteLocation { l } => match pick(&locations, l) {
                Some(l) => json!(["DeleteLocation", {"location_id": l}]),
                None => continue,
            },
            Op::Rp { t, scopes } => match pick(&tenants, t) {
                Some(t) => {
                    json!(["CreateResourceProvider", {"tenant_id": t, "name": "rp", "scopes": scope_set(scopes)}])
                }
                None => continue,
            },
            Op::RpAvailable { rp, t, inc } => match pick(&rps, rp)
                .map(|rp| (below(&store, &owner_of(&store, &rp)), rp))
                .map(|(c, rp)| (Some(rp), pick(&c, t)))
                .unwrap_or((None, None))
            {
                (Some(rp), Some(t)) => {
                    json!(["MakeResourceProviderAvailable", {"resource_provider_id": rp, "tenant_id": t, "include_subtenants": inc}])
                }
                _ => continue,
            },
            Op::RpRevoke { rp, t } => match (pick(&rps, rp), pick(&tenants, t)) {
                (Some(rp), Some(t)) => {
                    json!(["RevokeResourceProviderAvailability", {"resource_provider_id": rp, "tenant_id": t}])
                }
                _ => continue,
            },
            Op::Authorize { rp, t, inc, scopes } => match pick(&rps, rp)
                .map(|rp| (usable_by_rp(&store, &rp), rp))
                .map(|(c, rp)| (Some(rp), pick(&c, t)))
                .unwrap_or((None, None))
            {
                (Some(rp), Some(t)) => {
                    let scopes = (scopes != 0).then(|| scope_set(scopes));
                    json!(["AuthorizeResourceProvider", {"resource_provider_id": rp, "tenant_id": t, "include_subtenants": inc, "scopes": scopes}])
                }
                _ => continue,
            },
            Op::Unauthorize { rp, t } => match (pick(&rps, rp), pick(&tenants, t)) {
                (Some(rp), Some(t)) => {
                    json!(["RevokeResourceProviderAuthorization", {"resource_provider_id": rp, "tenant_id": t}])
                }
                _ => continue,
            },
            Op::RpLocation { rp, l } => match (pick(&rps, rp), pick(&locations, l)) {
                (Some(rp), Some(l)) => {
                    json!(["AddResourceProviderLocation", {"resource_provider_id": rp, "location_id": l}])
                }
                _ => continue,
            },
            Op::DeleteRp { rp } => match pick(&rps, rp) {
                Some(rp) => json!(["DeleteResourceProvider", {"resource_provider_id": rp}]),
                None => continue,
            },
            Op::Annotate { t, key, remove } => match pick(&tenants, t) {
                Some(t) if remove => {
                    json!(["RemoveAnnotation", {"resource_id": t, "key": format!("k{key}")}])
                }
                Some(t) => {
                    json!(["SetAnnotation", {"resource_id": t, "key": format!("k{key}"), "value": format!("v{}", ops.len())}])
                }
                None => continue,
            },
            Op::Status { t, key } => match pick(&tenants, t) {
                Some(t) => {
                    json!(["SetStatus", {"resource_id": t, "source": format!("s{key}"), "data": {"n": key}}])
                }
                None => continue,
            },
            Op::Finalizer { t, remove } => match pick(&tenants, t) {
                Some(t) if remove => {
                    json!(["RemoveFinalizer", {"resource_id": t, "finalizer": "f"}])
                }
                Some(t) => json!(["AddFinalizer", {"resource_id": t, "finalizer": "f"}]),
                None => continue,
            },
        };
        let command = Command::parse(command[0].as_str().unwrap(), command[1].clone())
            .expect("well-formed command");
        if let Ok((id, events)) = store.execute(&admin, &command) {
            if let Some(plinth_domain::Event::TenantCreated { .. }) = events.first() {
                tenants.push(id);
            } else if let Some(plinth_domain::Event::LocationCreated { .. }) = events.first() {
                locations.push(id);
            } else if let Some(plinth_domain::Event::ResourceProviderCreated { .. }) =
                events.first()
            {
                rps.push(id);
            }
        }
    }
    (store, users)
}

/// Every read-model row, as text, table by table.
async fn dump(client: &deadpool_postgres::Client) -> BTreeMap<&'static str, Vec<String>> {
    let mut out = BTreeMap::new();
    for p in ProjectionSet::all().iter() {
        for table in p.tables() {
            let rows = client
                .query(
                    &format!("select row_to_json(t)::text from read.{table} t order by 1"),
                    &[],
                )
                .await
                .unwrap();
            out.insert(*table, rows.iter().map(|r| r.get(0)).collect());
        }
    }
    out
}

fn live(store: &MemoryStore, id: &str) -> bool {
    store
        .streams
        .get(id)
        .is_some_and(|a| a.lifecycle != Lifecycle::Deleted)
}

/// Asks the read models what the naive model answers, for every tenant, location, resource
/// provider, user and scope of the run.
async fn compare_with_model(
    client: &deadpool_postgres::Client,
    store: &MemoryStore,
    users: &[UserId],
) {
    let all = PageRequest {
        after: None,
        limit: 1000,
    };
    let tenants: Vec<(&String, &plinth_domain::aggregate::Tenant)> = store
        .streams
        .iter()
        .filter(|(id, _)| live(store, id))
        .filter_map(|(id, a)| a.as_tenant().map(|t| (id, t)))
        .collect();
    for (id, t) in &tenants {
        let view = queries::tenant(client, &Viewer::Platform, id)
            .await
            .unwrap()
            .expect("tenant")
            .tenant;
        assert_eq!(view.name, t.name.as_str());
        assert_eq!(view.parent_id, t.parent_id.as_ref().map(|p| p.to_string()));
        // Descendants from the model: live tenants whose path contains this one.
        let expected: BTreeSet<String> = tenants
            .iter()
            .filter(|(_, d)| d.path.iter().any(|a| a.as_str() == id.as_str()))
            .map(|(d, _)| (*d).clone())
            .collect();
        let got: BTreeSet<String> = queries::descendants(client, &Viewer::Platform, id, None, &all)
            .await
            .unwrap()
            .unwrap()
            .items
            .into_iter()
            .map(|d| d.tenant.id)
            .collect();
        assert_eq!(got, expected, "descendants of {id}");
        // Usable locations.
        let tenant_id = TenantId::parse(id).unwrap();
        let expected: BTreeSet<(String, String)> = store
            .streams
            .iter()
            .filter(|(lid, _)| live(store, lid))
            .filter_map(|(lid, a)| a.as_location().map(|l| (lid, l)))
            .filter(|(_, l)| available_to(&l.tenant_id, &l.available_to, &tenant_id, &t.path))
            .map(|(lid, l)| {
                let via = if l.tenant_id == tenant_id {
                    "owned"
                } else {
                    "available"
                };
                ((*lid).clone(), via.to_owned())
            })
            .collect();
        let got: BTreeSet<(String, String)> =
            queries::tenant_locations(client, &Viewer::Platform, id, &all)
                .await
                .unwrap()
                .unwrap()
                .items
                .into_iter()
                .map(|u| (u.location.id, u.via))
                .collect();
        assert_eq!(got, expected, "locations usable by {id}");
        // Access checks for every resource provider and scope.
        for (rp_id, agg) in &store.streams {
            let Some(rp) = agg.as_resource_provider() else {
                continue;
            };
            for scope in CHECKED {
                let scope = Scope::parse(scope).unwrap();
                let expected = agg.lifecycle != Lifecycle::Deleted
                    && rp.holds_scope(&tenant_id, &t.path, &scope);
                let got = queries::access_check(client, rp_id, id, &scope)
                    .await
                    .unwrap();
                assert_eq!(got, expected, "{rp_id} holds {scope} in {id}");
            }
        }
        // Who may read it (any effective role).
        for user in users {
            let expected = effective_role(store, user, &tenant_id).is_some();
            let got = queries::can_view_tenant(client, &Viewer::User(user.to_string()), id)
                .await
                .unwrap();
            assert_eq!(got, expected, "{user} reads {id}");
        }
        // Metadata.
        let agg = &store.streams[id.as_str()];
        let metadata = queries::metadata(client, &Viewer::Platform, id)
            .await
            .unwrap()
            .expect("metadata");
        let annotations: BTreeMap<String, String> = agg
            .metadata
            .annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let got: BTreeMap<String, String> = metadata
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(got, annotations, "annotations of {id}");
        assert_eq!(metadata.statuses.len(), agg.metadata.statuses.len());
        let finalizers: Vec<String> = agg
            .metadata
            .finalizers
            .iter()
            .map(|f| f.to_string())
            .collect();
        assert_eq!(metadata.finalizers, finalizers);
        assert_eq!(
            metadata.deletion_requested_at.is_some(),
            agg.metadata.deletion_requested_at.is_some()
        );
    }
    // Roots.
    let expected: BTreeSet<String> = tenants
        .iter()
        .filter(|(_, t)| t.parent_id.is_none())
        .map(|(id, _)| (*id).clone())
        .collect();
    let got: BTreeSet<String> = queries::roots(client, &Viewer::Platform, &all)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(got, expected, "roots");
}

async fn check(ops: Vec<Op>, batch: i64) {
    let (store, users) = play(&ops);
    if std::env::var("PLINTH_PROP_STATS").is_ok() {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, e) in &store.log {
            *counts.entry(e.event_type()).or_default() += 1;
        }
        eprintln!("{counts:?}");
    }
    let pool = fresh_db().await;
    let mut writer = pool.get().await.unwrap();
    let mut log = LogWriter::new();
    let mut projector = pool.get().await.unwrap();
    // Incremental: the log grows in chunks and the projector follows in small batches.
    for chunk in store.log.chunks(7) {
        log.write(&mut writer, chunk).await.unwrap();
        super::runner::catch_up(&mut projector, ProjectionSet::all(), batch)
            .await
            .unwrap();
    }
    compare_with_model(&projector, &store, &users).await;
    let incremental = dump(&projector).await;
    // Full rebuild from the same log, swapped in.
    rebuild_in_batches(&pool, ProjectionSet::all(), batch + 1, |_| {})
        .await
        .unwrap();
    let rebuilt = dump(&projector).await;
    assert_eq!(
        incremental, rebuilt,
        "rebuild differs from the incremental projection"
    );
    compare_with_model(&projector, &store, &users).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn incremental_equals_rebuild_equals_the_naive_model(ops in prop::collection::vec(op(), 1..120), batch in 1i64..6) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(check(ops, batch));
    }
}
