//! `plinth audit export` through the real binary, its stdout piped: every format parses to
//! exactly the events `GET /v1/audit` returns for the same filter, in log order, and every
//! filter selects what it says.

use serde_json::{json, Value};

use crate::support::{plinth_binary, spawn_app, TestApp};

/// Two roots `a` (with `a1` below it) and `b` (with `b1`), `a` and `b` created in one
/// correlated request; alice, an admin of `b`, updates `b` and creates `b1`.
struct World {
    app: TestApp,
    a: String,
    a1: String,
    b: String,
    b1: String,
    alice: String,
    correlation: String,
}

async fn world() -> World {
    let app = spawn_app().await;
    tokio::spawn(plinth_projections::read::run_projectors(
        app.db.pool.clone(),
        std::future::pending(),
    ));
    let admin = app.admin();
    let correlation = uuid::Uuid::now_v7().to_string();
    let correlated = |name: &str| {
        let body = json!({"type": "CreateTenant", "data": {"name": name}}).to_string();
        let (app, admin, correlation) = (&app, &admin, &correlation);
        async move {
            let reply = app
                .post_raw(admin, body, &[("x-correlation-id", correlation)])
                .await;
            assert_eq!(reply.status, 201, "{reply:?}");
            reply.body["stream_id"].as_str().unwrap().to_owned()
        }
    };
    let a = correlated("a").await;
    let a1 = app
        .ok(
            &admin,
            "CreateTenant",
            json!({"name": "a1", "parent_id": a}),
        )
        .await;
    let b = correlated("b").await;
    let alice = app.user("alice").await;
    app.ok(
        &admin,
        "GrantTenantAccess",
        json!({"tenant_id": b, "user_id": alice, "role": "admin"}),
    )
    .await;
    let as_alice = app.token("alice");
    app.ok(
        &as_alice,
        "UpdateTenant",
        json!({"tenant_id": b, "description": "by alice"}),
    )
    .await;
    let last = app
        .command(
            &as_alice,
            "CreateTenant",
            json!({"name": "b1", "parent_id": b}),
        )
        .await;
    assert_eq!(last.status, 201, "{last:?}");
    let b1 = last.body["stream_id"].as_str().unwrap().to_owned();
    // The tenant filter reads the read models: wait until they hold the last event.
    let position = last.body["position"].as_i64().unwrap();
    let reply = app
        .get(&admin, &format!("/v1/tenants?min_position={position}"))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    World {
        app,
        a,
        a1,
        b,
        b1,
        alice,
        correlation,
    }
}

