//! `/healthz` and `/readyz`: alive whatever happens, ready only when the database answers, the
//! migrations are applied and the projections are close enough to the log; each failing
//! reason is named in the 503.

use std::time::Duration;

use plinth_test_support::{test_server_url, write_platform_log, PlatformShape};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;

use super::{sample, Plinth};
use crate::support::{committed_events, test_db, HORIZON};

const SECRET: &str = "health-secret";

fn problem(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn readiness_waits_for_the_projections_to_come_within_the_allowed_lag() {
    let db = test_db().await;
    {
        // Its transaction holds the cluster's snapshot horizon back while it writes.
        let _writing = HORIZON.write().await;
        write_platform_log(
            &db.pool,
            &PlatformShape {
                events: 3_000,
                tenants: 100,
                resource_providers: 5,
            },
            &mut StdRng::seed_from_u64(13),
        )
        .await
        .expect("a backlog");
    }
    let backlog = committed_events(&db.pool).await;
    assert!(backlog >= 3_000);

    // A replica without projectors over a log nobody has projected: alive, not ready.
    let api_only = Plinth::spawn(
        &db.url,
        SECRET,
        &[("PLINTH_READY_MAX_LAG_EVENTS", "100")],
        &["--without-projectors"],
    );
    api_only.wait_for("/healthz").await;
    let (status, body) = api_only.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let detail = problem(&body)["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains(&format!(
            "projection `tenants` is {backlog} events behind the log (PLINTH_READY_MAX_LAG_EVENTS=100)"
        )),
        "{detail}"
    );
    assert!(!detail.contains("migrations"), "{detail}");
    // The same lag, as gauges.
    let metrics = api_only.get("/metrics").await.1;
    assert_eq!(
        sample(
            &metrics,
            "plinth_projection_lag_events",
            &[("projection", "resources")]
        ),
        Some(backlog as f64)
    );
    assert!(
        sample(
            &metrics,
            "plinth_projection_lag_seconds",
            &[("projection", "resources")]
        )
        .unwrap()
            > 0.0
    );

    // A replica with the projectors catches up; then both are ready.
    let _reading = HORIZON.read().await;
    let projecting = Plinth::spawn(
        &db.url,
        SECRET,
        &[("PLINTH_READY_MAX_LAG_EVENTS", "100")],
        &[],
    );
    projecting.wait_for("/readyz").await;
    let (status, body) = api_only.get("/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready"));
    projecting.stop().await;
    api_only.stop().await;
}

#[tokio::test]
async fn readiness_fails_while_a_migration_is_not_applied_and_names_it() {
    let db = test_db().await;
    let server = Plinth::start(&db, SECRET, &[]).await;
    // As a restore of a backup older than the binary would leave it.
    let client = db.pool.get().await.unwrap();
    let row = client
        .query_one(
            "delete from refinery_schema_history
             where version = (select max(version) from refinery_schema_history)
             returning version, name, applied_on, checksum",
            &[],
        )
        .await
        .unwrap();
    let latest: i32 = row.get(0);
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let detail = problem(&body)["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains(&format!("migrations not applied: V{latest}__")),
        "{detail}"
    );
    assert!(detail.contains("plinth migrate"), "{detail}");
    // Alive all the same: a restart would not help, and must not be forced.
    assert_eq!(server.get("/healthz").await, (200, "ok".to_owned()));

    // Recorded again: ready again.
    client
        .execute(
            "insert into refinery_schema_history (version, name, applied_on, checksum)
             values ($1, $2, $3, $4)",
            &[
                &latest,
                &row.get::<_, String>(1),
                &row.get::<_, String>(2),
                &row.get::<_, String>(3),
            ],
        )
        .await
        .unwrap();
    assert_eq!(server.get("/readyz").await, (200, "ready".to_owned()));
    server.stop().await;
}

#[tokio::test]
async fn readiness_fails_while_postgresql_is_unreachable() {
    let db = test_db().await;
    let server = Plinth::start(&db, SECRET, &[]).await;
    // Its database closed: connections are refused from now on, and the open ones ended
    // (from another database: one cannot close the database one is connected to).
    let (admin, connection) = tokio_postgres::connect(&test_server_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let close = format!(
        "alter database \"{name}\" allow_connections false;
         select pg_terminate_backend(pid) from pg_stat_activity where datname = '{name}';",
        name = db.name
    );
    admin.batch_execute(&close).await.unwrap();
    let mut last = (0, String::new());
    for _ in 0..100 {
        last = server.get("/readyz").await;
        if last.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last.0, 503, "{}", last.1);
    assert!(
        problem(&last.1)["detail"]
            .as_str()
            .unwrap()
            .contains("PostgreSQL is not reachable"),
        "{}",
        last.1
    );
    assert_eq!(server.get("/healthz").await, (200, "ok".to_owned()));
    admin
        .batch_execute(&format!(
            "alter database \"{}\" allow_connections true",
            db.name
        ))
        .await
        .unwrap();
    server.stop().await;
}
