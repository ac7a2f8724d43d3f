//! The real `plinth serve` binary (projectors and Kafka relay included) killed under load, and
//! two of them on one database.
//!
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

use crate::relay::{brokers, read_all, unique, verify, wait_caught_up};
use crate::support::{all_events, plinth_binary, test_db, TestDb, ADMIN, HORIZON, SECRET};

/// A `plinth serve` child process.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
}

impl Server {
    /// Starts `plinth serve` on `db` (projectors and relay included) and waits until ready.
    pub(crate) async fn start(db: &TestDb, port: u16, topic_prefix: &str) -> Self {
        Self::start_with(db, port, topic_prefix, &[]).await
    }

    /// [`Server::start`] with more environment variables.
    pub(crate) async fn start_with(
        db: &TestDb,
        port: u16,
        topic_prefix: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let child = Command::new(plinth_binary())
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("PLINTH_LISTEN", format!("127.0.0.1:{port}"))
            .env("PLINTH_JWT_SECRET", SECRET)
            .env("PLINTH_PLATFORM_ADMINS", ADMIN)
            .env("PLINTH_KAFKA_BROKERS", brokers())
            .env("PLINTH_KAFKA_TOPIC_PREFIX", topic_prefix)
            .env("RUST_LOG", "warn")
            // scripts/test exports the test NATS server's URL; a server runs the NATS relay
            // only when its test asks for it.
            .env_remove("PLINTH_NATS_URL")
            .envs(env.iter().copied())
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

    /// Its resident memory now, in KiB (Linux `VmRSS`).
    pub(crate) fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .expect("a running process has a status")
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS")
    }

    /// SIGKILL: nothing of its shutdown path runs.
    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, then its exit status (graceful shutdown).
    pub(crate) async fn terminate(mut self) -> std::process::ExitStatus {
        crate::support::send_sigterm(&self.child);
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("plinth serve stops within 20 s of SIGTERM")
            .unwrap()
    }
}

