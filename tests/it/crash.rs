//! kill -9 under load, against the real `plinth serve` binary with its projectors and Kafka
//! relay: what was acknowledged is in the log exactly once, retries with the same
//! `Idempotency-Key` never double anything, the read models converge to a rebuild from the log,
//! and Kafka has every event (duplicates allowed, no gaps, each key in order).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::relay::{all_events, brokers, checkpoint, head, read_all, unique, verify};
use crate::support::{plinth_binary, test_db, TestDb, ADMIN, SECRET};

/// A `plinth serve` child process.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Starts `plinth serve` on `db` (projectors and relay included) and waits until ready.
    async fn start(db: &TestDb, port: u16, topic_prefix: &str) -> Self {
        let child = Command::new(plinth_binary())
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("PLINTH_LISTEN", format!("127.0.0.1:{port}"))
            .env("PLINTH_JWT_SECRET", SECRET)
            .env("PLINTH_PLATFORM_ADMINS", ADMIN)
            .env("PLINTH_KAFKA_BROKERS", brokers())
            .env("PLINTH_KAFKA_TOPIC_PREFIX", topic_prefix)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("plinth serve starts");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        for _ in 0..600 {
            let ready = http.get(format!("{}/readyz", server.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("plinth serve never became ready");
    }

    /// SIGKILL: nothing of its shutdown path runs.
    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, then its exit status (graceful shutdown).
    async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("plinth serve stops within 20 s of SIGTERM")
            .unwrap()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One command a client sent, and what came back (`None`: no answer, the server died).
#[derive(Debug, Clone)]
struct Sent {
    key: Option<String>,
    body: Value,
    /// The value it writes (a description or an annotation), unique per command.
    mark: String,
    reply: Option<(u16, Value)>,
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: &Value,
    key: Option<&str>,
) -> Option<(u16, Value)> {
    let mut request = http
        .post(format!("{base}/v1/commands"))
        .bearer_auth(token)
        .json(body)
        .timeout(Duration::from_secs(10));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let body = response.json().await.ok()?;
    Some((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_under_load_loses_nothing_it_acknowledged_and_doubles_nothing() {
    let db = test_db().await;
    let prefix = unique("crash");
    let port = free_port();
    let server = Server::start(&db, port, &prefix).await;
    let token = plinth_api::auth::mint_dev_token(SECRET, ADMIN, 3600).unwrap();
    let http = reqwest::Client::new();

    let mut tenants = Vec::new();
    for i in 0..8 {
        let body = json!({"type": "CreateTenant", "data": {"name": format!("crash {i}")}});
        let (status, reply) = post(&http, &server.base, &token, &body, None)
            .await
            .unwrap();
        assert_eq!(status, 201, "{reply}");
        tenants.push(reply["stream_id"].as_str().unwrap().to_owned());
    }

    // 16 clients, half of their commands with an Idempotency-Key, until the server dies.
    let killed = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (http, base, token) = (http.clone(), server.base.clone(), token.clone());
            let (tenants, killed) = (tenants.clone(), killed.clone());
            tokio::spawn(async move {
                let mut sent = Vec::new();
                let mut n = 0usize;
                while !killed.load(Ordering::Relaxed) {
                    let tenant = &tenants[(c + n) % tenants.len()];
                    let mark = format!("c{c}-n{n}");
                    let body = if n % 2 == 0 {
                        json!({"type": "UpdateTenant",
                               "data": {"tenant_id": tenant, "description": mark}})
                    } else {
                        json!({"type": "SetAnnotation",
                               "data": {"resource_id": tenant, "key": "example.com/mark",
                                        "value": mark}})
                    };
                    let key = (n % 4 < 2).then(|| uuid::Uuid::now_v7().to_string());
                    let reply = post(&http, &base, &token, &body, key.as_deref()).await;
                    let died = reply.is_none();
                    sent.push(Sent {
                        key,
                        body,
                        mark,
                        reply,
                    });
                    if died {
                        break;
                    }
                    n += 1;
                }
                sent
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().await;
    killed.store(true, Ordering::Relaxed);
    let mut sent: Vec<Sent> = Vec::new();
    for c in clients {
        sent.extend(c.await.unwrap());
    }
    let acknowledged = sent.iter().filter(|s| s.reply.is_some()).count();
    let unanswered = sent.len() - acknowledged;
    assert!(
        acknowledged > 100,
        "too little load before the kill: {acknowledged}"
    );
    for s in &sent {
        if let Some((status, reply)) = &s.reply {
            assert!(
                *status == 201 || *status == 503,
                "{status} for {}: {reply}",
                s.body
            );
        }
    }

    let server = Server::start(&db, port, &prefix).await;
    // Retry what got no answer, and what was answered, with the same keys: the first must
    // apply at most once, the second must replay, neither may append twice.
    for s in sent.iter().filter(|s| s.key.is_some()) {
        let (status, reply) = post(&http, &server.base, &token, &s.body, s.key.as_deref())
            .await
            .expect("the restarted server answers");
        match &s.reply {
            Some((201, first)) => {
                assert_eq!(status, 200, "a replay: {reply}");
                assert_eq!(reply["command_id"], first["command_id"], "the first result");
            }
            _ => assert!(status == 200 || status == 201, "{status}: {reply}"),
        }
    }

    let events = all_events(&db.pool).await;
    let mut marks: HashMap<String, usize> = HashMap::new();
    for e in &events {
        let data: Value = serde_json::from_str(&e.data).unwrap();
        for field in ["description", "value"] {
            if let Some(mark) = data[field].as_str() {
                *marks.entry(mark.to_owned()).or_default() += 1;
            }
        }
    }
    for s in &sent {
        let found = marks.get(&s.mark).copied().unwrap_or(0);
        let must_be_there = s.key.is_some() || matches!(s.reply, Some((201, _)));
        if must_be_there {
            assert_eq!(found, 1, "{} is in the log {found} times", s.body);
        } else {
            assert!(found <= 1, "{} is in the log {found} times", s.body);
        }
    }
    let inverted = crate::log_order::version_inversions(&events);
    assert!(inverted.is_empty(), "out of version order: {inverted:?}");

    // The read models converge to a rebuild of the whole log.
    let last = events.iter().map(|e| e.position).max().unwrap();
    let reply = http
        .get(format!("{}/v1/tenants?min_position={last}", server.base))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(
        reply.status(),
        200,
        "the projectors caught up after the restart"
    );
    let schema = format!("crash_{}", rand::random::<u32>());
    plinth_projections::read::rebuild_as_of(&db.pool, &schema, last, |_| {})
        .await
        .unwrap();
    let client = db.pool.get().await.unwrap();
    for table in ["tenants", "annotations", "resources", "grants", "users"] {
        let differing: i64 = client
            .query_one(
                &format!(
                    "select count(*) from ((select * from read.{table} except select * from {schema}.{table})
                      union all (select * from {schema}.{table} except select * from read.{table})) d"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(differing, 0, "read.{table} differs from its rebuild");
    }

    // Kafka: every event, each key in order, duplicates allowed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while checkpoint(&db.pool).await < head(&db.pool).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = read_all(&brokers(), &prefix).await;
    let duplicates = verify(&events, &received, &prefix);

    let status = server.terminate().await;
    assert!(
        status.success(),
        "SIGTERM ends plinth serve cleanly: {status}"
    );
    eprintln!(
        "{acknowledged} acknowledged, {unanswered} unanswered at the kill, {} events, \
         {duplicates} duplicate deliveries",
        events.len()
    );
}
