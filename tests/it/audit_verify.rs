//! `plinth audit verify` through the real binary: a rewritten, a removed and an inserted event
//! are each found and named, and an untouched log passes.
//!
//! Tampering needs a superuser who disables the append-only trigger first; the chain and the
//! stream heads still tell.

use plinth_commands::hash::{self, Hashed};
use plinth_commands::{CommandBus, Submission};
use plinth_domain::{Actor, Command, UserId};
use serde_json::json;

use crate::support::{run_plinth, test_db, TestDb};

/// A tenant with two events (created, renamed); returns its id.
async fn tenant_with_two_events(db: &TestDb) -> String {
    let bus = CommandBus::start(db.pool.clone(), 1);
    let actor = Actor::user(UserId::for_identity("test", "root"), true);
    let submit = |t: &str, data: serde_json::Value| {
        Submission::new(actor.clone(), Command::parse(t, data).unwrap())
    };
    let (created, _) = bus
        .submit(submit("CreateTenant", json!({"name": "audited"})))
        .await
        .unwrap();
    bus.submit(submit(
        "UpdateTenant",
        json!({"tenant_id": created.stream_id, "name": "renamed"}),
    ))
    .await
    .unwrap();
    created.stream_id
}

/// Runs `plinth audit verify`; returns (success, stdout + stderr).
fn verify(db: &TestDb) -> (bool, String) {
    run_plinth(&["audit", "verify", "--database-url", &db.url])
}

/// Runs `sql` with the append-only trigger disabled.
async fn tamper(db: &TestDb, sql: &str) {
    let client = db.pool.get().await.unwrap();
    client
        .batch_execute(&format!(
            "alter table events disable trigger events_no_update_or_delete;
             {sql};
             alter table events enable trigger events_no_update_or_delete;"
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_untouched_log_verifies() {
    let db = test_db().await;
    tenant_with_two_events(&db).await;
    let (ok, output) = verify(&db);
    assert!(ok, "{output}");
    assert!(output.contains("ok: 2 events"), "{output}");
}

#[tokio::test]
async fn a_rewritten_event_is_named() {
    let db = test_db().await;
    let tenant = tenant_with_two_events(&db).await;
    let event_id: uuid::Uuid = db
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "select event_id from events where stream_id = $1 and stream_version = 2",
            &[&tenant],
        )
        .await
        .unwrap()
        .get(0);
    tamper(
        &db,
        &format!(
            "update events set data = '{{\"tenant_id\":\"{tenant}\",\"name\":\"forged\"}}'
             where stream_id = '{tenant}' and stream_version = 2"
        ),
    )
    .await;
    let (ok, output) = verify(&db);
    assert!(!ok, "a rewritten event passed: {output}");
    assert!(
        output.contains(&format!("chain broken at event {event_id}"))
            && output.contains(&format!("stream {tenant} version 2")),
        "{output}"
    );
}

#[tokio::test]
async fn a_removed_last_event_is_found_by_the_stream_head() {
    let db = test_db().await;
    let tenant = tenant_with_two_events(&db).await;
    tamper(
        &db,
        &format!("delete from events where stream_id = '{tenant}' and stream_version = 2"),
    )
    .await;
    let (ok, output) = verify(&db);
    assert!(!ok, "a removed event passed: {output}");
    assert!(
        output.contains(&format!(
            "stream {tenant} head says version 2 (with its last hash), its last event is version 1"
        )),
        "{output}"
    );
}

/// An event appended behind the write side's back, with a correctly recomputed hash: the chain
/// is intact, only the head tells.
#[tokio::test]
async fn an_inserted_event_with_a_valid_hash_is_found_by_the_stream_head() {
    let db = test_db().await;
    let tenant = tenant_with_two_events(&db).await;
    let client = db.pool.get().await.unwrap();
    let last = client
        .query_one(
            "select hash, metadata::text, recorded_at from events
             where stream_id = $1 and stream_version = 2",
            &[&tenant],
        )
        .await
        .unwrap();
    let (prev, metadata): (Vec<u8>, String) = (last.get(0), last.get(1));
    let recorded_at: chrono::DateTime<chrono::Utc> = last.get(2);
    let event_id = uuid::Uuid::now_v7();
    let data = format!("{{\"tenant_id\":\"{tenant}\",\"name\":\"inserted\"}}");
    let forged = hash::chain(
        &prev,
        &Hashed {
            event_id,
            stream_id: &tenant,
            stream_version: 3,
            event_type: "TenantUpdated",
            schema_version: 1,
            data: &data,
            metadata: &metadata,
            recorded_at,
        },
    );
    client
        .execute(
            "insert into events (event_id, stream_id, stream_version, event_type, schema_version,
                                 data, metadata, recorded_at, hash)
             values ($1, $2, 3, 'TenantUpdated', 1, $3::text::json, $4::text::json, $5, $6)",
            &[
                &event_id,
                &tenant,
                &data,
                &metadata,
                &recorded_at,
                &forged.to_vec(),
            ],
        )
        .await
        .unwrap();
    let (ok, output) = verify(&db);
    assert!(!ok, "an inserted event passed: {output}");
    assert!(
        output.contains(&format!(
            "stream {tenant} head says version 2 (with its last hash), its last event is version 3"
        )),
        "{output}"
    );
}
