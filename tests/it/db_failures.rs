//! Database failures are classified by SQLSTATE (`commands/src/sqlstate.rs`): a connection an
//! administrator terminates (57P01, what every backend gets on a fast shutdown) is a 503 with
//! `Retry-After`, never a 500, and the command's retry with its `Idempotency-Key` applies it
//! once.
//!
//! The test makes the failure land exactly where it hurt: the command's backend waits inside
//! its transaction on a stream lock the test holds, and the test terminates that backend with
//! `pg_terminate_backend`, which answers the waiting statement with `FATAL 57P01`. Only this
//! test's own database's backends are touched, so the shared server's other users are not.

use std::time::Duration;

use serde_json::json;

use crate::support::spawn_app;

#[tokio::test]
async fn a_command_whose_connection_an_administrator_terminates_gets_503_and_its_retry_applies_once(
) {
    let app = spawn_app().await;
    let admin = app.admin();
    let tenant = app
        .ok(&admin, "CreateTenant", json!({"name": "terminated"}))
        .await;

    // Hold the tenant's stream lock, so that the next command on it waits in its transaction.
    let mut holder = app.db.pool.get().await.unwrap();
    let lock = holder.transaction().await.unwrap();
    plinth_commands::lock_streams(&*lock, &[&tenant], &[])
        .await
        .unwrap();

    let key = uuid::Uuid::now_v7().to_string();
    let body = json!({"type": "SetAnnotation",
                      "data": {"resource_id": tenant, "key": "example.com/owner", "value": "x"}});
    let send = {
        let (http, url, admin, key, body) = (
            app.http.clone(),
            format!("{}/v1/commands", app.base),
            admin.clone(),
            key.clone(),
            body.clone(),
        );
        move || {
            http.post(&url)
                .bearer_auth(&admin)
                .header("idempotency-key", &key)
                .json(&body)
                .send()
        }
    };
    let pending = tokio::spawn(send());

    // The command's backend, waiting on the advisory lock.
    let observer = app.db.pool.get().await.unwrap();
    let mut waiting = Vec::new();
    for _ in 0..500 {
        waiting = observer
            .query(
                "select pid from pg_stat_activity
                  where datname = current_database() and wait_event = 'advisory'
                    and pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        if !waiting.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(waiting.len(), 1, "the command never waited on the lock");
    let pid: i32 = waiting[0].get(0);
    let terminated: bool = observer
        .query_one("select pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(terminated);

    let response = pending.await.unwrap().unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").cloned();
    let content_type = response.headers().get("content-type").cloned();
    let problem: serde_json::Value = response.json().await.unwrap_or_default();
    assert_eq!(status, 503, "{problem}");
    assert!(retry_after.is_some(), "503 without Retry-After");
    assert_eq!(
        content_type.unwrap().to_str().unwrap(),
        "application/problem+json"
    );
    assert_eq!(problem["type"], "urn:plinth:problem:unavailable");
    lock.rollback().await.unwrap();

    // The retry with the same key applies it; a second retry replays it: in the log once.
    let retried = send().await.unwrap();
    assert_eq!(retried.status().as_u16(), 201);
    let replayed = send().await.unwrap();
    assert_eq!(replayed.status().as_u16(), 200);
    let annotations: i64 = observer
        .query_one(
            "select count(*) from events
              where stream_id = $1 and event_type = 'AnnotationSet'",
            &[&tenant],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(annotations, 1);
}
