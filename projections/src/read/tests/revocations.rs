//! Revoking what was given, or deleting what held it, takes it away from every read built on
//! it. Named cases beside the property test, which draws these at random: a read model that
//! ignored `ProviderAuthorizationRevoked` once passed every test (issue 26).

use serde_json::{json, Value};

use plinth_domain::memory::MemoryStore;
use plinth_domain::{Actor, Command, Scope};
use plinth_test_support::LogWriter;

use super::fresh_db;
use crate::read::queries::{self, PageRequest, Viewer};
use crate::read::ProjectionSet;

/// Executes one command in the model and returns the stream it wrote.
fn run(store: &mut MemoryStore, actor: &Actor, command: &str, data: Value) -> String {
    let command = Command::parse(command, data).expect("well-formed command");
    store.execute(actor, &command).expect("allowed").0
}

/// What the reads say of a resource provider in a tenant: the access check, whether the
/// tenant's list shows it authorized (with which scopes), and the tenants it lists as served.
async fn reads(
    client: &deadpool_postgres::Client,
    rp: &str,
    tenant: &str,
) -> (bool, Option<(bool, Vec<String>)>, Vec<String>) {
    let all = PageRequest {
        after: None,
        limit: 100,
    };
    let scope = Scope::parse("lb:read").unwrap();
    let access = queries::access_check(client, rp, tenant, &scope)
        .await
        .unwrap();
    let listed = queries::tenant_resource_providers(client, &Viewer::Platform, tenant, &all)
        .await
        .unwrap()
        .unwrap()
        .items
        .into_iter()
        .find(|r| r.id == rp)
        .map(|r| (r.authorized, r.scopes));
    let served = queries::resource_provider_tenants(client, &Viewer::Platform, rp, &all)
        .await
        .unwrap()
        .map(|page| page.items.into_iter().map(|t| t.tenant_id).collect())
        .unwrap_or_default();
    (access, listed, served)
}

/// Projects `events` (the log's next part) and returns what the reads then say.
async fn project_and_read(
    pool: &deadpool_postgres::Pool,
    log: &mut LogWriter,
    events: &[(String, plinth_domain::Event)],
    rp: &str,
    tenant: &str,
) -> (bool, Option<(bool, Vec<String>)>, Vec<String>) {
    let mut writer = pool.get().await.unwrap();
    let mut projector = pool.get().await.unwrap();
    log.write(&mut writer, events).await.unwrap();
    super::super::runner::catch_up(&mut projector, ProjectionSet::all(), 100)
        .await
        .unwrap();
    reads(&projector, rp, tenant).await
}

#[tokio::test]
async fn a_deleted_resource_provider_holds_nothing_and_is_listed_nowhere() {
    let mut store = MemoryStore::default();
    let admin = Actor::user(store.create_user("revocations", "admin"), true);
    let root = run(&mut store, &admin, "CreateTenant", json!({"name": "root"}));
    let rp = run(
        &mut store,
        &admin,
        "CreateResourceProvider",
        json!({"tenant_id": root, "name": "lb", "scopes": ["lb:read"]}),
    );
    run(
        &mut store,
        &admin,
        "AuthorizeResourceProvider",
        json!({"resource_provider_id": rp, "tenant_id": root}),
    );
    let authorized = store.log.len();
    run(
        &mut store,
        &admin,
        "DeleteResourceProvider",
        json!({"resource_provider_id": rp}),
    );
    let pool = fresh_db().await;
    let mut log = LogWriter::new();
    let given = (
        true,
        Some((true, vec!["lb:read".to_owned()])),
        vec![root.clone()],
    );
    let read = project_and_read(&pool, &mut log, &store.log[..authorized], &rp, &root).await;
    assert_eq!(read, given, "authorized");
    let read = project_and_read(&pool, &mut log, &store.log[authorized..], &rp, &root).await;
    assert_eq!(read, (false, None, vec![]), "deleted");
}

