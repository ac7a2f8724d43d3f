//! `/metrics` after a few commands: the series an operator graphs, with the values the test
//! caused (the binary is fresh, so its counters start at zero).

use std::time::Duration;

use serde_json::{json, Value};

use super::{sample, Plinth};
use crate::relay::{brokers, unique};
use crate::support::{test_db, ADMIN, HORIZON};

const SECRET: &str = "metrics-secret";

#[tokio::test]
async fn metrics_count_commands_requests_events_pool_and_lag_by_their_labels() {
    let _reading = HORIZON.read().await;
    let db = test_db().await;
    let prefix = unique("metrics");
    let server = Plinth::start(
        &db,
        SECRET,
        &[
            ("PLINTH_DB_POOL_SIZE", "7"),
            ("PLINTH_KAFKA_BROKERS", &brokers()),
            ("PLINTH_KAFKA_TOPIC_PREFIX", &prefix),
        ],
    )
    .await;
    let token = plinth_api::auth::mint_dev_token(SECRET, ADMIN, 3600).unwrap();
    let http = reqwest::Client::new();
    let command = |body: Value| {
        http.post(format!("{}/v1/commands", server.base))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let mut tenants = Vec::new();
    let mut first_position = 0;
    for n in 0..3 {
        let reply =
            command(json!({"type": "CreateTenant", "data": {"name": format!("Metered {n}")}}))
                .await
                .unwrap();
        assert_eq!(reply.status(), 201);
        let body: Value = reply.json().await.unwrap();
        tenants.push(body["stream_id"].as_str().unwrap().to_owned());
        if n == 0 {
            first_position = body["position"].as_i64().unwrap();
        }
    }
    for _ in 0..2 {
        let reply = command(json!({"type": "UpdateTenant",
                "data": {"tenant_id": "tnntten-AAAAAAAAAAAAAAAAAAAAA", "name": "X"}}))
        .await
        .unwrap();
        assert_eq!(reply.status(), 404);
    }
    let reply = command(json!({"type": "NoSuchCommand", "data": {}}))
        .await
        .unwrap();
    assert_eq!(reply.status(), 400);
    // The first tenant's own position: position 1 is the administrator's `UserCreated`, which
    // its first request recorded, and reaching that says nothing about the tenant.
    let read = http
        .get(format!(
            "{}/v1/tenants/{}?min_position={first_position}",
            server.base, tenants[0]
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);

    // Wait for the projectors and the relay to catch up; the lag gauges say when.
    let mut text = String::new();
    for _ in 0..200 {
        text = server.get("/metrics").await.1;
        let caught_up = ["tenants", "locations", "resource_providers", "resources"]
            .iter()
            .all(|p| {
                sample(&text, "plinth_projection_lag_events", &[("projection", p)]) == Some(0.0)
            })
            && sample(&text, "plinth_relay_lag_events", &[("relay", "kafka")]) == Some(0.0);
        if caught_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };

    // Commands: a latency histogram by type and outcome.
    let accepted = [("command", "CreateTenant"), ("outcome", "accepted")];
    assert_eq!(
        value("plinth_command_duration_seconds_count", &accepted),
        3.0
    );
    let mut bucket = accepted.to_vec();
    bucket.push(("le", "+Inf"));
    assert_eq!(
        value("plinth_command_duration_seconds_bucket", &bucket),
        3.0
    );
    assert!(value("plinth_command_duration_seconds_sum", &accepted) > 0.0);
    let rejected = [("command", "UpdateTenant"), ("outcome", "rejected")];
    assert_eq!(
        value("plinth_command_duration_seconds_count", &rejected),
        2.0
    );
    let unparsed = [("command", "unknown"), ("outcome", "rejected")];
    assert_eq!(
        value("plinth_command_duration_seconds_count", &unparsed),
        1.0
    );
    assert!(
        !text.contains("NoSuchCommand"),
        "client text became a label"
    );

    // HTTP requests by route template and status.
    let posts = |status| {
        value(
            "plinth_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/v1/commands"),
                ("status", status),
            ],
        )
    };
    assert_eq!(posts("201"), 3.0);
    assert_eq!(posts("404"), 2.0);
    assert_eq!(posts("400"), 1.0);
    assert_eq!(
        value(
            "plinth_http_requests_total",
            &[("route", "/v1/tenants/{id}"), ("status", "200")]
        ),
        1.0
    );
    assert!(!text.contains(&tenants[0]), "a raw path became a label");

    // The write side: events appended (the tenants and the recorded user), batch sizes: every
    // command that parsed went through a group commit, the refused ones too (the domain
    // decides there), in one to five batches.
    assert!(value("plinth_events_appended_total", &[]) >= 3.0);
    let batches = value("plinth_commit_batch_size_count", &[]);
    assert!((1.0..=5.0).contains(&batches), "{batches}");
    assert_eq!(value("plinth_commit_batch_size_sum", &[]), 5.0);
    let mut all = vec![("le", "+Inf")];
    assert_eq!(value("plinth_commit_batch_size_bucket", &all), batches);
    all[0].1 = "8";
    assert_eq!(value("plinth_commit_batch_size_bucket", &all), batches);
    // Each batch by how it read (ADR 0015): the creates of new root tenants read nothing and
    // go the cached way, the updates of an unknown tenant load it; nothing was held back.
    let by_path =
        |path: &str| sample(&text, "plinth_batches_total", &[("path", path)]).unwrap_or(0.0);
    assert_eq!(by_path("cached") + by_path("loaded"), batches, "{text}");
    assert!(
        by_path("cached") >= 1.0 && by_path("loaded") >= 1.0,
        "{text}"
    );
    assert_eq!(by_path("cached_retried"), 0.0, "{text}");

    // The pool, as configured; the read side and the relay, caught up.
    assert_eq!(value("plinth_db_pool_max_connections", &[]), 7.0);
    let in_use = value("plinth_db_pool_connections", &[("state", "in_use")]);
    let idle = value("plinth_db_pool_connections", &[("state", "idle")]);
    assert!(
        in_use + idle <= 7.0 && in_use + idle >= 1.0,
        "{in_use} + {idle}"
    );
    assert_eq!(value("plinth_db_pool_waiting", &[]), 0.0);
    for p in ["tenants", "locations", "resource_providers", "resources"] {
        assert_eq!(
            value("plinth_projection_lag_events", &[("projection", p)]),
            0.0,
            "{p}"
        );
        assert_eq!(
            value("plinth_projection_lag_seconds", &[("projection", p)]),
            0.0
        );
    }
    assert_eq!(value("plinth_relay_lag_events", &[("relay", "kafka")]), 0.0);
    assert!(value("plinth_projected_events_total", &[]) >= 3.0);
    server.stop().await;
}
