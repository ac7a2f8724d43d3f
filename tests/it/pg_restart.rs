//! PostgreSQL restarted under load, against the real `plinth serve` (projectors and Kafka relay
//! included) on a private cluster the test starts, so that no other test loses its server.
//!
//! The cluster is stopped in each of `pg_ctl`'s modes, one test each: `immediate` (its
//! processes are killed: a crash, with WAL recovery at the next start), `fast` (every session
//! is sent `FATAL 57P01`: what an ordinary restart does) and `smart` (new connections refused
//! with `57P03`, then escalated to fast); kept down for two seconds, and started again. Meanwhile
//! clients keep sending commands and reads. What must hold: every answer is a 2xx or a 503 with
//! `Retry-After` (never a 500, never a hang past the request timeout); the server recovers by
//! itself (pool, LISTEN, projector and relay leadership) and `/readyz` says so; what was
//! acknowledged is in the log exactly once, and retrying a 503 with its `Idempotency-Key`
//! never doubles it; the read models equal a rebuild and Kafka has every event.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command as Std;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::crash::{assert_read_models_equal_a_rebuild, create_tenants, free_port, Server};
use crate::relay::{brokers, read_all, unique, verify, wait_caught_up};
use crate::support::{all_events, test_db_on, ADMIN, HORIZON, SECRET};