pub(crate) fn free_port() -> u16 {
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

/// `clients` concurrent clients sending UpdateTenant and SetAnnotation to `tenants`, each
/// through one of `bases` in turn, half of the commands with an Idempotency-Key, until `stop`
/// is set or their server stops answering. Each returns what it sent.
fn drive(
    bases: &[String],
    token: &str,
    tenants: &[String],
    clients: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Sent>>> {
    (0..clients)
        .map(|c| {
            let (http, base) = (reqwest::Client::new(), bases[c % bases.len()].clone());
            let (token, tenants, stop) = (token.to_owned(), tenants.to_vec(), stop.clone());
            tokio::spawn(async move {
                let mut sent = Vec::new();
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
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
        .collect()
}

/// Creates `n` root tenants through `base`; returns their ids.
pub(crate) async fn create_tenants(base: &str, token: &str, n: usize) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let name = format!("load {i} {}", uuid::Uuid::now_v7().simple());
        let body = json!({"type": "CreateTenant", "data": {"name": name}});
        let (status, reply) = post(&http, base, token, &body, None).await.unwrap();
        assert_eq!(status, 201, "{reply}");
        ids.push(reply["stream_id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Waits until the projections behind `base` cover `last`, then compares every read-model
/// table with a rebuild of the log up to `last` (`plinth replay --until-position`).
pub(crate) async fn assert_read_models_equal_a_rebuild(
    db: &TestDb,
    base: &str,
    token: &str,
    last: i64,
) {
    let reply = reqwest::Client::new()
        .get(format!("{base}/v1/tenants?min_position={last}"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200, "the projectors caught up");
    let schema = format!("rebuilt_{}", rand::random::<u32>());
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_under_load_loses_nothing_it_acknowledged_and_doubles_nothing() {
    // A killed server's backends can keep a transaction open until they next touch their
    // socket: that holds back every other test's gap-safe tail (see `HORIZON`).
    let _horizon = HORIZON.write().await;
    let db = test_db().await;
    let prefix = unique("crash");
    let port = free_port();
    let server = Server::start(&db, port, &prefix).await;
    let token = plinth_api::auth::mint_dev_token(SECRET, ADMIN, 3600).unwrap();
    let http = reqwest::Client::new();

    let tenants = create_tenants(&server.base, &token, 8).await;

    // 16 clients, half of their commands with an Idempotency-Key, until the server dies.
    let killed = Arc::new(AtomicBool::new(false));
    let clients = drive(
        std::slice::from_ref(&server.base),
        &token,
        &tenants,
        16,
        &killed,
    );
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
    assert_read_models_equal_a_rebuild(&db, &server.base, &token, last).await;

    // Kafka: every event, each key in order, duplicates allowed.
    wait_caught_up(&db.pool).await;
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

/// The relay sessions' roles on `db` (`plinth-relay:<name>:<role>` in `pg_stat_activity`).
async fn relay_roles(db: &TestDb) -> Vec<String> {
    let client = db.pool.get().await.unwrap();
    let rows = client
        .query(
            "select application_name from pg_stat_activity
             where datname = current_database() and application_name like 'plinth-relay:%'
             order by application_name",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// Waits (bounded) until the relay sessions on `db` are exactly `want`.
async fn wait_for_relay_roles(db: &TestDb, want: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let roles = relay_roles(db).await;
        if roles == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay roles {roles:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two `plinth serve` processes on one database, commands sent to both: every projection is
/// applied once (the read models equal a rebuild), one relay publishes at a time (no
/// duplicates on Kafka while both run), and when the leader is killed the other takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_database_apply_and_publish_once_and_take_over_from_each_other() {
    // A killed server's backends can keep a transaction open until they next touch their
    // socket: that holds back every other test's gap-safe tail (see `HORIZON`).
    let _horizon = HORIZON.write().await;
    let db = test_db().await;
    let prefix = unique("pair");
    let token = plinth_api::auth::mint_dev_token(SECRET, ADMIN, 3600).unwrap();
    let first = Server::start(&db, free_port(), &prefix).await;
    wait_for_relay_roles(&db, &["plinth-relay:kafka:leader"]).await;
    let second = Server::start(&db, free_port(), &prefix).await;
    wait_for_relay_roles(
        &db,
        &["plinth-relay:kafka:leader", "plinth-relay:kafka:standby"],
    )
    .await;

    let tenants = create_tenants(&first.base, &token, 6).await;
    let stop = Arc::new(AtomicBool::new(false));
    let bases = [first.base.clone(), second.base.clone()];
    let clients = drive(&bases, &token, &tenants, 8, &stop);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        for s in c.await.unwrap() {
            let (status, reply) = s.reply.expect("both servers answer");
            assert_eq!(status, 201, "{}: {reply}", s.body);
        }
    }

    let events = all_events(&db.pool).await;
    let last = events.iter().map(|e| e.position).max().unwrap();
    assert_read_models_equal_a_rebuild(&db, &second.base, &token, last).await;
    wait_caught_up(&db.pool).await;
    let received = read_all(&brokers(), &prefix).await;
    assert_eq!(
        verify(&events, &received, &prefix),
        0,
        "two relays published at once"
    );

    // The first server leads (it started alone); kill it, and the second takes over.
    first.kill().await;
    wait_for_relay_roles(&db, &["plinth-relay:kafka:leader"]).await;
    let more = create_tenants(&second.base, &token, 1).await.remove(0);
    let events = all_events(&db.pool).await;
    assert!(events.iter().any(|e| e.stream_id == more));
    wait_caught_up(&db.pool).await;
    let received = read_all(&brokers(), &prefix).await;
    verify(&events, &received, &prefix);
    let status = second.terminate().await;
    assert!(status.success(), "{status}");
}

/// SIGTERM while clients are sending: requests in flight are answered (never a 5xx), the
/// process exits 0 within 10 s, and the relay had confirmed and checkpointed everything it had
/// published: after a restart nothing reaches Kafka twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_drains_requests_and_relay_deliveries_then_exits_cleanly() {
    // A killed server's backends can keep a transaction open until they next touch their
    // socket: that holds back every other test's gap-safe tail (see `HORIZON`).
    let _horizon = HORIZON.write().await;
    let db = test_db().await;
    let prefix = unique("term");
    let port = free_port();
    let token = plinth_api::auth::mint_dev_token(SECRET, ADMIN, 3600).unwrap();
    let server = Server::start(&db, port, &prefix).await;
    let tenants = create_tenants(&server.base, &token, 6).await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = drive(
        std::slice::from_ref(&server.base),
        &token,
        &tenants,
        8,
        &stop,
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let began = std::time::Instant::now();
    let status = server.terminate().await;
    let took = began.elapsed();
    stop.store(true, Ordering::Relaxed);
    assert!(status.success(), "SIGTERM under load: {status}");
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
    let mut answered = 0;
    for c in clients {
        for s in c.await.unwrap() {
            if let Some((status, reply)) = s.reply {
                assert_eq!(status, 201, "{}: {reply}", s.body);
                answered += 1;
            }
        }
    }
    assert!(answered > 50, "too little load before SIGTERM: {answered}");

    let server = Server::start(&db, port, &prefix).await;
    wait_caught_up(&db.pool).await;
    let events = all_events(&db.pool).await;
    let received = read_all(&brokers(), &prefix).await;
    assert_eq!(
        verify(&events, &received, &prefix),
        0,
        "deliveries confirmed before the stop were sent again"
    );
    assert!(server.terminate().await.success());
}
