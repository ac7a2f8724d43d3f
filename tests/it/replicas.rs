//! Reads served by real PostgreSQL streaming replicas (`PLINTH_READ_DATABASE_URLS`, ADR 0026):
//! hot standbys of the test cluster made by `scripts/replica` (pg_basebackup, streaming
//! replication). A standby copies the whole cluster, so each test's own database is on it too.
//!
//! Standbys 1 and 2 are shared by every test here and never disturbed (`scripts/test` starts
//! them; else the first test does, once). Standby 3 is the one tests pause, kill and restart:
//! those tests take [`CHAOS`] in turn.
//!
//! Every read checks its answer against the write it follows (`?min_position=` of that write):
//! a stale answer, a 5xx or a hang (the client's timeout) fails the test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::OnceCell;

use crate::support::{spawn_app_on, test_db, TestApp, HORIZON, SECRET};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/replica");
/// The header naming the database that answered a read.
const READ_FROM: &str = "plinth-read-from";

/// Tests that pause, kill or restart standby 3 take turns.
static CHAOS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `scripts/replica <args>`, which must succeed; its stdout.
fn script(args: &[&str]) -> String {
    let out = std::process::Command::new(SCRIPT)
        .args(args)
        .output()
        .expect("scripts/replica runs");
    assert!(
        out.status.success(),
        "scripts/replica {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The server URL (no database) of standby `n`, started once per test run when not running.
async fn standby(n: usize) -> String {
    static URLS: [OnceCell<String>; 3] = [
        OnceCell::const_new(),
        OnceCell::const_new(),
        OnceCell::const_new(),
    ];
    URLS[n - 1]
        .get_or_init(|| async move {
            // `scripts/test` names the shared ones.
            if let Ok(urls) = std::env::var("PLINTH_TEST_REPLICA_URLS") {
                if let Some(url) = urls.split(',').nth(n - 1).filter(|_| n <= 2) {
                    return url.trim().to_owned();
                }
            }
            let n = n.to_string();
            tokio::task::spawn_blocking(move || {
                script(&["up", &n]);
                script(&["url", &n])
            })
            .await
            .unwrap()
        })
        .await
        .clone()
}

/// SQL on standby `n`'s `postgres` database (replay control: `pg_wal_replay_pause()`).
async fn on_standby(n: usize, sql: &str) {
    let url = format!("{}/postgres", standby(n).await);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
}

/// A running Plinth on a fresh database whose reads go to standbys `numbers` (in that order:
/// replica 1 of the app is the first), each in rotation before it returns.
async fn app_with_standbys(numbers: &[usize], max_lag_ms: u64, wait_ms: u64) -> TestApp {
    let db = test_db().await;
    let mut settings = plinth_api::settings::Settings::for_database(&db.url, SECRET, &["admin"]);
    for &n in numbers {
        settings
            .read_database_urls
            .push(format!("{}/{}", standby(n).await, db.name));
    }
    settings.read_replica_max_lag_ms = max_lag_ms;
    settings.read_replica_wait_ms = wait_ms;
    let app = spawn_app_on(db, settings).await;
    tokio::spawn(plinth_projections::read::run_projectors(
        app.db.pool.clone(),
        std::future::pending(),
    ));
    for i in 1..=numbers.len() {
        in_rotation(&app, i, true).await;
    }
    app
}

/// Waits (at most 60 s) until `/readyz` says the app's replica `i` is in (or out of) rotation.
async fn in_rotation(app: &TestApp, i: usize, wanted: bool) {
    let prefix = format!("replica {i} (");
    let mut last = String::new();
    for _ in 0..600 {
        let response = app
            .http
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap();
        last = response.text().await.unwrap();
        let line = last.lines().find(|l| l.starts_with(&prefix)).unwrap_or("");
        if line.contains(": in rotation") == wanted && !line.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("replica {i} never got in_rotation={wanted}: {last}");
}

/// A client that makes writes and reads them back, counting who answered.
#[derive(Clone)]
struct Client {
    base: String,
    http: reqwest::Client,
    token: String,
    served: Arc<[AtomicUsize; 4]>,
    /// 503s "not reached yet" retried (see [`Client::read`]).
    not_yet: Arc<AtomicUsize>,
}

impl Client {
    fn of(app: &TestApp) -> Self {
        Self {
            base: app.base.clone(),
            // No hang: a read that takes this long fails the test.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            token: plinth_api::auth::mint_dev_token(SECRET, "admin", 3600).unwrap(),
            served: Arc::default(),
            not_yet: Arc::default(),
        }
    }

    /// Reads served so far by the primary (0) and by each replica (1..).
    fn served(&self) -> [usize; 4] {
        std::array::from_fn(|i| self.served[i].load(Ordering::SeqCst))
    }

    /// A command that must succeed; its stream id and position.
    async fn command(&self, kind: &str, data: serde_json::Value) -> (String, i64) {
        let response = self
            .http
            .post(format!("{}/v1/commands", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"type": kind, "data": data}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, 201, "{kind}: {body}");
        (
            body["stream_id"].as_str().unwrap().to_owned(),
            body["position"].as_i64().unwrap(),
        )
    }

    /// `GET path`: must be 200; the body, and who answered (0 primary, n replica n).
    ///
    /// One 503 is allowed, and retried after its `Retry-After` as a client does: "the read
    /// models have not reached position N", the primary's own answer when its projectors are
    /// held back by another test's open transaction (the cluster-wide snapshot horizon, see
    /// `support::HORIZON`), whatever the replicas do. Any other 5xx fails the test.
    async fn read(&self, path: &str) -> (serde_json::Value, usize) {
        for _ in 0..30 {
            let response = self
                .http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let from = response
                .headers()
                .get(READ_FROM)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let not_yet = body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("have not reached position"));
            if status == 503 && not_yet {
                self.not_yet.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            assert_eq!(status, 200, "GET {path}: {body}");
            let who = match from.as_str() {
                "primary" => 0,
                other => other
                    .strip_prefix("replica-")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("GET {path}: {READ_FROM} is {other:?}")),
            };
            self.served[who].fetch_add(1, Ordering::SeqCst);
            return (body, who);
        }
        panic!("GET {path}: the read models never reached the position in 30 tries");
    }

    /// Creates a tenant, renames it `rounds` times, and after each write reads it back with
    /// `?min_position=` of that write: the answer must show that write (never an older name).
    async fn write_and_read_own(&self, label: &str, rounds: usize) {
        let (id, mut position) = self
            .command("CreateTenant", json!({"name": format!("{label} 0")}))
            .await;
        for round in 0..=rounds {
            let name = format!("{label} {round}");
            if round > 0 {
                position = self
                    .command("UpdateTenant", json!({"tenant_id": id, "name": name}))
                    .await
                    .1;
            }
            let (tenant, _) = self
                .read(&format!("/v1/tenants/{id}?min_position={position}"))
                .await;
            assert_eq!(
                tenant["name"],
                name.as_str(),
                "stale read of {id}: {tenant}"
            );
        }
    }
}

/// `clients` clients writing and reading their own writes, `rounds` each.
async fn load(client: &Client, clients: usize, rounds: usize, label: &str) {
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let client = client.clone();
            let label = format!("{label} {c}");
            tokio::spawn(async move { client.write_and_read_own(&label, rounds).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

async fn reads_under_load_are_fresh_and_spread_over(standbys: &[usize]) {
    let _horizon = HORIZON.read().await;
    let app = app_with_standbys(standbys, 5_000, 1_000).await;
    let client = Client::of(&app);
    load(&client, 8, 15, "load").await;
    let served = client.served();
    for i in 1..=standbys.len() {
        assert!(served[i] > 0, "replica {i} served no read: {served:?}");
    }
    // Reads without a position go to replicas too.
    let (roots, from) = client.read("/v1/tenants").await;
    assert!(from >= 1, "a plain read went to the primary: {roots}");
    // The audit log's gap-safe rule (`log_horizon`) runs on a standby too.
    let (audit, from) = client.read("/v1/audit?limit=5").await;
    assert!(from >= 1, "the audit log was read on the primary: {audit}");
    assert!(audit["items"].is_array(), "{audit}");
    // Each replica's state, lag and reads are in the metrics (the registry is the test
    // process's, shared by every app in it: only their presence is this app's to check).
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for i in 1..=standbys.len() {
        for series in [
            format!("plinth_read_replica_in_rotation{{replica=\"{i}\"}}"),
            format!("plinth_read_replica_lag_seconds{{replica=\"{i}\"}}"),
            format!("plinth_read_database_total{{database=\"replica-{i}\"}}"),
        ] {
            assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
        }
    }
}

#[tokio::test]
async fn reads_under_load_through_one_replica_see_their_own_writes() {
    reads_under_load_are_fresh_and_spread_over(&[1]).await;
}

#[tokio::test]
async fn reads_under_load_through_two_replicas_see_their_own_writes_and_use_both() {
    reads_under_load_are_fresh_and_spread_over(&[1, 2]).await;
}

/// Resumes replay on standby 3 however the test ends.
struct ResumeReplay;

impl Drop for ResumeReplay {
    fn drop(&mut self) {
        if let Some(url) = standby_url_now(3) {
            let _ = std::process::Command::new("psql")
                .args([
                    &format!("{url}/postgres"),
                    "-Xqc",
                    "select pg_wal_replay_resume()",
                ])
                .stdout(std::process::Stdio::null())
                .status();
        }
    }
}

fn standby_url_now(n: usize) -> Option<String> {
    let out = std::process::Command::new(SCRIPT)
        .args(["url", &n.to_string()])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[tokio::test]
async fn a_replica_whose_replay_is_paused_never_answers_stale_and_leaves_rotation() {
    let _chaos = CHAOS.lock().await;
    let _horizon = HORIZON.read().await;
    let app = app_with_standbys(&[3], 1_000, 500).await;
    let client = Client::of(&app);
    // Served by the replica while it replays (under load a read may still find it behind).
    for round in 0..20 {
        if client.served()[1] > 0 {
            break;
        }
        client
            .write_and_read_own(&format!("before pause {round}"), 2)
            .await;
    }
    assert!(client.served()[1] > 0, "{:?}", client.served());

    on_standby(3, "select pg_wal_replay_pause()").await;
    let _resume = ResumeReplay;
    // The replica cannot cover any new write: each read waits its 500 ms there, then the
    // primary answers, with the write.
    let before = client.served();
    load(&client, 4, 5, "paused").await;
    let after = client.served();
    assert_eq!(
        after[1], before[1],
        "the paused replica answered a read of a newer write"
    );
    assert!(after[0] > before[0]);
    // Past the 1 s bound it leaves rotation: every read goes straight to the primary.
    in_rotation(&app, 1, false).await;
    let (id, position) = client
        .command("CreateTenant", json!({"name": "while paused"}))
        .await;
    let (tenant, from) = client
        .read(&format!("/v1/tenants/{id}?min_position={position}"))
        .await;
    assert_eq!((from, tenant["name"].as_str()), (0, Some("while paused")));
    let (_, from) = client.read("/v1/tenants").await;
    assert_eq!(from, 0, "out of rotation, it serves no plain read either");

    on_standby(3, "select pg_wal_replay_resume()").await;
    in_rotation(&app, 1, true).await;
    let before = client.served();
    client.write_and_read_own("resumed", 5).await;
    assert!(
        client.served()[1] > before[1],
        "back in rotation, it serves reads again"
    );
}

#[tokio::test]
async fn a_replica_killed_under_load_costs_no_5xx_and_serves_again_once_restarted() {
    let _chaos = CHAOS.lock().await;
    let _horizon = HORIZON.read().await;
    let app = app_with_standbys(&[3, 1], 5_000, 1_000).await;
    let client = Client::of(&app);
    let running = {
        let client = client.clone();
        tokio::spawn(async move { load(&client, 6, 40, "killed").await })
    };
    // Plain reads back to back besides: some are on the replica when it dies.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..6)
        .map(|_| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    client.read("/v1/tenants?limit=50").await;
                }
            })
        })
        .collect();
    // Kill it once it has served some of this load.
    for _ in 0..3000 {
        if client.served()[1] >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed_at = client.served();
    assert!(killed_at[1] > 0, "{killed_at:?}");
    tokio::task::spawn_blocking(|| script(&["kill", "3"]))
        .await
        .unwrap();
    in_rotation(&app, 1, false).await;
    running.await.unwrap();
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.await.unwrap();
    }
    let during = client.served();
    assert!(
        during[0] + during[2] > killed_at[0] + killed_at[2],
        "the others answered meanwhile: {during:?}"
    );

    tokio::task::spawn_blocking(|| script(&["up", "3"]))
        .await
        .unwrap();
    in_rotation(&app, 1, true).await;
    load(&client, 4, 10, "restarted").await;
    assert!(
        client.served()[1] > during[1],
        "the restarted replica serves reads again: {:?}",
        client.served()
    );
}