#[tokio::test]
async fn a_revoked_authorization_is_gone_from_every_read() {
    let mut store = MemoryStore::default();
    let admin = Actor::user(store.create_user("revocations", "admin"), true);
    let root = run(&mut store, &admin, "CreateTenant", json!({"name": "root"}));
    let child = run(
        &mut store,
        &admin,
        "CreateTenant",
        json!({"name": "child", "parent_id": root}),
    );
    let rp = run(
        &mut store,
        &admin,
        "CreateResourceProvider",
        json!({"tenant_id": root, "name": "lb", "scopes": ["lb:read"]}),
    );
    run(
        &mut store,
        &admin,
        "MakeResourceProviderAvailable",
        json!({"resource_provider_id": rp, "tenant_id": child}),
    );
    run(
        &mut store,
        &admin,
        "AuthorizeResourceProvider",
        json!({"resource_provider_id": rp, "tenant_id": child}),
    );
    let authorized = store.log.len();
    run(
        &mut store,
        &admin,
        "RevokeResourceProviderAuthorization",
        json!({"resource_provider_id": rp, "tenant_id": child}),
    );

    let pool = fresh_db().await;
    let mut writer = pool.get().await.unwrap();
    let mut projector = pool.get().await.unwrap();
    let mut log = LogWriter::new();
    log.write(&mut writer, &store.log[..authorized])
        .await
        .unwrap();
    super::super::runner::catch_up(&mut projector, ProjectionSet::all(), 100)
        .await
        .unwrap();
    let given = (
        true,
        Some((true, vec!["lb:read".to_owned()])),
        vec![child.clone()],
    );
    assert_eq!(reads(&projector, &rp, &child).await, given, "authorized");

    log.write(&mut writer, &store.log[authorized..])
        .await
        .unwrap();
    super::super::runner::catch_up(&mut projector, ProjectionSet::all(), 100)
        .await
        .unwrap();
    let revoked = (false, Some((false, vec![])), vec![]);
    assert_eq!(reads(&projector, &rp, &child).await, revoked, "revoked");
    let left: i64 = projector
        .query_one("select count(*) from read.rp_authorizations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "rows left in read.rp_authorizations");
}

/// The locations `rp` serves, as `read.rp_locations` holds them.
async fn served(pool: &deadpool_postgres::Pool, rp: &str) -> Vec<String> {
    let client = pool.get().await.unwrap();
    let rows = client
        .query(
            "select location_id from read.rp_locations where rp_id = $1 order by 1",
            &[&rp],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn a_location_served_then_removed_is_served_no_more() {
    let mut store = MemoryStore::default();
    let admin = Actor::user(store.create_user("revocations", "admin"), true);
    let root = run(&mut store, &admin, "CreateTenant", json!({"name": "root"}));
    let rp = run(
        &mut store,
        &admin,
        "CreateResourceProvider",
        json!({"tenant_id": root, "name": "lb", "scopes": ["lb:read"]}),
    );
    let ny = run(
        &mut store,
        &admin,
        "CreateLocation",
        json!({"tenant_id": root, "name": "ny"}),
    );
    let serve = json!({"resource_provider_id": rp, "location_id": ny});
    run(
        &mut store,
        &admin,
        "AddResourceProviderLocation",
        serve.clone(),
    );
    let added = store.log.len();
    run(&mut store, &admin, "RemoveResourceProviderLocation", serve);
    let pool = fresh_db().await;
    let mut log = LogWriter::new();
    project_and_read(&pool, &mut log, &store.log[..added], &rp, &root).await;
    assert_eq!(served(&pool, &rp).await, [ny], "added");
    project_and_read(&pool, &mut log, &store.log[added..], &rp, &root).await;
    assert_eq!(served(&pool, &rp).await, Vec::<String>::new(), "removed");
}

#[tokio::test]
async fn a_resource_provider_whose_deletion_waits_on_a_finalizer_reads_as_deleting() {
    let mut store = MemoryStore::default();
    let admin = Actor::user(store.create_user("revocations", "admin"), true);
    let root = run(&mut store, &admin, "CreateTenant", json!({"name": "root"}));
    let rp = run(
        &mut store,
        &admin,
        "CreateResourceProvider",
        json!({"tenant_id": root, "name": "lb", "scopes": ["lb:read"]}),
    );
    let finalizer = json!({"resource_id": rp, "finalizer": "ops/drain"});
    run(&mut store, &admin, "AddFinalizer", finalizer);
    run(
        &mut store,
        &admin,
        "DeleteResourceProvider",
        json!({"resource_provider_id": rp}),
    );
    let pool = fresh_db().await;
    let mut log = LogWriter::new();
    project_and_read(&pool, &mut log, &store.log, &rp, &root).await;
    let client = pool.get().await.unwrap();
    let lifecycle: String = client
        .query_one(
            "select lifecycle from read.resource_providers where id = $1",
            &[&rp],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(lifecycle, "deleting");
}
