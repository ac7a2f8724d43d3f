//! The NATS relay against a real nats-server with JetStream (`scripts/nats up`; URL from
//! `PLINTH_NATS_URL`, else the `.nats/url` file the script writes). Never the machine's own
//! NATS on 4222.
//!
//! The conformance test is the only one on the default prefix `com.infratographer` (it deletes
//! and recreates its stream, so a re-run on the same server starts clean); the others publish
//! under a random prefix each, with a stream of their own, so they run side by side.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::{self, stream, Context};
use futures::StreamExt as _;
use md5::{Digest as _, Md5};
use plinth_commands::StoredEvent;
use plinth_projections::nats::{self, MessageConfig, NatsConfig, StreamConfig};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::relay::{head, wait_for_roles};
use crate::support::{
    all_events, plinth_binary, run_plinth, spawn_app, synthetic_platform, test_db, TestDb, HORIZON,
};

/// Upper bound for any wait.
const PATIENCE: Duration = Duration::from_secs(180);

pub fn nats_url() -> String {
    if let Ok(url) = std::env::var("PLINTH_NATS_URL") {
        return url;
    }
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../.nats/url");
    std::fs::read_to_string(file)
        .map(|url| url.trim().to_owned())
        .unwrap_or_else(|_| {
            panic!("no NATS server: run `scripts/nats up` (or set PLINTH_NATS_URL)")
        })
}

/// A prefix of its own for a test (two tokens, like `com.infratographer`).
fn unique_prefix() -> String {
    format!("it.n{}", uuid::Uuid::now_v7().simple())
}

async fn jetstream() -> Context {
    let client = async_nats::connect(nats_url()).await.expect("NATS is up");
    jetstream::new(client)
}

fn relay_config(db: &TestDb, prefix: &str) -> NatsConfig {
    NatsConfig {
        message: MessageConfig {
            prefix: prefix.to_owned(),
            source: "plinth".to_owned(),
        },
        database_url: Some(db.url.clone()),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        lock_retry_interval: Duration::from_millis(100),
        ..NatsConfig::new(nats_url())
    }
}

/// A stream of its own for `prefix`, named after it.
async fn make_stream(prefix: &str) -> String {
    let name = prefix.replace('.', "-");
    let subjects = nats::ensure_stream(&StreamConfig {
        name: name.clone(),
        ..StreamConfig::new(nats_url(), prefix)
    })
    .await
    .unwrap();
    // Never `<prefix>.>`: that would swallow permissions-api's request/reply subjects.
    assert_eq!(
        subjects,
        [format!("{prefix}.changes.>"), format!("{prefix}.events.>")]
    );
    name
}

/// A relay task that can be stopped.
struct Running {
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    stop: tokio::sync::oneshot::Sender<()>,
}

fn start_relay(db: &TestDb, config: NatsConfig) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(nats::run(db.pool.clone(), config, async move {
        let _ = stopped.await;
    }));
    Running { task, stop }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("relay task").expect("relay run");
    }

    /// Ends the task where it stands, like a crashed process.
    async fn kill(self) {
        self.task.abort();
        assert!(self.task.await.unwrap_err().is_cancelled());
    }
}

async fn checkpoint_position(db: &TestDb) -> Option<i64> {
    nats::checkpoint(&db.pool, nats::DEFAULT_NAME)
        .await
        .unwrap()
        .map(|c| c.position)
}

