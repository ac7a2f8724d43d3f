//! Events outlive their Rust types: a `TenantCreated` stored in schema version 1 (before
//! `depth` existed), written here with plain SQL as an old Plinth wrote it, is read by every
//! reader in the current shape — projected, rebuilt, shown in history and temporal reads, and
//! published to Kafka upcast, with `plinth_schema_version` saying so.

use plinth_commands::hash::{self, Hashed};
use plinth_projections::read::{self, ProjectionSet};
use serde_json::{json, Value};

use crate::read_side::read_ok;
use crate::relay::{brokers, config, read_all, start_relay, unique, wait_caught_up};
use crate::support::{spawn_app, TestApp};

/// Appends a version-1 `TenantCreated` of a child of `parent` (whose ancestors are
/// `parent_path`), hash-chained like the write side does; returns (tenant id, position).
async fn store_v1_child(app: &TestApp, parent: &str) -> (String, i64) {
    let tenant = plinth_domain::AggregateKind::Tenant.new_stream_id();
    let data = json!({"tenant_id": tenant, "name": "written by v1", "description": null,
                      "parent_id": parent, "path": [parent]})
    .to_string();
    let metadata = json!({"actor": null, "command_id": uuid::Uuid::now_v7(),
                          "correlation_id": uuid::Uuid::now_v7(),
                          "causation_id": uuid::Uuid::now_v7()})
    .to_string();
    let (event_id, recorded_at) = (uuid::Uuid::now_v7(), chrono::Utc::now());
    let recorded_at =
        chrono::DateTime::from_timestamp_micros(recorded_at.timestamp_micros()).expect("in range");
    let chained = hash::chain(
        &hash::GENESIS,
        &Hashed {
            event_id,
            stream_id: &tenant,
            stream_version: 1,
            event_type: "TenantCreated",
            schema_version: 1,
            data: &data,
            metadata: &metadata,
            recorded_at,
        },
    );
    let position: i64 = app
        .db
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "insert into events (event_id, stream_id, stream_version, event_type, schema_version,
                                 data, metadata, recorded_at, hash)
             values ($1, $2, 1, 'TenantCreated', 1, $3::text::json, $4::text::json, $5, $6)
             returning position",
            &[
                &event_id,
                &tenant,
                &data,
                &metadata,
                &recorded_at,
                &chained.to_vec(),
            ],
        )
        .await
        .unwrap()
        .get(0);
    (tenant, position)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_event_is_read_everywhere_in_the_current_shape() {
    let app = spawn_app().await;
    tokio::spawn(read::run_projectors(
        app.db.pool.clone(),
        std::future::pending(),
    ));
    let root = app
        .ok(&app.admin(), "CreateTenant", json!({"name": "evolving"}))
        .await;
    let (child, position) = store_v1_child(&app, &root).await;

    // Projected: the read model's depth comes from the upcast event's `depth`.
    let tenant = read_ok(
        &app,
        &app.admin(),
        &format!("/v1/tenants/{child}"),
        position,
    )
    .await;
    assert_eq!(tenant["depth"], json!(1), "{tenant}");
    assert_eq!(tenant["name"], json!("written by v1"));

    // History shows the current shape, and says which version it is in.
    let history = read_ok(
        &app,
        &app.admin(),
        &format!("/v1/streams/{child}/events"),
        position,
    )
    .await;
    let created = &history["items"][0];
    assert_eq!(created["schema_version"], json!(2), "{created}");
    assert_eq!(created["data"]["depth"], json!(1), "{created}");
    assert_eq!(created["data"]["path"], json!([root]), "{created}");

    // Temporal reads fold the stream from its (upcast) events.
    let then = read_ok(
        &app,
        &app.admin(),
        &format!("/v1/tenants/{child}?as_of_position={position}"),
        position,
    )
    .await;
    assert_eq!(then["name"], json!("written by v1"), "{then}");

    // A rebuild from the log reads it the same way.
    read::rebuild(&app.db.pool, ProjectionSet::all(), |_| {})
        .await
        .unwrap();
    let rebuilt = read_ok(
        &app,
        &app.admin(),
        &format!("/v1/tenants/{child}"),
        position,
    )
    .await;
    assert_eq!(rebuilt["depth"], json!(1), "{rebuilt}");

    // Kafka consumers receive it upcast, with the version of what they received.
    let prefix = unique("evolution");
    let relay = start_relay(&app.db.pool, &config(&app.db, &brokers(), &prefix));
    wait_caught_up(&app.db.pool).await;
    relay.stop().await;
    let received = read_all(&brokers(), &prefix).await;
    let message = received
        .iter()
        .find(|m| m.key == child)
        .expect("the v1 event was published");
    assert_eq!(message.header("plinth_schema_version"), "2");
    let value: Value = serde_json::from_str(&message.value).unwrap();
    assert_eq!(value["depth"], json!(1), "{value}");
    // Events stored in the current version are still sent byte for byte.
    let current = received.iter().find(|m| m.key == root).unwrap();
    assert_eq!(current.header("plinth_schema_version"), "2");
    assert!(current.value.contains("\"depth\":0"), "{}", current.value);
}
