//! The writers' cache of stream states (ADR 0009) serves only committed states: a version whose
//! transaction failed at COMMIT, then written with other events by another process, must not
//! be answered from the cache of the process whose commit failed.

use serde_json::json;

use crate::support::{self, Api, ADMIN, SECRET};

async fn spawn_on(url: &str) -> (plinth_api::app::RunningApp, Api) {
    let settings = plinth_api::settings::Settings::for_database(url, SECRET, &[ADMIN]);
    let app = plinth_api::app::spawn(settings).await.expect("app starts");
    let api = Api {
        base: format!("http://{}", app.address),
        http: reqwest::Client::new(),
    };
    (app, api)
}

#[tokio::test]
async fn a_state_whose_commit_failed_is_never_served_from_the_cache() {
    let db = support::test_db().await;
    let (_first_app, first) = spawn_on(&db.url).await;
    let (_second_app, second) = spawn_on(&db.url).await;
    let admin = plinth_api::auth::mint_dev_token(SECRET, ADMIN, 3600).unwrap();
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