/// Waits until the relay's checkpoint covers the whole log.
async fn wait_caught_up(db: &TestDb) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let head = head(&db.pool).await;
        let at = nats::checkpoint(&db.pool, nats::DEFAULT_NAME)
            .await
            .unwrap()
            .unwrap_or_default();
        if at >= head {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the NATS relay never caught up: at {at:?}, head {head:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One stored message.
#[derive(Debug)]
struct Stored {
    sequence: u64,
    subject: String,
    msg_id: String,
    payload: Value,
}

/// Every message of stream `name`, in stream sequence order.
async fn read_stream(js: &Context, name: &str) -> Vec<Stored> {
    let mut stream = js.get_stream(name).await.unwrap();
    let info = stream.info().await.unwrap().state.clone();
    let mut out = Vec::new();
    if info.messages == 0 {
        return out;
    }
    for sequence in info.first_sequence..=info.last_sequence {
        let m = stream.get_raw_message(sequence).await.unwrap();
        // Plinth's all carry one (`assert_exactly_the_log` compares them with the event ids);
        // another publisher's may not (x/events sets none).
        let msg_id = m
            .headers
            .get(NATS_MESSAGE_ID)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        out.push(Stored {
            sequence: m.sequence,
            subject: m.subject.to_string(),
            msg_id,
            payload: serde_json::from_slice(&m.payload).unwrap(),
        });
    }
    out
}

async fn stream_messages(js: &Context, name: &str) -> u64 {
    js.get_stream(name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}

/// The subject another publisher writes to in the tests sharing a stream: a subject type
/// Plinth never publishes.
fn foreign_subject(prefix: &str) -> String {
    format!("{prefix}.changes.update.foreign")
}

fn is_foreign(message: &Stored) -> bool {
    message.subject.ends_with(".foreign")
}

/// Plinth's messages of a stream it shares, in stream order.
fn plinth_only(stored: Vec<Stored>) -> Vec<Stored> {
    stored.into_iter().filter(|m| !is_foreign(m)).collect()
}

/// Another service publishing into the stream every millisecond, as x/events does (a plain NATS
/// publish, no acknowledgement awaited, no `Nats-Msg-Id`) or, `with_ids`, with a `Nats-Msg-Id`
/// of its own (a UUID, like Plinth's).
struct ForeignPublisher {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<u64>,
}

impl ForeignPublisher {
    async fn start(prefix: &str, with_ids: bool) -> Self {
        let client = async_nats::connect(nats_url()).await.expect("NATS is up");
        let subject = foreign_subject(prefix);
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut sent = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                let mut headers = async_nats::HeaderMap::new();
                if with_ids {
                    headers.insert(NATS_MESSAGE_ID, uuid::Uuid::now_v7().to_string().as_str());
                }
                let payload = json!({ "foreign": sent }).to_string();
                client
                    .publish_with_headers(subject.clone(), headers, payload.into())
                    .await
                    .unwrap();
                sent += 1;
            }
            client.flush().await.unwrap();
            sent
        });
        Self { stop, task }
    }

    /// Stops publishing; how many messages it sent.
    async fn stop(self) -> u64 {
        let _ = self.stop.send(());
        self.task.await.unwrap()
    }
}

/// The stream holds each event exactly once, in the log's order (the relay reads the log in
/// `(tx, position)` order; stream sequence must follow it).
fn assert_exactly_the_log(events: &[StoredEvent], stored: &[Stored]) {
    let log: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
    let got: Vec<String> = stored.iter().map(|m| m.msg_id.clone()).collect();
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "a message was stored twice");
    assert_eq!(
        got.len(),
        log.len(),
        "the stream holds {} messages for {} events",
        got.len(),
        log.len()
    );
    if let Some(i) = (0..log.len()).find(|&i| log[i] != got[i]) {
        panic!(
            "stream sequence {} holds event {}, the log has {} there",
            stored[i].sequence, got[i], log[i]
        );
    }
}

/// x/events' durable name: queue group + hex(md5(subject)).
fn durable_name(queue_group: &str, subject: &str) -> String {
    let digest = Md5::digest(subject.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{queue_group}{hex}")
}

/// A consumer set up as x/events' `SubscribeChanges` sets one up: a durable pull consumer on
/// the stream that captures `subject`, named queue group + md5 of the subject, filtered to it,
/// explicit acks, fetching batches of 20 that wait up to 5 s.
struct ChangeSubscriber {
    consumer: jetstream::consumer::Consumer<pull::Config>,
    /// The fetch under way: like x/events, messages are handed on as they arrive, not when
    /// the batch is full.
    batch: Option<pull::Batch>,
}

impl ChangeSubscriber {
    async fn subscribe(js: &Context, queue_group: &str, subject: &str) -> Self {
        let stream_name = js.stream_by_subject(subject).await.unwrap();
        let stream = js.get_stream(stream_name).await.unwrap();
        let durable = durable_name(queue_group, subject);
        let consumer = stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    filter_subject: subject.to_owned(),
                    ack_policy: AckPolicy::Explicit,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        Self {
            consumer,
            batch: None,
        }
    }

    /// The next message within `wait`, if any.
    async fn fetch(&mut self, wait: Duration) -> Option<jetstream::Message> {
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            let batch = match &mut self.batch {
                Some(batch) => batch,
                None => self.batch.insert(
                    self.consumer
                        .batch()
                        .max_messages(20)
                        .expires(Duration::from_secs(5))
                        .messages()
                        .await
                        .unwrap(),
                ),
            };
            match tokio::time::timeout_at(deadline, batch.next()).await {
                Ok(Some(message)) => return Some(message.unwrap()),
                // The fetch expired or was filled: the next one.
                Ok(None) => self.batch = None,
                Err(_timeout) => return None,
            }
        }
        None
    }

    /// The next change message, acknowledged (tenant-api's `getSingleMessage`, with a longer
    /// wait: the relay is asynchronous).
    async fn next(&mut self) -> Value {
        let message = self
            .fetch(Duration::from_secs(30))
            .await
            .expect("timeout waiting for change message");
        message.ack().await.unwrap();
        // What x/events' `UnmarshalChangeMessage` decodes.
        serde_json::from_slice(&message.payload).unwrap()
    }

    /// Nothing more arrives within a few seconds.
    async fn assert_quiet(&mut self) {
        if let Some(message) = self.fetch(Duration::from_secs(2)).await {
            panic!(
                "unexpected message on {}: {}",
                message.subject,
                String::from_utf8_lossy(&message.payload)
            );
        }
    }
}