/// A PostgreSQL cluster of the test's own: `initdb` into a temporary directory, served on a
/// free port. Runs as the `postgres` user when the test runs as root (`initdb` refuses root).
struct PrivateCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl PrivateCluster {
    fn start() -> Self {
        let bin = postgres_bin_dir();
        let dir = std::env::temp_dir().join(format!("plinth-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            run(Std::new("chown").args(["postgres:postgres", dir.to_str().unwrap()]));
        }
        let cluster = Self {
            bin,
            dir,
            port: free_port(),
        };
        let data = cluster.data();
        run(cluster.as_owner("initdb").args([
            "-D",
            &data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        ]));
        cluster.pg_ctl_start();
        cluster
    }

    fn data(&self) -> String {
        self.dir.join("data").to_str().unwrap().to_owned()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A PostgreSQL program, run as the cluster's owner.
    fn as_owner(&self, program: &str) -> Std {
        let program = self.bin.join(program);
        if is_root() {
            let mut command = Std::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Std::new(program)
        }
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").to_str().unwrap().to_owned();
        run(self.as_owner("pg_ctl").args([
            "-D",
            &self.data(),
            "-l",
            &log,
            "-o",
            &options,
            "-w",
            "start",
        ]));
    }

    /// Stops the cluster the way `mode` says, and returns once it is down.
    fn stop(&self, mode: Stop) {
        let data = self.data();
        let stop = |mode: &str, wait: &str| {
            run(self
                .as_owner("pg_ctl")
                .args(["-D", &data, "-m", mode, wait, "stop"]))
        };
        match mode {
            // Kills the processes (no shutdown checkpoint: the next start recovers from WAL).
            Stop::Immediate => stop("immediate", "-w"),
            // Terminates every session (`FATAL 57P01`), checkpoints, exits: what `pg_ctl
            // restart`, `pg_ctlcluster restart` and systemd do.
            Stop::Fast => stop("fast", "-w"),
            // Refuses new connections (`FATAL 57P03`) while sessions go on; it would wait for
            // Plinth's pooled connections forever, so after a while the operator escalates to
            // fast, as `pg_ctlcluster --force` does.
            Stop::Smart => {
                stop("smart", "-W");
                std::thread::sleep(Duration::from_millis(1500));
                stop("fast", "-w");
            }
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self
            .as_owner("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How the cluster is stopped (`pg_ctl stop -m <mode>`).
#[derive(Debug, Clone, Copy)]
enum Stop {
    Smart,
    Fast,
    Immediate,
}

fn is_root() -> bool {
    Std::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// The newest installed PostgreSQL's programs (`PLINTH_PG_BINDIR` overrides).
fn postgres_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PLINTH_PG_BINDIR") {
        return dir.into();
    }
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/postgres-up installs it)")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    let newest = versions.last().expect("a PostgreSQL version is installed");
    Path::new("/usr/lib/postgresql")
        .join(newest.to_string())
        .join("bin")
}

fn run(command: &mut Std) {
    let output = command.output().expect("runs");
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What one request got: its status and `Retry-After`, or `None` when no answer came within
/// the client's timeout (a hang: the server's own request timeout is shorter).
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Option<Answer> {
    let response = request.timeout(Duration::from_secs(15)).send().await.ok()?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    Some(Answer {
        status,
        retry_after,
        body,
    })
}

/// A command a client sent and what came back.
#[derive(Debug, Clone)]
struct Sent {
    key: Option<String>,
    body: Value,
    mark: String,
    answer: Option<Answer>,
}

/// Each answer is a 2xx or a 503 carrying `Retry-After`; `what` names the request.
fn assert_acceptable(answer: &Option<Answer>, ok: u16, what: &str) {
    let Some(answer) = answer else {
        panic!("{what}: no answer within 15 s (the server's request timeout is 5 s)");
    };
    match answer.status {
        s if s == ok => {}
        503 => assert!(
            answer.retry_after.is_some(),
            "{what}: 503 without Retry-After: {}",
            answer.body
        ),
        s => panic!("{what}: {s} {}", answer.body),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_crash_under_load_gives_503s_then_recovers_alone_losing_nothing() {
    restart_under_load(Stop::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_fast_shutdown_under_load_gives_503s_then_recovers_alone_losing_nothing() {
    restart_under_load(Stop::Fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_smart_shutdown_under_load_gives_503s_then_recovers_alone_losing_nothing() {
    restart_under_load(Stop::Smart).await;
}

async fn restart_under_load(mode: Stop) {
    // The load would slow tests that bound a read's latency; run apart from them.
    let _horizon = HORIZON.write().await;
    let cluster = PrivateCluster::start();
    let db = test_db_on(&cluster.url()).await;
    let prefix = unique("pgrestart");
    let server = Server::start_with(
        &db,
        free_port(),
        &prefix,
        &[("PLINTH_REQUEST_TIMEOUT_SECS", "5")],
    )
    .await;
    let token = plinth_api::auth::mint_dev_token(SECRET, ADMIN, 3600).unwrap();
    let tenants = create_tenants(&server.base, &token, 8).await;
    // The readers below expect their tenants in the read model: wait until the last is there.
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let last_tenant = format!("{}/v1/tenants/{}", server.base, tenants[7]);
    while send(http.get(&last_tenant).bearer_auth(&token))
        .await
        .map(|a| a.status)
        != Some(200)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the tenants were never projected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..12)
        .map(|c| {
            let (base, token, tenants, stop) = (
                server.base.clone(),
                token.clone(),
                tenants.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut sent = Vec::new();
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let tenant = &tenants[(c + n) % tenants.len()];
                    let mark = format!("c{c}-n{n}");
                    let body = json!({"type": "SetAnnotation",
                                      "data": {"resource_id": tenant, "key": "example.com/mark",
                                               "value": mark}});
                    let key = (n % 2 == 0).then(|| uuid::Uuid::now_v7().to_string());
                    let mut request = http
                        .post(format!("{base}/v1/commands"))
                        .bearer_auth(&token)
                        .json(&body);
                    if let Some(key) = &key {
                        request = request.header("idempotency-key", key);
                    }
                    let answer = send(request).await;
                    let backoff = answer.as_ref().is_some_and(|a| a.status == 503);
                    sent.push(Sent {
                        key,
                        body,
                        mark,
                        answer,
                    });
                    n += 1;
                    if backoff {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                sent
            })
        })
        .collect();
    let readers: Vec<_> = (0..4)
        .map(|c| {
            let (base, token, tenants, stop) = (
                server.base.clone(),
                token.clone(),
                tenants.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut answers = Vec::new();
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let tenant = &tenants[(c + n) % tenants.len()];
                    let request = http
                        .get(format!("{base}/v1/tenants/{tenant}"))
                        .bearer_auth(&token);
                    answers.push(send(request).await);
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                answers
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopping = tokio::task::spawn_blocking(move || {
        cluster.stop(mode);
        cluster
    });
    let cluster = stopping.await.unwrap();
    // While it is down: the server says it is not ready, and stays up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ready = send(http.get(format!("{}/readyz", server.base))).await;
    assert_eq!(
        ready.map(|a| a.status),
        Some(503),
        "/readyz while PostgreSQL is down"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.pg_ctl_start();
    let restarted = tokio::time::Instant::now();

    // It recovers alone: ready again, and a new command goes through, within 30 s.
    let deadline = restarted + Duration::from_secs(30);
    loop {
        let ready = send(http.get(format!("{}/readyz", server.base))).await;
        if ready.is_some_and(|a| a.status == 200) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never recovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered_in = restarted.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent: Vec<Sent> = Vec::new();
    for w in writers {
        sent.extend(w.await.unwrap());
    }
    let mut reads = Vec::new();
    for r in readers {
        reads.extend(r.await.unwrap());
    }

    for s in &sent {
        assert_acceptable(&s.answer, 201, &s.body.to_string());
    }
    for r in &reads {
        assert_acceptable(r, 200, "GET /v1/tenants/{id}");
    }
    let unavailable = sent
        .iter()
        .filter(|s| s.answer.as_ref().is_some_and(|a| a.status == 503))
        .count();
    let acknowledged = sent.len() - unavailable;
    assert!(
        unavailable > 0,
        "no command met the outage: the test proved nothing"
    );
    assert!(
        reads.iter().flatten().any(|a| a.status == 503),
        "no read met the outage"
    );
    let after = sent
        .iter()
        .rev()
        .take(12)
        .filter(|s| s.answer.as_ref().is_some_and(|a| a.status == 201));
    assert!(
        after.count() > 0,
        "commands succeed again after the restart"
    );

    // Retry each 503 that had a key: applied at most once in all.
    for s in sent.iter().filter(|s| s.key.is_some()) {
        if s.answer.as_ref().is_some_and(|a| a.status == 503) {
            let retried = send(
                http.post(format!("{}/v1/commands", server.base))
                    .bearer_auth(&token)
                    .header("idempotency-key", s.key.as_deref().unwrap())
                    .json(&s.body),
            )
            .await;
            let status = retried.as_ref().map(|a| a.status);
            assert!(
                matches!(status, Some(200 | 201)),
                "retry of {}: {retried:?}",
                s.body
            );
        }
    }

    let events = all_events(&db.pool).await;
    let mut marks: HashMap<String, usize> = HashMap::new();
    for e in &events {
        let data: Value = serde_json::from_str(&e.data).unwrap();
        if let Some(mark) = data["value"].as_str() {
            *marks.entry(mark.to_owned()).or_default() += 1;
        }
    }
    for s in &sent {
        let found = marks.get(&s.mark).copied().unwrap_or(0);
        let acked = s.answer.as_ref().is_some_and(|a| a.status == 201);
        if acked || s.key.is_some() {
            assert_eq!(found, 1, "{} is in the log {found} times", s.body);
        } else {
            assert!(found <= 1, "{} is in the log {found} times", s.body);
        }
    }

    // Projectors and relay resumed: read models equal a rebuild, Kafka has every event.
    let last = events.iter().map(|e| e.position).max().unwrap();
    assert_read_models_equal_a_rebuild(&db, &server.base, &token, last).await;
    wait_caught_up(&db.pool).await;
    let received = read_all(&brokers(), &prefix).await;
    verify(&events, &received, &prefix);

    let status = server.terminate().await;
    assert!(status.success(), "SIGTERM after the outage: {status}");
    eprintln!(
        "{mode:?}: {acknowledged} acknowledged, {unavailable} answered 503, {} reads, {} events, \
         ready {} ms after PostgreSQL was",
        reads.len(),
        events.len(),
        recovered_in.as_millis()
    );
}
