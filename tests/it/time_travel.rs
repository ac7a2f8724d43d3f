//! `plinth replay --until-position N | --until-time T --into SCHEMA` through the real binary:
//! every read model as it stood at that point, in a schema of its own, the live ones untouched.

use serde_json::json;

use crate::support::{run_plinth, spawn_app, TestApp};

/// A command that must succeed: (stream id, position).
async fn run(app: &TestApp, command_type: &str, data: serde_json::Value) -> (String, i64) {
    let reply = app.command(&app.admin(), command_type, data).await;
    assert_eq!(reply.status, 201, "{command_type}: {reply:?}");
    (
        reply.body["stream_id"].as_str().unwrap().to_owned(),
        reply.body["position"].as_i64().unwrap(),
    )
}

/// Runs `plinth replay` with `args` on the app's database; returns (success, stdout + stderr).
fn replay(app: &TestApp, args: &[&str]) -> (bool, String) {
    let mut all = vec!["replay", "--database-url", &app.db.url];
    all.extend_from_slice(args);
    run_plinth(&all)
}

/// One column of one row of `sql`, as text (`None` when there is no row).
async fn text(app: &TestApp, sql: &str) -> Option<String> {
    let client = app.db.pool.get().await.unwrap();
    client
        .query_opt(sql, &[])
        .await
        .unwrap()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
}

#[tokio::test]
async fn replay_until_a_position_rebuilds_the_past_into_its_own_schema() {
    let app = spawn_app().await;
    let (root, _) = run(&app, "CreateTenant", json!({"name": "root"})).await;
    let (alpha, _) = run(
        &app,
        "CreateTenant",
        json!({"name": "alpha", "parent_id": root}),
    )
    .await;
    let (location, _) = run(
        &app,
        "CreateLocation",
        json!({"tenant_id": root, "name": "ny"}),
    )
    .await;
    let (_, cut) = run(
        &app,
        "MakeLocationAvailable",
        json!({"location_id": location, "tenant_id": alpha, "include_subtenants": false}),
    )
    .await;
    // After the cut: a rename, a new tenant, the availability revoked.
    run(
        &app,
        "UpdateTenant",
        json!({"tenant_id": alpha, "name": "alpha 2"}),
    )
    .await;
    let (beta, _) = run(
        &app,
        "CreateTenant",
        json!({"name": "beta", "parent_id": root}),
    )
    .await;
    run(
        &app,
        "RevokeLocationAvailability",
        json!({"location_id": location, "tenant_id": alpha}),
    )
    .await;
    // Replays read the log's gap-safe tail, which another test's open transaction can hold
    // back: first wait until it shows every event above (a CI run failed here once).
    crate::support::all_events(&app.db.pool).await;
    // The live read models, for comparison afterwards.
    let (ok, output) = replay(&app, &["--all"]);
    assert!(ok, "{output}");

    let schema = format!("asof_{}", rand::random::<u32>());
    let (ok, output) = replay(
        &app,
        &["--until-position", &cut.to_string(), "--into", &schema],
    );
    assert!(ok, "{output}");
    let name_of = |s: &str, id: &str| format!("select name from {s}.tenants where id = '{id}'");
    assert_eq!(
        text(&app, &name_of(&schema, &alpha)).await.as_deref(),
        Some("alpha")
    );
    assert_eq!(
        text(&app, &name_of(&schema, &beta)).await,
        None,
        "created after the cut"
    );
    let available = format!(
        "select tenant_id from {schema}.location_availability where location_id = '{location}'"
    );
    assert_eq!(
        text(&app, &available).await.as_deref(),
        Some(alpha.as_str())
    );
    let as_of = format!("select position::text from {schema}.as_of");
    assert_eq!(text(&app, &as_of).await, Some(cut.to_string()));

    // The live read models are untouched.
    assert_eq!(
        text(&app, &name_of("read", &alpha)).await.as_deref(),
        Some("alpha 2")
    );
    assert!(text(&app, &name_of("read", &beta)).await.is_some());
    let live_available = available.replace(&format!("{schema}."), "read.");
    assert_eq!(text(&app, &live_available).await, None);

    // The same point named by its time.
    let at = text(
        &app,
        &format!("select to_char(recorded_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') from events where position = {cut}"),
    )
    .await
    .unwrap();
    let by_time = format!("{schema}_t");
    let (ok, output) = replay(&app, &["--until-time", &at, "--into", &by_time]);
    assert!(ok, "{output}");
    assert_eq!(
        text(&app, &name_of(&by_time, &alpha)).await.as_deref(),
        Some("alpha")
    );
    assert_eq!(text(&app, &name_of(&by_time, &beta)).await, None);
}

#[tokio::test]
async fn replay_into_an_existing_or_own_schema_is_refused() {
    let app = spawn_app().await;
    let (_, position) = run(&app, "CreateTenant", json!({"name": "root"})).await;
    let position = position.to_string();
    for schema in ["read", "public", "Bad-Name"] {
        let (ok, output) = replay(&app, &["--until-position", &position, "--into", schema]);
        assert!(!ok, "--into {schema} was accepted: {output}");
    }
    let schema = format!("asof_{}", rand::random::<u32>());
    let (ok, output) = replay(&app, &["--until-position", &position, "--into", &schema]);
    assert!(ok, "{output}");
    let (ok, output) = replay(&app, &["--until-position", &position, "--into", &schema]);
    assert!(!ok && output.contains("exists already"), "{output}");
    let (ok, output) = replay(
        &app,
        &["--until-position", "999999", "--into", "asof_beyond"],
    );
    assert!(!ok && output.contains("not in the log"), "{output}");
}