fn field_changes(message: &Value) -> Vec<(String, String, String)> {
    message["fieldChanges"]
        .as_array()
        .map(|changes| {
            changes
                .iter()
                .map(|c| {
                    (
                        c["field"].as_str().unwrap().to_owned(),
                        c["previousValue"].as_str().unwrap().to_owned(),
                        c["currentValue"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An RFC 3339 time to the second (Go's `time.RFC3339` layout), within a minute of now.
fn assert_recent_second(value: &str) {
    assert_eq!(value.len(), 20, "{value} is not to the second");
    let at = chrono::DateTime::parse_from_rfc3339(value).unwrap();
    let age = chrono::Utc::now().signed_duration_since(at);
    assert!(age.num_seconds().abs() < 60, "{value} is not recent");
}

/// tenant-api's own pubsub test (`internal/graphapi/pubsub_test.go`), with Plinth in its
/// place: root create, child create, rename, child and root delete, read by a consumer set up
/// exactly as x/events sets one up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_infratographer_consumer_sees_what_tenant_api_would_publish() {
    let _serial = HORIZON.read().await;
    let prefix = "com.infratographer";
    let js = jetstream().await;
    // Only this test uses the default prefix; start from an empty stream.
    let name = "plinth-it-conformance";
    let _ = js.delete_stream(name).await;
    let subjects = nats::ensure_stream(&StreamConfig {
        name: name.to_owned(),
        ..StreamConfig::new(nats_url(), prefix)
    })
    .await
    .unwrap();
    assert_eq!(
        subjects,
        [
            "com.infratographer.changes.>",
            "com.infratographer.events.>"
        ]
    );
    let app = spawn_app().await;
    let relay = start_relay(&app.db, relay_config(&app.db, prefix));
    let mut sub = ChangeSubscriber::subscribe(
        &js,
        "tenant-api-test",
        "com.infratographer.changes.*.tenant",
    )
    .await;
    let admin = app.admin();
    let actor = app.user(crate::support::ADMIN).await;

    // A root tenant with a description: 4 field changes, none with a previous value.
    let root = app
        .ok(
            &admin,
            "CreateTenant",
            json!({"name": "example.com", "description": "a <root> & more"}),
        )
        .await;
    let msg = sub.next().await;
    assert_eq!(msg["actorID"], actor.as_str());
    assert_eq!(msg["eventType"], "create");
    assert_eq!(msg["source"], "plinth");
    assert_eq!(msg["subjectID"], root.as_str());
    assert_eq!(msg["additionalSubjects"], json!([]));
    let changes = field_changes(&msg);
    assert_eq!(changes.len(), 4, "{msg}");
    let names: Vec<&str> = changes.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, ["created_at", "updated_at", "name", "description"]);
    for (field, previous, current) in &changes {
        assert_eq!(previous, "", "{field}");
        match field.as_str() {
            "created_at" | "updated_at" => assert_recent_second(current),
            "name" => assert_eq!(current, "example.com"),
            "description" => assert_eq!(current, "a <root> & more"),
            other => panic!("unexpected field in changeset {other}"),
        }
    }

    // A child without a description: parent_tenant_id instead, and the parent as an
    // additional subject.
    let child = app
        .ok(
            &admin,
            "CreateTenant",
            json!({"name": "child", "parent_id": root}),
        )
        .await;
    let msg = sub.next().await;
    assert_eq!(msg["eventType"], "create");
    assert_eq!(msg["subjectID"], child.as_str());
    assert_eq!(msg["additionalSubjects"], json!([root]));
    let changes = field_changes(&msg);
    let names: Vec<&str> = changes.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        names,
        ["created_at", "updated_at", "name", "parent_tenant_id"]
    );
    assert!(changes.iter().all(|c| c.1.is_empty()));
    assert_eq!(changes[2].2, "child");
    assert_eq!(changes[3].2, root);

    // A rename: exactly updated_at and name, each with its previous value.
    app.ok(
        &admin,
        "UpdateTenant",
        json!({"tenant_id": child, "name": "renamed.example.com"}),
    )
    .await;
    let msg = sub.next().await;
    assert_eq!(msg["eventType"], "update");
    assert_eq!(msg["subjectID"], child.as_str());
    assert_eq!(msg["additionalSubjects"], json!([root]));
    let changes = field_changes(&msg);
    assert_eq!(changes.len(), 2, "{msg}");
    assert_eq!(changes[0].0, "updated_at");
    assert_recent_second(&changes[0].1);
    assert_recent_second(&changes[0].2);
    assert_eq!(
        changes[1],
        (
            "name".to_owned(),
            "child".to_owned(),
            "renamed.example.com".to_owned()
        )
    );

    // Deletes: no field changes, the parent kept for the child.
    app.ok(&admin, "DeleteTenant", json!({"tenant_id": child}))
        .await;
    let msg = sub.next().await;
    assert_eq!(msg["eventType"], "delete");
    assert_eq!(msg["subjectID"], child.as_str());
    assert_eq!(msg["additionalSubjects"], json!([root]));
    assert!(msg["fieldChanges"].is_null(), "{msg}");
    app.ok(&admin, "DeleteTenant", json!({"tenant_id": root}))
        .await;
    let msg = sub.next().await;
    assert_eq!(msg["eventType"], "delete");
    assert_eq!(msg["subjectID"], root.as_str());
    assert_eq!(msg["additionalSubjects"], json!([]));
    assert!(field_changes(&msg).is_empty());
    // Grants and other non-CRUD events went to `events.`, not to this consumer.
    sub.assert_quiet().await;

    wait_caught_up(&app.db).await;
    relay.stop().await;
    let events = all_events(&app.db.pool).await;
    assert_exactly_the_log(&events, &read_stream(&js, name).await);
}

/// A database holding a small synthetic platform (600 events), and a fresh stream on a prefix
/// of its own: `(db, prefix, stream name)`.
async fn platform_and_stream() -> (TestDb, String, String) {
    let db = test_db().await;
    {
        let _w = HORIZON.write().await;
        synthetic_platform(&db, 600, 8, 3).await;
    }
    let prefix = unique_prefix();
    let name = make_stream(&prefix).await;
    (db, prefix, name)
}

/// Re-sending from 0 inside the duplicate window stores nothing twice (`Nats-Msg-Id` is the
/// event id, the bytes are identical), and the stream's order is the log's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_from_zero_inside_the_window_stores_no_duplicate() {
    let (db, prefix, name) = platform_and_stream().await;
    let js = jetstream().await;
    let relay = start_relay(&db, relay_config(&db, &prefix));
    wait_caught_up(&db).await;
    relay.stop().await;
    let events = all_events(&db.pool).await;
    let first = read_stream(&js, &name).await;
    assert_exactly_the_log(&events, &first);
    // Every event type the synthetic platform wrote is on the subject the mapping says.
    for (event, message) in events.iter().zip(&first) {
        assert_eq!(message.payload["subjectID"], event.stream_id.as_str());
        assert!(message.subject.starts_with(&format!("{prefix}.")));
    }

    // The whole log again, through the CLI.
    let (ok, out) = run_plinth(&[
        "nats",
        "republish",
        "--database-url",
        &db.url,
        "--nats-url",
        &nats_url(),
        "--prefix",
        &prefix,
        "--from-position",
        "0",
    ]);
    assert!(ok, "{out}");
    let n = events.len();
    assert!(
        out.contains(&format!(
            "republished {n} event(s), {n} already in the stream's duplicate window"
        )),
        "{out}"
    );
    let again = read_stream(&js, &name).await;
    assert_exactly_the_log(&events, &again);
    // Nothing was rewritten either.
    for (a, b) in first.iter().zip(&again) {
        assert_eq!((a.sequence, &a.payload), (b.sequence, &b.payload));
    }
}

/// A `plinth nats relay` child process, its stderr in a file.
struct RelayProcess {
    child: Child,
    log: std::path::PathBuf,
}

impl RelayProcess {
    fn start(db: &TestDb, prefix: &str, batch_size: i64) -> Self {
        Self::start_with(db, prefix, batch_size, &[])
    }

    /// With more environment.
    fn start_with(db: &TestDb, prefix: &str, batch_size: i64, env: &[(&str, &str)]) -> Self {
        let log =
            std::env::temp_dir().join(format!("plinth-nats-relay-{}.log", uuid::Uuid::now_v7()));
        let child = Command::new(plinth_binary())
            .args(["nats", "relay"])
            .env("DATABASE_URL", &db.url)
            .env("PLINTH_NATS_URL", nats_url())
            .env("PLINTH_NATS_PREFIX", prefix)
            .env("PLINTH_NATS_BATCH_SIZE", batch_size.to_string())
            .env_remove("PLINTH_NATS_ORDERING")
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("plinth nats relay starts");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (at most [`PATIENCE`]) until the log holds `needle`, checking `meanwhile` before
    /// each look; `what` names the line in the failure.
    async fn wait_for_log<F: std::future::Future<Output = ()>>(
        &self,
        needle: &str,
        what: &str,
        mut meanwhile: impl FnMut() -> F,
    ) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !self.log().contains(needle) {
            meanwhile().await;
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {what} logged: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: nothing of its shutdown path runs.
    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

/// kill -9 of the relay while batches are in flight: the next run resumes from the
/// checkpoint, re-sends what was not yet covered (dropped by the stream as duplicates), and the
/// stream ends up with every event once, in the log's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_killed_mid_batch_leaves_no_gap_and_no_duplicate() {
    let db = test_db().await;
    {
        let _w = HORIZON.write().await;
        synthetic_platform(&db, 8000, 20, 5).await;
    }
    let events = all_events(&db.pool).await;
    let prefix = unique_prefix();
    let name = make_stream(&prefix).await;
    let js = jetstream().await;

    // Small batches: more round trips, so the kill lands long before the end even when this
    // test process is starved of CPU.
    let relay = RelayProcess::start(&db, &prefix, 20);
    // Kill once an eighth is stored and a checkpoint saved: batches are then in flight.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while stream_messages(&js, &name).await < events.len() as u64 / 8
        || checkpoint_position(&db).await.unwrap_or(0) == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing published: {}",
            relay.log()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    relay.kill().await;
    let covered = nats::checkpoint(&db.pool, nats::DEFAULT_NAME)
        .await
        .unwrap()
        .unwrap();
    let stored = read_stream(&js, &name).await;
    assert!(
        stored.len() < events.len(),
        "the relay finished before the kill: make the log longer"
    );
    // What the checkpoint covers was acknowledged, so it is in the stream.
    let in_stream: HashSet<&str> = stored.iter().map(|m| m.msg_id.as_str()).collect();
    let covered_events: Vec<&StoredEvent> = events
        .iter()
        .filter(|e| e.checkpoint() <= covered)
        .collect();
    for event in &covered_events {
        assert!(
            in_stream.contains(event.event_id.to_string().as_str()),
            "the checkpoint covers position {} but the stream lacks it",
            event.position
        );
    }
    eprintln!(
        "killed with {} of {} stored, {} covered by the checkpoint",
        stored.len(),
        events.len(),
        covered_events.len()
    );

    let relay = RelayProcess::start(&db, &prefix, 500);
    wait_caught_up(&db).await;
    relay.kill().await;
    assert_exactly_the_log(&events, &read_stream(&js, &name).await);
}

/// A message lost in flight while the ones after it reach the server (here: one over the
/// stream's size limit, refused while the next ones fit) is not overtaken: the chained
/// publishes after it are refused, nothing past it is stored, the next sessions re-send from it
/// one event at a time, and once it can be stored the stream holds the log in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_lost_in_flight_is_not_overtaken_by_the_next_ones() {
    let app = spawn_app().await;
    let admin = app.admin();
    let four_tenants = |label: &'static str| {
        let (app, admin) = (&app, &admin);
        async move {
            for i in 0..4 {
                let name = format!("{label}-{i}.example");
                app.ok(admin, "CreateTenant", json!({"name": name})).await;
            }
        }
    };
    four_tenants("before").await;
    let big = app
        .ok(
            &admin,
            "CreateTenant",
            json!({"name": "big.example", "description": "x".repeat(3000)}),
        )
        .await;
    four_tenants("after").await;
    let events = all_events(&app.db.pool).await;
    let lost = events
        .iter()
        .position(|e| e.stream_id == big && e.event_type == "TenantCreated")
        .unwrap();
    assert!(lost > 0 && lost + 1 < events.len());
    let lost_id = events[lost].event_id.to_string();
    let next_id = events[lost + 1].event_id.to_string();
    let last_id = events.last().unwrap().event_id.to_string();

    let prefix = unique_prefix();
    let js = jetstream().await;
    let mut config = stream::Config {
        name: prefix.replace('.', "-"),
        subjects: vec![format!("{prefix}.changes.>"), format!("{prefix}.events.>")],
        max_message_size: 2048,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    js.create_stream(config.clone()).await.unwrap();
    // Every publish, stored or refused, as a plain subscriber sees it.
    let client = async_nats::connect(nats_url()).await.unwrap();
    let mut published = client.subscribe(format!("{prefix}.>")).await.unwrap();
    client.flush().await.unwrap();
    let relay = start_relay(&app.db, relay_config(&app.db, &prefix));

    // Until the first session has sent the whole log and two more re-sent the lost event.
    let mut times: HashMap<String, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !times.contains_key(&last_id) || times.get(&lost_id).copied().unwrap_or(0) < 3 {
        let message = tokio::time::timeout_at(deadline, published.next())
            .await
            .unwrap_or_else(|_| panic!("the relay stopped publishing: {times:?}"))
            .unwrap();
        let id = message
            .headers
            .as_ref()
            .unwrap()
            .get(NATS_MESSAGE_ID)
            .unwrap();
        *times.entry(id.as_str().to_owned()).or_default() += 1;
    }
    // Nothing after the lost event was stored, and the checkpoint stops before it.
    assert_exactly_the_log(&events[..lost], &read_stream(&js, &config.name).await);
    assert_eq!(
        checkpoint_position(&app.db).await,
        Some(events[lost - 1].position)
    );
    // The sessions after the failed one published the lost event alone, each waiting for its
    // answer before the next: the event after it went out with the first session only.
    assert_eq!(times.get(&next_id), Some(&1), "{times:?}");

    // The limit raised, the relay stores the rest, in order.
    config.max_message_size = 1 << 20;
    js.update_stream(&config).await.unwrap();
    wait_caught_up(&app.db).await;
    relay.stop().await;
    assert_exactly_the_log(&events, &read_stream(&js, &config.name).await);
}

/// A message of another publisher between two of Plinth's (as x/events publishes: without
/// `Nats-Msg-Id`): the chained publish after it is refused, the log says why and what to set,
/// and the next session goes on in log order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_foreign_message_gets_the_next_chained_publish_refused_and_logged() {
    let app = spawn_app().await;
    let admin = app.admin();
    app.ok(&admin, "CreateTenant", json!({"name": "first.example"}))
        .await;
    let prefix = unique_prefix();
    let name = make_stream(&prefix).await;
    let js = jetstream().await;
    let relay = RelayProcess::start(&app.db, &prefix, 500);
    wait_caught_up(&app.db).await;
    let before = all_events(&app.db.pool).await.len();
    // Acknowledged, only so that the test knows it is stored.
    js.publish(
        foreign_subject(&prefix),
        json!({"foreign": 0}).to_string().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    app.ok(&admin, "CreateTenant", json!({"name": "second.example"}))
        .await;
    wait_caught_up(&app.db).await;
    let log = relay.log();
    relay.kill().await;
    let events = all_events(&app.db.pool).await;
    assert!(
        log.contains(&format!(
            "JetStream refused the event at position {} ({})",
            events[before].position, events[before].event_id
        )),
        "{log}"
    );
    assert!(
        log.contains("the stream's last message is one without Nats-Msg-Id"),
        "{log}"
    );
    assert!(
        log.contains("the stream's last message is not one of Plinth's events"),
        "{log}"
    );
    assert!(log.contains("PLINTH_NATS_ORDERING=unchained"), "{log}");
    let stored = read_stream(&js, &name).await;
    // The foreign message stays where it came, between the two commands' events.
    let foreign: Vec<usize> = (0..stored.len())
        .filter(|&i| is_foreign(&stored[i]))
        .collect();
    assert_eq!(foreign, [before]);
    assert_exactly_the_log(&events, &plinth_only(stored));
}

/// Another publisher writing into the stream all along, with message ids of its own: chained
/// publishes keep being refused, and after a few sessions the log says that another publisher
/// may share the stream and which setting to use. Nothing is lost or reordered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeated_refusals_name_the_setting_for_a_shared_stream() {
    let (db, prefix, name) = platform_and_stream().await;
    let foreign = ForeignPublisher::start(&prefix, true).await;
    let relay = RelayProcess::start(&db, &prefix, 20);
    relay
        .wait_for_log(
            "sessions in a row ended with a refused publish",
            "hint",
            || async {},
        )
        .await;
    assert!(
        relay.log().contains("set PLINTH_NATS_ORDERING=unchained"),
        "{}",
        relay.log()
    );
    assert!(foreign.stop().await > 0);
    wait_caught_up(&db).await;
    relay.kill().await;
    let js = jetstream().await;
    let stored = read_stream(&js, &name).await;
    assert!(stored.iter().any(is_foreign));
    assert_exactly_the_log(&all_events(&db.pool).await, &plinth_only(stored));
}

/// Unchained (`PLINTH_NATS_ORDERING=unchained`), Plinth shares its stream with another
/// publisher: nothing is refused, the other's messages come between Plinth's, and Plinth's
/// follow the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unchained_ordering_shares_the_stream_with_another_publisher() {
    let (db, prefix, name) = platform_and_stream().await;
    let foreign = ForeignPublisher::start(&prefix, false).await;
    let relay =
        RelayProcess::start_with(&db, &prefix, 20, &[("PLINTH_NATS_ORDERING", "unchained")]);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    // Caught up, and never a refusal on the way.
    while nats::checkpoint(&db.pool, nats::DEFAULT_NAME)
        .await
        .unwrap()
        .unwrap_or_default()
        < head(&db.pool).await
    {
        assert!(!relay.log().contains("refused"), "{}", relay.log());
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(foreign.stop().await > 0);
    let log = relay.log();
    relay.kill().await;
    assert!(!log.contains("refused"), "{log}");
    let js = jetstream().await;
    let stored = read_stream(&js, &name).await;
    let first = stored.iter().position(|m| !is_foreign(m)).unwrap();
    let last = stored.iter().rposition(|m| !is_foreign(m)).unwrap();
    assert!(
        stored[first..last].iter().any(is_foreign),
        "the other publisher's messages never came between Plinth's"
    );
    assert_exactly_the_log(&all_events(&db.pool).await, &plinth_only(stored));
}

/// Without a stream that captures the subjects, publishing fails: the relay logs why, keeps
/// its checkpoint where it was, and delivers everything once a stream exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_stream_the_relay_logs_an_error_and_the_checkpoint_stays() {
    let app = spawn_app().await;
    let admin = app.admin();
    let root = app
        .ok(&admin, "CreateTenant", json!({"name": "no-stream.example"}))
        .await;
    let prefix = unique_prefix();
    let relay = RelayProcess::start(&app.db, &prefix, 500);
    relay
        .wait_for_log("no JetStream stream captures", "error", || async {
            assert_eq!(checkpoint_position(&app.db).await.unwrap_or(0), 0);
        })
        .await;
    assert!(
        relay.log().contains(&format!("`{prefix}.changes.")),
        "the error names the subject: {}",
        relay.log()
    );
    assert_eq!(checkpoint_position(&app.db).await.unwrap_or(0), 0);

    // The stream, made with the CLI; the relay (retrying with backoff) then delivers all.
    let stream_name = prefix.replace('.', "-");
    let (ok, out) = run_plinth(&[
        "nats",
        "ensure-stream",
        "--nats-url",
        &nats_url(),
        "--prefix",
        &prefix,
        "--stream",
        &stream_name,
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "stream {stream_name} captures {prefix}.changes.>, {prefix}.events.>"
        )),
        "{out}"
    );
    wait_caught_up(&app.db).await;
    relay.kill().await;
    let js = jetstream().await;
    let stored = read_stream(&js, &stream_name).await;
    assert_exactly_the_log(&all_events(&app.db.pool).await, &stored);
    assert!(stored
        .iter()
        .any(|m| m.payload["subjectID"] == root.as_str()));
}

/// `plinth serve` runs the NATS relay when PLINTH_NATS_URL is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_runs_the_nats_relay_when_configured() {
    let db = test_db().await;
    let prefix = unique_prefix();
    let name = make_stream(&prefix).await;
    let port = crate::crash::free_port();
    let url = nats_url();
    let server = crate::crash::Server::start_with(
        &db,
        port,
        &format!("it-nats-{}", uuid::Uuid::now_v7().simple()),
        &[("PLINTH_NATS_URL", &url), ("PLINTH_NATS_PREFIX", &prefix)],
    )
    .await;
    let token =
        plinth_api::auth::mint_dev_token(crate::support::SECRET, crate::support::ADMIN, 600)
            .unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/v1/commands", server.base))
        .bearer_auth(token)
        .json(&json!({"type": "CreateTenant", "data": {"name": "served.example"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    wait_caught_up(&db).await;
    let js = jetstream().await;
    let stored = read_stream(&js, &name).await;
    assert_exactly_the_log(&all_events(&db.pool).await, &stored);
    // The admin's user record first, then the tenant.
    let subjects: Vec<&str> = stored.iter().map(|m| m.subject.as_str()).collect();
    assert!(
        subjects.contains(&format!("{prefix}.changes.create.tenant").as_str()),
        "{subjects:?}"
    );
    assert_eq!(server.terminate().await.code(), Some(0));
}

/// Two relays with one name: one leads, the other stands by and takes over when the leader
/// dies. The stream forgets message ids after 100 ms here, so two relays publishing at once
/// would store events twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_nats_relay_never_publishes_beside_the_leader_and_takes_over() {
    let app = spawn_app().await;
    let admin = app.admin();
    let prefix = unique_prefix();
    let name = prefix.replace('.', "-");
    nats::ensure_stream(&StreamConfig {
        name: name.clone(),
        duplicate_window: Duration::from_millis(100),
        ..StreamConfig::new(nats_url(), &prefix)
    })
    .await
    .unwrap();
    app.ok(&admin, "CreateTenant", json!({"name": "one.example"}))
        .await;
    let config = relay_config(&app.db, &prefix);
    let leader = start_relay(&app.db, config.clone());
    wait_caught_up(&app.db).await;
    let standby = start_relay(&app.db, config);
    assert_eq!(
        wait_for_roles(&app.db.pool, 2).await,
        ["plinth-relay:nats:leader", "plinth-relay:nats:standby"]
    );
    app.ok(&admin, "CreateTenant", json!({"name": "two.example"}))
        .await;
    wait_caught_up(&app.db).await;
    // Past the window: anything the standby sent now would be stored again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    leader.kill().await;
    app.ok(&admin, "CreateTenant", json!({"name": "three.example"}))
        .await;
    wait_caught_up(&app.db).await;
    assert_eq!(
        wait_for_roles(&app.db.pool, 1).await,
        ["plinth-relay:nats:leader"]
    );
    standby.stop().await;
    let js = jetstream().await;
    assert_exactly_the_log(
        &all_events(&app.db.pool).await,
        &read_stream(&js, &name).await,
    );
}

/// Bad input to the CLI is refused with a clear message, before anything is published.
#[test]
fn the_nats_cli_refuses_bad_input() {
    let (ok, out) = run_plinth(&[
        "nats",
        "ensure-stream",
        "--nats-url",
        "nats://127.0.0.1:1",
        "--prefix",
        "com.>",
    ]);
    assert!(!ok);
    assert!(
        out.contains("`com.>` is not a NATS subject prefix"),
        "{out}"
    );
    let (ok, out) = run_plinth(&[
        "nats",
        "relay",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/none",
        "--nats-url",
        "nats://127.0.0.1:1",
        "--batch-size",
        "0",
    ]);
    assert!(!ok);
    assert!(out.contains("batch size must be positive"), "{out}");
    let (ok, out) = run_plinth(&[
        "nats",
        "relay",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/none",
        "--nats-url",
        "nats://127.0.0.1:1",
        "--ordering",
        "sideways",
    ]);
    assert!(!ok);
    assert!(
        out.contains("`sideways` is not a NATS ordering: `chained` or `unchained`"),
        "{out}"
    );
}