/// Runs `plinth audit export <args> --format <format>` with stdout and stderr piped (not
/// terminals) and verbose logging; returns stdout, after checking it succeeded and that
/// stderr holds no progress bar.
fn export(world: &World, args: &[&str], format: &str) -> String {
    let out = std::process::Command::new(plinth_binary())
        .args(["audit", "export", "--format", format])
        .args(args)
        .env("DATABASE_URL", &world.app.db.url)
        .env("RUST_LOG", "debug")
        .output()
        .expect("plinth runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    assert!(
        !stderr.contains("events ("),
        "a progress bar on a pipe: {stderr}"
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Every line of a JSON-lines export, parsed (any other line fails the test).
fn jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect()
}

fn field(items: &[Value], name: &str) -> Vec<String> {
    items
        .iter()
        .map(|i| i[name].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The audit API's items for `query`, all pages.
async fn api_items(world: &World, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after = String::new();
    loop {
        let reply = world
            .app
            .get(
                &world.app.admin(),
                &format!("/v1/audit?limit=2&{query}{after}"),
            )
            .await;
        assert_eq!(reply.status, 200, "{query}: {reply:?}");
        items.extend(reply.body["items"].as_array().unwrap().iter().cloned());
        match reply.body["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return items,
        }
    }
}

#[tokio::test]
async fn every_format_piped_is_exactly_the_audit_log_in_log_order() {
    let world = world().await;
    let all = api_items(&world, "").await;
    let ids = field(&all, "event_id");
    assert!(ids.len() >= 7, "{all:?}");
    let positions: Vec<i64> = all
        .iter()
        .map(|i| i["position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    let lines = jsonl(&export(&world, &[], "jsonl"));
    assert_eq!(lines, all, "jsonl items are the API's items");

    let csv_text = export(&world, &[], "csv");
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(header.get(0), Some("position"));
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let csv_ids: Vec<&str> = records.iter().map(|r| &r[column("event_id")]).collect();
    assert_eq!(csv_ids, ids);
    // `data` is JSON with commas and quotes: quoting must keep it one field.
    for (record, item) in records.iter().zip(&all) {
        let data: Value = serde_json::from_str(&record[column("data")]).unwrap();
        assert_eq!(data, item["data"]);
        assert_eq!(
            &record[column("actor")],
            item["actor"].as_str().unwrap_or_default()
        );
    }

    let table = export(&world, &[], "table");
    let rows: Vec<&str> = table.lines().collect();
    assert!(
        rows[0].contains("event_id") && rows[0].contains("stream_id"),
        "{table}"
    );
    assert_eq!(rows.len(), ids.len() + 1, "{table}");
    for (row, id) in rows[1..].iter().zip(&ids) {
        assert!(row.contains(id.as_str()), "{row} should show {id}");
    }
}

/// What a filter's items must satisfy.
type Expected<'a> = dyn Fn(&[Value]) -> bool + 'a;

#[tokio::test]
async fn every_filter_selects_what_the_audit_api_selects() {
    let world = world().await;
    let all = jsonl(&export(&world, &[], "jsonl"));
    let update = all
        .iter()
        .find(|i| i["event_type"] == "TenantUpdated")
        .unwrap();
    let after_update = all
        .iter()
        .find(|i| i["position"].as_i64() > update["position"].as_i64())
        .unwrap();
    let since = update["recorded_at"].as_str().unwrap().to_owned();
    let until = after_update["recorded_at"].as_str().unwrap().to_owned();
    let a_subtree = vec![world.a.clone(), world.a1.clone()];
    let b_subtree = |items: &[Value]| {
        field(items, "stream_id")
            .iter()
            .all(|s| *s == world.b || *s == world.b1)
    };
    let cases: Vec<(Vec<&str>, String, Box<Expected>)> = vec![
        (
            vec!["--tenant", &world.a],
            format!("tenant_id={}", world.a),
            Box::new(|items| field(items, "stream_id") == a_subtree),
        ),
        (
            vec!["--tenant", &world.b],
            format!("tenant_id={}", world.b),
            Box::new(|items| items.len() == 4 && b_subtree(items)),
        ),
        (
            vec!["--actor", &world.alice],
            format!("actor={}", world.alice),
            Box::new(|items| {
                field(items, "actor").iter().all(|a| *a == world.alice)
                    && field(items, "stream_id").ends_with(&[world.b.clone(), world.b1.clone()])
            }),
        ),
        (
            vec!["--event-type", "TenantUpdated"],
            "event_type=TenantUpdated".into(),
            Box::new(|items| field(items, "event_type") == ["TenantUpdated"]),
        ),
        (
            vec!["--stream", &world.b],
            format!("stream_id={}", world.b),
            Box::new(|items| {
                field(items, "event_type")
                    == ["TenantCreated", "TenantAccessGranted", "TenantUpdated"]
            }),
        ),
        (
            vec!["--correlation", &world.correlation],
            format!("correlation_id={}", world.correlation),
            Box::new(|items| field(items, "stream_id") == [world.a.clone(), world.b.clone()]),
        ),
        (
            vec!["--since", &since, "--until", &until],
            format!("since={since}&until={until}").replace('+', "%2B"),
            Box::new(|items| field(items, "event_type") == ["TenantUpdated"]),
        ),
    ];
    for (args, query, expected) in cases {
        let exported = jsonl(&export(&world, &args, "jsonl"));
        assert!(expected(&exported), "{args:?}: {exported:#?}");
        assert_eq!(exported, api_items(&world, &query).await, "{args:?}");
    }
}

#[tokio::test]
async fn an_unknown_tenant_or_a_bad_filter_fails_with_nothing_on_stdout() {
    let world = world().await;
    let missing = plinth_domain::TenantId::generate().to_string();
    for args in [
        vec!["--tenant", missing.as_str()],
        vec!["--event-type", "NoSuchEvent"],
        vec!["--correlation", "not-a-uuid"],
    ] {
        let out = std::process::Command::new(plinth_binary())
            .args(["audit", "export", "--format", "csv"])
            .args(&args)
            .env("DATABASE_URL", &world.app.db.url)
            .output()
            .expect("plinth runs");
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// With stderr a terminal (a pseudo-terminal from `script`), the progress counter is drawn
/// there and stdout, redirected to a file, still holds nothing but the JSON lines. Skipped
/// where util-linux's `script` is missing.
#[tokio::test]
async fn on_a_terminal_progress_goes_to_stderr_and_stdout_stays_data() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no `script` to give the export a terminal");
        return;
    }
    let world = world().await;
    let dir = std::env::temp_dir().join(format!("plinth-export-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("audit.jsonl");
    let command = format!(
        "{} audit export --format jsonl > {}",
        plinth_binary().display(),
        data.display()
    );
    let terminal = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("DATABASE_URL", &world.app.db.url)
        .output()
        .expect("script runs");
    let transcript = String::from_utf8_lossy(&terminal.stdout);
    assert!(terminal.status.success(), "{transcript}");
    assert!(
        transcript.contains("events ("),
        "no progress on the terminal: {transcript:?}"
    );
    let lines = jsonl(&std::fs::read_to_string(&data).unwrap());
    assert_eq!(lines, api_items(&world, "").await);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A reader that stops early (`plinth audit export … | head`) ends the export quietly: a
/// broken pipe is success, not an error. The log is larger than a pipe's buffer, so the export
/// is still writing when the reader goes.
#[tokio::test]
async fn a_reader_that_stops_early_ends_the_export_without_an_error() {
    // Writing and projecting the synthetic log takes transactions that hold the cluster's
    // snapshot horizon back: no test that bounds a read's latency may run meanwhile.
    let _horizon = crate::support::HORIZON.write().await;
    let db = crate::support::test_db().await;
    crate::support::synthetic_platform(&db, 5_000, 100, 10).await;
    let mut export = std::process::Command::new(plinth_binary())
        .args(["audit", "export", "--format", "jsonl"])
        .env("DATABASE_URL", &db.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("plinth runs");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(export.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    jsonl(&first);
    // The reader (and the pipe's only read end) is gone.
    let out = export.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
