//! The writers' cache of stream states (ADR 0009) serves only committed states: a version whose
//! transaction failed at COMMIT, then written with other events by another process, must not
//! be answered from the cache of the process whose commit failed. And a full cache that starts
//! over while batches are in flight costs a snapshot, never a command.

use serde_json::json;

use crate::support::{self, Api, ADMIN, SECRET};

/// Two processes (each its own writers and caches) on one database, and an admin's token.
struct TwoProcesses {
    db: support::TestDb,
    first: Api,
    second: Api,
    admin: String,
    _apps: [plinth_api::app::RunningApp; 2],
}

async fn two_processes() -> TwoProcesses {
    let db = support::test_db().await;
    let (first_app, first) = spawn_on(&db.url).await;
    let (second_app, second) = spawn_on(&db.url).await;
    TwoProcesses {
        db,
        first,
        second,
        admin: plinth_api::auth::mint_dev_token(SECRET, ADMIN, 3600).unwrap(),
        _apps: [first_app, second_app],
    }
}

async fn spawn_on(url: &str) -> (plinth_api::app::RunningApp, Api) {
    spawn_with(plinth_api::settings::Settings::for_database(
        url,
        SECRET,
        &[ADMIN],
    ))
    .await
}

async fn spawn_with(
    settings: plinth_api::settings::Settings,
) -> (plinth_api::app::RunningApp, Api) {
    let app = plinth_api::app::spawn(settings).await.expect("app starts");
    let api = Api {
        base: format!("http://{}", app.address),
        http: reqwest::Client::new(),
    };
    (app, api)
}

#[tokio::test]
async fn a_state_whose_commit_failed_is_never_served_from_the_cache() {
    let TwoProcesses {
        db,
        first,
        second,
        admin,
        _apps,
    } = two_processes().await;
    let tenant = first
        .ok(&admin, "CreateTenant", json!({"name": "cached"}))
        .await;

    // A COMMIT that fails after the batch decided and wrote: a deferred check on one value.
    let client = db.pool.get().await.unwrap();
    client
        .batch_execute(
            "create function refuse_doomed() returns trigger language plpgsql as $$
             begin
                 if new.data::text like '%doomed%' then
                     raise exception 'refused at commit';
                 end if;
                 return null;
             end $$;
             create constraint trigger refuse_doomed after insert on events
                 deferrable initially deferred for each row execute function refuse_doomed();",
        )
        .await
        .unwrap();

    let annotate =
        |key: &str, value: &str| json!({"resource_id": tenant, "key": key, "value": value});
    let doomed = first
        .command(&admin, "SetAnnotation", annotate("k", "doomed"))
        .await;
    assert!(
        doomed.status >= 500,
        "the failed commit answers: {doomed:?}"
    );

    // Another process writes the version the failed transaction would have written.
    second
        .ok(&admin, "SetAnnotation", annotate("other", "kept"))
        .await;

    // The first process must decide on the committed state: no `k`, and `other` set.
    let removed = first
        .command(
            &admin,
            "RemoveAnnotation",
            json!({"resource_id": tenant, "key": "k"}),
        )
        .await;
    assert!(removed.status < 300, "{removed:?}");
    assert_eq!(
        removed.body["events"],
        json!([]),
        "decided on a state that never committed"
    );
    let again = first
        .command(&admin, "SetAnnotation", annotate("other", "kept"))
        .await;
    assert!(again.status < 300, "{again:?}");
    assert_eq!(
        again.body["events"],
        json!([]),
        "decided on a state without the other process's commit"
    );
}

/// Found by `plinth bench append` once 50,000 new streams had filled the cache: a batch told
/// the load statement it held a tenant's state, another writer's commit cleared the cache, and
/// the batch then failed with a 500 ("neither sent nor cached"). Here a batch reads the root
/// and up to 8 tenants, which fit in a cache of 12 states, and each commit adds a batch of new
/// locations, which starts it over every commit or two: the two writers meet that window often.
#[tokio::test]
async fn a_cache_that_starts_over_under_load_fails_no_command() {
    let db = support::test_db().await;
    let mut settings = plinth_api::settings::Settings::for_database(&db.url, SECRET, &[ADMIN]);
    settings.writers = 2;
    settings.write_cache_states = 12;
    let (_app, api) = spawn_with(settings).await;
    let admin = plinth_api::auth::mint_dev_token(SECRET, ADMIN, 3600).unwrap();
    let root = api
        .ok(&admin, "CreateTenant", json!({"name": "root"}))
        .await;
    let mut tenants = Vec::new();
    for i in 0..8 {
        let name = format!("t{i}");
        tenants.push(
            api.ok(
                &admin,
                "CreateTenant",
                json!({"name": name, "parent_id": root}),
            )
            .await,
        );
    }

    // 32 clients, each creating locations in a tenant of its own, as the benchmark does.
    let clients = (0..32).map(|c| {
        let (api, admin, tenant) = (api.clone(), admin.clone(), tenants[c % 8].clone());
        tokio::spawn(async move {
            let mut failures = Vec::new();
            for n in 0..75 {
                let name = format!("loc-{c}-{n}");
                let reply = api
                    .command(
                        &admin,
                        "CreateLocation",
                        json!({"tenant_id": tenant, "name": name}),
                    )
                    .await;
                if reply.status != 201 {
                    failures.push(format!("{} {}", reply.status, reply.body));
                }
            }
            failures
        })
    });
    let failures: Vec<String> = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        futures::future::join_all(clients),
    )
    .await
    .expect("2,400 commands within two minutes")
    .into_iter()
    .flat_map(|f| f.expect("client task"))
    .collect();
    assert!(
        failures.is_empty(),
        "{} of 2,400 failed, first: {:?}",
        failures.len(),
        failures.first()
    );
}

/// A batch that only creates streams is decided on cached states before anything is read
/// (ADR 0015). Another process revokes the grant that authorizes it: the first process's cache
/// still shows the grant, and only the write's guard, run under the locks, can see the revoke.
#[tokio::test]
async fn a_create_decided_on_a_cached_grant_is_refused_once_another_process_revoked_it() {
    let TwoProcesses {
        db: _db,
        first,
        second,
        admin,
        _apps,
    } = two_processes().await;
    let bob = plinth_api::auth::mint_dev_token(SECRET, "bob", 3600).unwrap();
    let root = first
        .ok(&admin, "CreateTenant", json!({"name": "root"}))
        .await;
    let team = first
        .ok(
            &admin,
            "CreateTenant",
            json!({"name": "team", "parent_id": root}),
        )
        .await;
    let bob_id = first.get(&bob, "/v1/me").await.body["id"].clone();
    let grant = json!({"tenant_id": root, "user_id": bob_id, "role": "editor"});
    first.ok(&admin, "GrantTenantAccess", grant).await;
    let create_location = |name: &'static str| {
        first.command(
            &bob,
            "CreateLocation",
            json!({"tenant_id": team, "name": name}),
        )
    };
    // The first process now caches the root (with Bob's grant) and the team.
    let created = create_location("a").await;
    assert_eq!(created.status, 201, "{created:?}");

    let revoke = json!({"tenant_id": root, "user_id": bob_id});
    second.ok(&admin, "RevokeTenantAccess", revoke).await;

    let refused = create_location("b").await;
    assert_eq!(
        refused.status, 403,
        "decided on the cached grant, written although it was revoked: {refused:?}"
    );
}
