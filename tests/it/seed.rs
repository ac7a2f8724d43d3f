//! `plinth seed` through the real binary: a small platform in a fresh database has the shape
//! asked for (deep and wide trees, grants that inherit, shared resources), a log that verifies
//! and read models equal to a rebuild; the same seed draws the same platform; a database that
//! holds events is refused unless `--append`.

use std::collections::BTreeSet;
use std::process::Output;

use plinth_test_support::{test_server_url, ScratchDatabase};

use crate::crash::assert_read_models_equal_a_rebuild;
use crate::support::{plinth_binary, run_plinth, TestDb, ADMIN, HORIZON, SECRET};

// Seeding keeps both cores busy for seconds: the tests here hold `HORIZON` for writing, so
// that tests which bound how soon an event is seen do not run beside them.

const TENANTS: &str = "200";
const EVENTS: i64 = 3000;

fn seed(url: &str, args: &[&str]) -> Output {
    std::process::Command::new(plinth_binary())
        .args(["seed", "--database-url", url])
        .args(args)
        .output()
        .expect("plinth runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A fresh database with nothing in it, not even the schema: `plinth seed` migrates it.
async fn empty_db() -> TestDb {
    let db = ScratchDatabase::create(&test_server_url(), "plinth_test")
        .await
        .expect("PostgreSQL must be running");
    let pool = plinth_commands::pool(&db.url, 8).unwrap();
    TestDb {
        url: db.url,
        name: db.name,
        pool,
    }
}

async fn scalar(db: &TestDb, sql: &str) -> i64 {
    db.pool
        .get()
        .await
        .unwrap()
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

/// Every tenant as the path of names from its root, with its lifecycle: the platform's
/// structure without the ids the write side picked.
async fn tenant_paths(db: &TestDb) -> BTreeSet<String> {
    let rows = db
        .pool
        .get()
        .await
        .unwrap()
        .query(
            "select t.lifecycle, coalesce((select string_agg(a.name, ' / ' order by o.n)
                                           from unnest(t.ancestors) with ordinality o(id, n)
                                           join read.tenants a on a.id = o.id), '') || ' / ' || t.name
             from read.tenants t",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| format!("{} ({})", r.get::<_, String>(1), r.get::<_, String>(0)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_seeded_platform_is_deep_wide_shared_verified_and_equal_to_a_rebuild() {
    let _horizon = HORIZON.write().await;
    let db = empty_db().await;
    let out = seed(
        &db.url,
        &["--tenants", TENANTS, "--events", "3000", "--seed", "7"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("seeded") && stdout.contains("events/s"),
        "{stdout}"
    );
    assert!(
        out.stderr.is_empty() || !String::from_utf8_lossy(&out.stderr).contains("events ("),
        "no progress bar on a pipe: {}",
        text(&out)
    );

    // As many events as asked for, and not many more.
    let events = scalar(&db, "select count(*) from events").await;
    assert!((EVENTS..=EVENTS + 100).contains(&events), "{events} events");

    // The tree: several roots, a chain at least 5 deep, a tenant with at least 10 children.
    assert_eq!(scalar(&db, "select count(*) from read.tenants").await, 200);
    assert!(scalar(&db, "select count(*) from read.tenants where depth = 0").await >= 3);
    assert!(scalar(&db, "select max(depth)::int8 from read.tenants").await >= 5);
    let widest = scalar(
        &db,
        "select max(n) from (select count(*) n from read.tenants where parent_id is not null
                              group by parent_id) c",
    )
    .await;
    assert!(widest >= 10, "widest fan-out {widest}");
    // Deleted at the end, some through the finalizer lifecycle.
    assert!(
        scalar(
            &db,
            "select count(*) from read.tenants where lifecycle = 'deleted'"
        )
        .await
            >= 2
    );
    for (table, at_least) in [
        ("read.users", 25),
        ("read.grants", 25),
        ("read.locations", 6),
        ("read.resource_providers", 3),
        ("read.providers", 1),
    ] {
        let n = scalar(&db, &format!("select count(*) from {table}")).await;
        assert!(n >= at_least, "{table}: {n}");
    }
    for event_type in [
        "LocationMadeAvailable",
        "ResourceProviderMadeAvailable",
        "ResourceProviderLocationAdded",
        "ProviderAuthorized",
        "AnnotationSet",
        "StatusSet",
        "DeletionRequested",
    ] {
        let n = scalar(
            &db,
            &format!("select count(*) from events where event_type = '{event_type}'"),
        )
        .await;
        assert!(n > 0, "no {event_type}");
    }
    // Shared with sub-tenants, some for whole subtrees.
    assert!(
        scalar(
            &db,
            "select count(*) from events where event_type = 'LocationMadeAvailable'
               and (data::jsonb ->> 'include_subtenants')::bool"
        )
        .await
            > 0
    );

    // Every hash chain and stream head verifies.
    let (ok, output) = run_plinth(&["audit", "verify", "--database-url", &db.url]);
    assert!(ok, "{output}");

    // Through the API: a root's admin reads the deepest tenant of its tree by the inherited
    // role; the admin of another root does not see it.
    let settings = plinth_api::settings::Settings::for_database(&db.url, SECRET, &[ADMIN]);
    let app = plinth_api::app::spawn(settings).await.expect("app starts");
    let base = format!("http://{}", app.address);
    let client = db.pool.get().await.unwrap();
    let admins = client
        .query(
            "select u.subject, t.id from read.grants g
               join read.users u on u.id = g.user_id
               join read.tenants t on t.id = g.tenant_id
             where t.depth = 0 and g.role = 'admin' order by t.name",
            &[],
        )
        .await
        .unwrap();
    let (owner, root): (String, String) = (admins[0].get(0), admins[0].get(1));
    let stranger: String = admins
        .iter()
        .map(|r| r.get::<_, String>(0))
        .find(|s| *s != owner)
        .expect("several roots");
    let deep: String = client
        .query_one(
            "select id from read.tenants where ancestors[1] = $1 and lifecycle = 'live'
             order by depth desc, id limit 1",
            &[&root],
        )
        .await
        .unwrap()
        .get(0);
    let http = reqwest::Client::new();
    let get = |subject: &str| {
        http.get(format!("{base}/v1/tenants/{deep}"))
            .bearer_auth(plinth_api::auth::mint_dev_token(SECRET, subject, 600).unwrap())
            .send()
    };
    let reply = get(&owner).await.unwrap();
    assert_eq!(reply.status(), 200, "the root admin reads {deep}");
    let depth = reply.json::<serde_json::Value>().await.unwrap()["depth"].as_i64();
    assert!(depth.unwrap_or(0) >= 2, "a deep tenant: {depth:?}");
    assert_eq!(get(&stranger).await.unwrap().status(), 404);

    // The read models are what a rebuild from the log makes.
    let token = plinth_api::auth::mint_dev_token(SECRET, ADMIN, 600).unwrap();
    let last = scalar(&db, "select max(position) from events").await;
    assert_read_models_equal_a_rebuild(&db, &base, &token, last).await;

    // A database with events is refused (exit 2) and left as it was, unless --append. (The
    // requests above recorded their users: count from here.)
    let events = scalar(&db, "select count(*) from events").await;
    let again = seed(&db.url, &["--tenants", "20", "--events", "400"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("--append"), "{}", text(&again));
    assert_eq!(scalar(&db, "select count(*) from events").await, events);
    let appended = seed(&db.url, &["--tenants", "20", "--events", "400", "--append"]);
    assert!(appended.status.success(), "{}", text(&appended));
    assert!(scalar(&db, "select count(*) from events").await >= events + 400);
    assert_eq!(scalar(&db, "select count(*) from read.tenants").await, 220);
    let (ok, output) = run_plinth(&["audit", "verify", "--database-url", &db.url]);
    assert!(ok, "{output}");
    app.handle.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_seed_draws_the_same_platform() {
    let _horizon = HORIZON.write().await;
    let args = ["--tenants", "120", "--events", "1200"];
    let mut platforms = Vec::new();
    for seed_value in ["11", "11", "12"] {
        let db = empty_db().await;
        let out = seed(&db.url, &[&args[..], &["--seed", seed_value]].concat());
        assert!(out.status.success(), "{}", text(&out));
        platforms.push(tenant_paths(&db).await);
    }
    assert_eq!(platforms[0].len(), 120);
    assert_eq!(platforms[0], platforms[1], "same seed, same tenants");
    assert_ne!(platforms[0], platforms[2], "another seed, another platform");
}

#[tokio::test]
async fn too_few_events_for_the_tenants_is_refused() {
    let db = empty_db().await;
    let out = seed(&db.url, &["--tenants", "1000", "--events", "500"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("too few"), "{}", text(&out));
}
