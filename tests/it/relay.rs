//! The Kafka relay against a real Kafka-protocol broker (`scripts/kafka up`; address from
//! `PLINTH_KAFKA_BROKERS`, default 127.0.0.1:9092). Every test publishes under its own random
//! topic prefix and reads with its own consumer group. The outage test takes down a broker of
//! its own on another port, so tests sharing the main broker are not disturbed.
//!
//! Waits poll until a condition holds and give up only after minutes (to fail instead of
//! hanging); only the wake-up test bounds a latency, by seconds against a poll of 30 s.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use deadpool_postgres::Pool;
use plinth_commands::{Checkpoint, CommandBus, EventStore, StoredEvent, Submission};
use plinth_domain::{Actor, Command, UserId};
use plinth_projections::kafka::{self, ConsumeConfig, RelayConfig};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::support::{all_events, committed_events, test_db, TestDb, HORIZON};

const TOPICS: [&str; 5] = [
    "tenants",
    "users",
    "locations",
    "resource-providers",
    "providers",
];
/// Upper bound for any wait: long enough for a loaded CI machine, short enough to fail.
const PATIENCE: Duration = Duration::from_secs(180);

pub fn brokers() -> String {
    std::env::var("PLINTH_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

pub fn unique(what: &str) -> String {
    format!("it-{what}-{}", uuid::Uuid::now_v7().simple())
}

pub fn config(db: &TestDb, brokers: &str, prefix: &str) -> RelayConfig {
    RelayConfig {
        database_url: Some(db.url.clone()),
        partitions: 3,
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(2),
        lock_retry_interval: Duration::from_millis(100),
        ..RelayConfig::new(brokers, prefix)
    }
}

fn platform() -> Actor {
    Actor::user(UserId::for_identity("test", "root"), true)
}

async fn submit(bus: &CommandBus, command_type: &str, data: serde_json::Value) -> String {
    let command =
        Command::parse(command_type, data).unwrap_or_else(|e| panic!("{command_type}: {e}"));
    let (outcome, _) = bus
        .submit(Submission::new(platform(), command))
        .await
        .unwrap_or_else(|e| panic!("{command_type}: {e}"));
    outcome.stream_id
}

/// A relay task that can be stopped gracefully or killed.
pub struct Running {
    task: JoinHandle<anyhow::Result<()>>,
    stop: tokio::sync::oneshot::Sender<()>,
}

pub fn start_relay(pool: &Pool, config: &RelayConfig) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(kafka::run(pool.clone(), config.clone(), async move {
        let _ = stopped.await;
    }));
    Running { task, stop }
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("relay task").expect("relay run");
    }

    /// Kills the task where it stands, like a crashed process: nothing of the relay's own
    /// shutdown path runs.
    async fn kill(self) {
        self.task.abort();
        assert!(self.task.await.unwrap_err().is_cancelled());
    }
}

/// The last event of the log in the relay's (transaction, position) order.
pub async fn head(pool: &Pool) -> Checkpoint {
    let client = pool.get().await.unwrap();
    client
        .query_opt(
            "select tx, position from events order by tx desc, position desc limit 1",
            &[],
        )
        .await
        .unwrap()
        .map(|r| Checkpoint {
            tx: r.get(0),
            position: r.get(1),
        })
        .unwrap_or_default()
}

pub async fn checkpoint(pool: &Pool) -> Checkpoint {
    kafka::checkpoint(pool, kafka::DEFAULT_NAME)
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Waits until the relay's saved checkpoint covers the whole log.
pub async fn wait_caught_up(pool: &Pool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let head = head(pool).await;
        let at = checkpoint(pool).await;
        if at >= head {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never caught up: at {at:?}, head {head:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One message as read back from the broker.
#[derive(Debug, Clone)]
pub struct Received {
    topic: String,
    partition: i32,
    offset: i64,
    pub key: String,
    pub value: String,
    headers: HashMap<String, String>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header on {self:?}"))
    }
}

/// Reads every message of the `<prefix>.*` topics from the beginning up to their current end,
/// in a consumer group of its own.
pub async fn read_all(brokers: &str, prefix: &str) -> Vec<Received> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    let mut remaining: HashMap<(String, i32), i64> = HashMap::new();
    for suffix in TOPICS {
        let topic = format!("{prefix}.{suffix}");
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(30))
            .unwrap();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition.id(), Duration::from_secs(30))
                .unwrap();
            assert_eq!(low, 0, "nothing was deleted from {topic}");
            assignment
                .add_partition_offset(&topic, partition.id(), Offset::Beginning)
                .unwrap();
            if high > 0 {
                remaining.insert((topic.clone(), partition.id()), high);
            }
        }
    }
    consumer.assign(&assignment).unwrap();
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !remaining.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "could not read to the end: {remaining:?}"
        );
        let Ok(message) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await
        else {
            continue;
        };
        let m = message.expect("consumer error");
        let mut headers = HashMap::new();
        if let Some(h) = m.headers() {
            for header in h.iter() {
                let value = header
                    .value
                    .map(|v| String::from_utf8(v.to_vec()).unwrap())
                    .unwrap_or_default();
                assert!(
                    headers.insert(header.key.to_owned(), value).is_none(),
                    "header {} twice",
                    header.key
                );
            }
        }
        let r = Received {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
            value: String::from_utf8(m.payload().unwrap().to_vec()).unwrap(),
            headers,
        };
        let slot = (r.topic.clone(), r.partition);
        if remaining
            .get(&slot)
            .is_some_and(|high| r.offset + 1 >= *high)
        {
            remaining.remove(&slot);
        }
        received.push(r);
    }
    received
}

/// Checks the published messages against the log:
/// - every event was published (no gaps), and nothing else was;
/// - each message is the event: topic by aggregate kind, key = stream id, value = the stored
///   data byte for byte, and the CloudEvents and Plinth headers;
/// - per key, first deliveries come in stream-version order (redeliveries may repeat older
///   events, which consumers skip by `ce_id`).
///
/// Returns the number of duplicate deliveries.
pub fn verify(events: &[StoredEvent], received: &[Received], prefix: &str) -> usize {
    let by_id: HashMap<String, &StoredEvent> =
        events.iter().map(|e| (e.event_id.to_string(), e)).collect();
    let mut delivered: HashSet<&str> = HashSet::new();
    for r in received {
        let e = by_id
            .get(r.header("ce_id"))
            .unwrap_or_else(|| panic!("a message for no event of the log: {r:?}"));
        delivered.insert(r.header("ce_id"));
        assert_eq!(r.topic, kafka::topic_for_stream(prefix, &e.stream_id));
        assert!(
            r.topic.starts_with(prefix) && !r.topic.ends_with(".unknown"),
            "{}",
            r.topic
        );
        assert_eq!(r.key, e.stream_id, "key = stream id");
        assert_eq!(r.value, e.data, "value = the stored data, exactly");
        assert_eq!(r.header("ce_specversion"), "1.0");
        assert_eq!(r.header("ce_type"), e.event_type);
        assert_eq!(r.header("ce_source"), "plinth");
        assert_eq!(r.header("ce_subject"), e.stream_id);
        let time =
            chrono::DateTime::parse_from_rfc3339(r.header("ce_time")).expect("ce_time is RFC 3339");
        assert_eq!(time, e.recorded_at);
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.header("plinth_position"), e.position.to_string());
        assert_eq!(
            r.header("plinth_stream_version"),
            e.stream_version.to_string()
        );
        assert_eq!(
            r.header("plinth_schema_version"),
            e.schema_version.to_string()
        );
        assert_eq!(
            r.header("plinth_correlation_id"),
            e.metadata.correlation_id.to_string()
        );
        assert_eq!(
            r.header("plinth_causation_id"),
            e.metadata.causation_id.to_string()
        );
        assert_eq!(
            r.header("plinth_command_id"),
            e.metadata.command_id.to_string()
        );
        assert_eq!(
            r.headers.get("plinth_actor").map(String::as_str),
            e.metadata.actor.as_deref()
        );
    }
    let missing: Vec<i64> = events
        .iter()
        .filter(|e| !delivered.contains(e.event_id.to_string().as_str()))
        .map(|e| e.position)
        .collect();
    assert!(
        missing.is_empty(),
        "{} events never published, positions {:?}…",
        missing.len(),
        &missing[..missing.len().min(10)]
    );

    let mut ordered: Vec<&Received> = received.iter().collect();
    ordered
        .sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
    let mut seen = HashSet::new();
    let mut last_version: HashMap<&str, i64> = HashMap::new();
    let mut partition_of: HashMap<&str, (&str, i32)> = HashMap::new();
    for r in ordered {
        let slot = *partition_of
            .entry(&r.key)
            .or_insert((&r.topic, r.partition));
        assert_eq!(
            slot,
            (r.topic.as_str(), r.partition),
            "a key always lands in one partition"
        );
        if !seen.insert(r.header("ce_id")) {
            continue;
        }
        let version: i64 = r.header("plinth_stream_version").parse().unwrap();
        let previous = last_version.insert(&r.key, version).unwrap_or(0);
        assert!(
            version > previous,
            "stream {} delivered version {version} after {previous}",
            r.key
        );
    }
    received.len() - events.len()
}

/// Commands touching every aggregate kind and most event types.
async fn scenario(bus: &CommandBus, store: &EventStore, tag: &str) {
    let root = submit(bus, "CreateTenant", json!({"name": format!("root {tag}")})).await;
    let child = submit(
        bus,
        "CreateTenant",
        json!({"name": "child", "parent_id": root}),
    )
    .await;
    let user = store
        .ensure_user("https://issuer", &format!("alice {tag}"))
        .await
        .unwrap();
    submit(
        bus,
        "GrantTenantAccess",
        json!({"tenant_id": root, "user_id": user, "role": "editor"}),
    )
    .await;
    let location = submit(
        bus,
        "CreateLocation",
        json!({"tenant_id": root, "name": "ams1"}),
    )
    .await;
    submit(
        bus,
        "MakeLocationAvailable",
        json!({"location_id": location, "tenant_id": child, "include_subtenants": true}),
    )
    .await;
    let rp = submit(
        bus,
        "CreateResourceProvider",
        json!({"tenant_id": root, "name": "lb", "scopes": ["loadbalancer:*"]}),
    )
    .await;
    submit(
        bus,
        "AddResourceProviderLocation",
        json!({"resource_provider_id": rp, "location_id": location}),
    )
    .await;
    submit(
        bus,
        "MakeResourceProviderAvailable",
        json!({"resource_provider_id": rp, "tenant_id": child}),
    )
    .await;
    submit(
        bus,
        "AuthorizeResourceProvider",
        json!({"resource_provider_id": rp, "tenant_id": child}),
    )
    .await;
    let provider = submit(
        bus,
        "RegisterProvider",
        json!({"tenant_id": root, "resource_provider_id": rp, "name": "Foo"}),
    )
    .await;
    submit(
        bus,
        "SetAnnotation",
        json!({"resource_id": provider, "key": "example.com/owner", "value": "team a"}),
    )
    .await;
    submit(
        bus,
        "SetStatus",
        json!({"resource_id": location, "source": "example.com/probe", "data": {"up": true}}),
    )
    .await;
    submit(
        bus,
        "AddFinalizer",
        json!({"resource_id": child, "finalizer": "example.com/cleanup"}),
    )
    .await;
    // Interleaved appends to a few streams, so commits mix streams and transactions.
    let updates = (0..20).map(|i| {
        let (bus, root, location) = (bus.clone(), root.clone(), location.clone());
        async move {
            if i % 2 == 0 {
                submit(
                    &bus,
                    "UpdateTenant",
                    json!({"tenant_id": root, "description": format!("v{i}")}),
                )
                .await
            } else {
                submit(
                    &bus,
                    "UpdateLocation",
                    json!({"location_id": location, "description": format!("v{i}")}),
                )
                .await
            }
        }
    });
    futures::future::join_all(updates).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_published_once_to_its_topic_keyed_by_stream_with_cloudevents_headers_in_stream_order(
) {
    let db = test_db().await;
    let bus = CommandBus::start(db.pool.clone(), 2);
    let store = EventStore::new(db.pool.clone());
    let prefix = unique("all");

    scenario(&bus, &store, "before").await;
    let backlog = head(&db.pool).await;
    let lag = kafka::lag(&db.pool, kafka::DEFAULT_NAME).await.unwrap();
    // A plain count: the gap-safe tail may not show the newest events yet (it waits for the
    // oldest transaction running anywhere in the cluster), but they are lag all the same.
    let logged = committed_events(&db.pool).await as u64;
    assert_eq!(
        lag.events, logged,
        "before the relay runs, the whole log is lag"
    );
    assert!(lag.seconds > 0.0);

    let running = start_relay(&db.pool, &config(&db, &brokers(), &prefix));
    // Appended while the relay is tailing (woken by notifications).
    scenario(&bus, &store, "during").await;
    wait_caught_up(&db.pool).await;
    assert!(checkpoint(&db.pool).await > backlog);
    let lag = kafka::lag(&db.pool, kafka::DEFAULT_NAME).await.unwrap();
    assert_eq!(
        (lag.events, lag.seconds),
        (0, 0.0),
        "caught up means no lag"
    );
    running.stop().await;

    let events = all_events(&db.pool).await;
    let received = read_all(&brokers(), &prefix).await;
    let duplicates = verify(&events, &received, &prefix);
    assert_eq!(duplicates, 0, "a healthy run publishes each event once");
    let topics: HashSet<&str> = received
        .iter()
        .map(|r| r.topic.rsplit('.').next().unwrap())
        .collect();
    assert_eq!(
        topics,
        TOPICS.into_iter().collect(),
        "every aggregate kind has its topic"
    );
}

/// A broker of this test's own on a free port, started and stopped with `scripts/kafka`.
struct OwnBroker {
    port: u16,
    dir: PathBuf,
}

impl OwnBroker {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("plinth-kafka-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        // Reuse the installed broker (no second pip install) when there is one.
        let shared = std::env::var_os("PLINTH_KAFKA_DIR")
            .map_or_else(|| repo().join(".kafka"), PathBuf::from);
        if shared.join("venv").is_dir() {
            std::os::unix::fs::symlink(shared.join("venv"), dir.join("venv")).unwrap();
        }
        let broker = Self { port, dir };
        broker.script("up").await;
        broker
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn command(&self, action: &str) -> std::process::Command {
        let mut command = std::process::Command::new(repo().join("scripts/kafka"));
        command
            .arg(action)
            .env("PLINTH_KAFKA_PORT", self.port.to_string())
            .env("PLINTH_KAFKA_DIR", &self.dir)
            // CI=true would wipe the data on restart; this test needs it kept.
            .env_remove("CI");
        command
    }

    async fn script(&self, action: &str) {
        let output = tokio::process::Command::from(self.command(action))
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "scripts/kafka {action} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Sends `signal` (`STOP`, `CONT`) to the broker process.
    async fn signal(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.dir.join("broker.pid")).unwrap();
        let status = tokio::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.trim())
            .status()
            .await
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// An outage the emulator survives: the broker process is frozen. It answers nothing
    /// (connections stay open, requests pile up unread) until [`Self::resume`].
    ///
    /// Not a stop and restart: noida-db acknowledges produce requests before it saves them
    /// (it writes `kafka.json` about a second later) and keeps acknowledging while it shuts
    /// down after SIGTERM, so a restart can lose a message it already confirmed. The relay
    /// then rightly checkpoints over it, and librdkafka only sees an out-of-order sequence on
    /// the next produce. Apache Kafka does not lose writes it acknowledged with `acks=all`;
    /// the relay's guarantee is conditional on that, so this test must not stop the broker.
    async fn freeze(&self) {
        self.signal("STOP").await;
    }

    async fn resume(&self) {
        self.signal("CONT").await;
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        // A frozen broker would ignore SIGTERM until SIGKILL.
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("broker.pid")) {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", pid.trim()])
                .output();
        }
        let _ = self.command("down").output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Appends a command every few milliseconds until told to stop; every one must succeed.
fn writer(
    bus: CommandBus,
    tenants: Vec<String>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<usize> {
    tokio::spawn(async move {
        let mut written = 0;
        while !*stop.borrow() {
            let tenant = &tenants[written % tenants.len()];
            submit(
                &bus,
                "UpdateTenant",
                json!({"tenant_id": tenant, "description": format!("w{written}")}),
            )
            .await;
            written += 1;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        written
    })
}

async fn wait_for_more_events(pool: &Pool, than: i64, more: i64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while head(pool).await.position < than + more {
        assert!(tokio::time::Instant::now() < deadline, "the writer stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_mid_stream_delays_publication_but_loses_nothing_and_commands_keep_succeeding(
) {
    let db = test_db().await;
    let broker = OwnBroker::start().await;
    let bus = CommandBus::start(db.pool.clone(), 2);
    let prefix = unique("outage");
    let mut tenants = Vec::new();
    for i in 0..10 {
        tenants.push(submit(&bus, "CreateTenant", json!({"name": format!("t{i}")})).await);
    }
    let running = start_relay(&db.pool, &config(&db, &broker.brokers(), &prefix));
    let (stop_writer, stop) = tokio::sync::watch::channel(false);
    let writing = writer(bus.clone(), tenants, stop);

    // Published while the broker is up...
    wait_for_more_events(&db.pool, head(&db.pool).await.position, 50).await;
    wait_caught_up(&db.pool).await;
    broker.freeze().await;
    // ...and while it is down: commands keep committing, and the checkpoint cannot pass an
    // event the broker never confirmed (everything after `at_outage` committed with the
    // broker already frozen, so it cannot have read, let alone acknowledged, any of them).
    let at_outage = head(&db.pool).await;
    wait_for_more_events(&db.pool, at_outage.position, 100).await;
    let during = checkpoint(&db.pool).await;
    assert!(
        during <= at_outage,
        "the checkpoint advanced to {during:?} without a broker (down at {at_outage:?})"
    );
    broker.resume().await;
    wait_for_more_events(&db.pool, head(&db.pool).await.position, 50).await;
    stop_writer.send_replace(true);
    let written = writing
        .await
        .expect("every command succeeded during the outage");
    assert!(written >= 200);

    wait_caught_up(&db.pool).await;
    running.stop().await;
    let events = all_events(&db.pool).await;
    let received = read_all(&broker.brokers(), &prefix).await;
    let duplicates = verify(&events, &received, &prefix);
    eprintln!(
        "outage: {} events, {duplicates} duplicate deliveries",
        events.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_batch_resumes_from_its_checkpoint_with_duplicates_but_no_gaps() {
    let db = test_db().await;
    let prefix = unique("kill");
    {
        // One long transaction: it holds back the cluster's snapshot horizon (support.rs).
        let _horizon = HORIZON.write().await;
        plinth_test_support::seed_log(&db.pool, 30_000, 500)
            .await
            .unwrap();
    }
    let config = RelayConfig {
        batch_size: 250,
        ..config(&db, &brokers(), &prefix)
    };

    let first = start_relay(&db.pool, &config);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while checkpoint(&db.pool).await.position == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never confirmed anything"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    first.kill().await;
    let killed_at = checkpoint(&db.pool).await;
    assert!(
        killed_at < head(&db.pool).await,
        "the relay must be killed with work left"
    );

    let second = start_relay(&db.pool, &config);
    wait_caught_up(&db.pool).await;
    second.stop().await;
    let events = all_events(&db.pool).await;
    assert_eq!(events.len(), 30_000);
    let received = read_all(&brokers(), &prefix).await;
    let duplicates = verify(&events, &received, &prefix);
    eprintln!("killed at {killed_at:?}: {duplicates} duplicate deliveries");
}

/// The roles (`pg_stat_activity.application_name`) of the relay sessions on the test's
/// database, once `n` of them have passed their first attempt at leadership.
pub async fn wait_for_roles(pool: &Pool, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let client = pool.get().await.unwrap();
        let rows = client
            .query(
                "select application_name from pg_stat_activity
                 where datname = current_database() and application_name like 'plinth-relay:%'
                   and application_name not like '%:starting'
                 order by application_name",
                &[],
            )
            .await
            .unwrap();
        let roles: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        if roles.len() >= n {
            return roles;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay sessions never settled: {roles:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_relay_never_publishes_alongside_the_leader_and_takes_over_when_it_dies() {
    let db = test_db().await;
    let bus = CommandBus::start(db.pool.clone(), 2);
    let store = EventStore::new(db.pool.clone());
    let prefix = unique("standby");
    let config = config(&db, &brokers(), &prefix);

    scenario(&bus, &store, "one").await;
    let leader = start_relay(&db.pool, &config);
    wait_caught_up(&db.pool).await;
    let standby = start_relay(&db.pool, &config);
    // Both sessions have decided what they are before anything else is appended.
    let roles = wait_for_roles(&db.pool, 2).await;
    assert_eq!(
        roles,
        ["plinth-relay:kafka:leader", "plinth-relay:kafka:standby"]
    );
    scenario(&bus, &store, "two").await;
    wait_caught_up(&db.pool).await;
    leader.kill().await;
    scenario(&bus, &store, "three").await;
    wait_caught_up(&db.pool).await;
    standby.stop().await;

    let events = all_events(&db.pool).await;
    let received = read_all(&brokers(), &prefix).await;
    // Two relays publishing at once would have sent scenario "two" twice.
    assert_eq!(verify(&events, &received, &prefix), 0);
}

/// Concurrent commands on a few streams (batches waiting on each other's stream locks, the
/// interleaving that once put a stream's events out of order in the log), relayed while they
/// are appended: every key must reach Kafka in version order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_concurrent_load_every_key_reaches_kafka_in_version_order() {
    let db = test_db().await;
    let bus = CommandBus::start(db.pool.clone(), 2);
    let prefix = unique("load");
    let running = start_relay(&db.pool, &config(&db, &brokers(), &prefix));
    let root = submit(&bus, "CreateTenant", json!({"name": "load"})).await;
    let mut tenants = Vec::new();
    let mut locations = Vec::new();
    for i in 0..4 {
        let name = format!("t{i}");
        tenants.push(
            submit(
                &bus,
                "CreateTenant",
                json!({"name": name, "parent_id": root}),
            )
            .await,
        );
        locations.push(
            submit(
                &bus,
                "CreateLocation",
                json!({"tenant_id": root, "name": name}),
            )
            .await,
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    let clients: Vec<_> = (0..32)
        .map(|c| {
            let (bus, tenants, locations) = (bus.clone(), tenants.clone(), locations.clone());
            tokio::spawn(async move {
                let mut n = c;
                while tokio::time::Instant::now() < deadline {
                    if n % 2 == 0 {
                        let data =
                            json!({"tenant_id": tenants[n % 4], "description": format!("{n}")});
                        submit(&bus, "UpdateTenant", data).await;
                    } else {
                        let data = json!({"location_id": locations[n % 4], "name": format!("{n}")});
                        submit(&bus, "UpdateLocation", data).await;
                    }
                    n += 32;
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    wait_caught_up(&db.pool).await;
    running.stop().await;

    let events = all_events(&db.pool).await;
    let inverted = crate::log_order::version_inversions(&events);
    assert!(
        inverted.is_empty(),
        "the log itself is out of order: {inverted:?}"
    );
    let received = read_all(&brokers(), &prefix).await;
    // `verify` checks, per key, that versions arrive in order (duplicates aside).
    verify(&events, &received, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republish_resends_exactly_the_requested_range_and_leaves_the_checkpoint_alone() {
    let db = test_db().await;
    let bus = CommandBus::start(db.pool.clone(), 2);
    let store = EventStore::new(db.pool.clone());
    let prefix = unique("live");
    scenario(&bus, &store, "x").await;
    let config = config(&db, &brokers(), &prefix);
    let running = start_relay(&db.pool, &config);
    wait_caught_up(&db.pool).await;
    running.stop().await;
    let before = checkpoint(&db.pool).await;

    let events = all_events(&db.pool).await;
    let mut positions: Vec<i64> = events.iter().map(|e| e.position).collect();
    positions.sort();
    let (from, to) = (positions[3], positions[positions.len() - 5]);
    let again = unique("again");
    let sent = kafka::republish(
        db.pool.clone(),
        RelayConfig::new(brokers(), &again),
        from,
        Some(to),
    )
    .await
    .unwrap();
    let in_range: Vec<StoredEvent> = events
        .iter()
        .filter(|e| (from..=to).contains(&e.position))
        .cloned()
        .collect();
    assert_eq!(sent, in_range.len() as u64);
    let received = read_all(&brokers(), &again).await;
    assert_eq!(verify(&in_range, &received, &again), 0);
    assert_eq!(
        checkpoint(&db.pool).await,
        before,
        "republishing must not move the live checkpoint"
    );

    // Without an upper bound: to the head of the log.
    let tail = unique("tail");
    let sent = kafka::republish(
        db.pool.clone(),
        RelayConfig::new(brokers(), &tail),
        to,
        None,
    )
    .await
    .unwrap();
    let from_to: Vec<StoredEvent> = events
        .iter()
        .filter(|e| e.position >= to)
        .cloned()
        .collect();
    assert_eq!(sent, from_to.len() as u64);
    assert_eq!(
        verify(&from_to, &read_all(&brokers(), &tail).await, &tail),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_consumer_commits_offsets_only_for_what_it_processed() {
    let db = test_db().await;
    let bus = CommandBus::start(db.pool.clone(), 2);
    let prefix = unique("consume");
    let tenant = submit(&bus, "CreateTenant", json!({"name": "c"})).await;
    for i in 0..5 {
        submit(
            &bus,
            "UpdateTenant",
            json!({"tenant_id": tenant, "description": format!("d{i}")}),
        )
        .await;
    }
    // Without a database URL of its own the relay holds its lock on a connection taken out of
    // the pool and listens with settings derived from the pool: exercised here.
    let config = RelayConfig {
        database_url: None,
        ..config(&db, &brokers(), &prefix)
    };
    let running = start_relay(&db.pool, &config);
    wait_caught_up(&db.pool).await;

    let group = unique("group");
    let mut consume = ConsumeConfig::new(brokers(), &group, vec![format!("{prefix}.tenants")]);
    consume.max_events = Some(6);
    let mut first = Vec::new();
    let stats = kafka::consume(&consume, std::future::pending(), |e| {
        first.push(e);
        async { Ok(()) }
    })
    .await
    .unwrap();
    assert_eq!(stats.handled, 6);
    let versions: Vec<i64> = first.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    assert!(first.iter().all(|e| e.subject == tenant && e.key == tenant));

    // A handler failure leaves its event uncommitted...
    submit(
        &bus,
        "UpdateTenant",
        json!({"tenant_id": tenant, "description": "seventh"}),
    )
    .await;
    wait_caught_up(&db.pool).await;
    consume.max_events = Some(1);
    let failed = kafka::consume(&consume, std::future::pending(), |_| async {
        anyhow::bail!("not today")
    })
    .await;
    assert!(failed.is_err());
    // ...so the group gets it again, and only it: the six before were committed.
    let mut second = Vec::new();
    kafka::consume(&consume, std::future::pending(), |e| {
        second.push(e);
        async { Ok(()) }
    })
    .await
    .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].stream_version, 7);
    assert_eq!(second[0].data["description"], "seventh");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_without_a_database_url_is_woken_by_notifications_not_by_its_poll() {
    let _horizon = HORIZON.read().await;
    let db = test_db().await;
    let bus = CommandBus::start(db.pool.clone(), 2);
    let prefix = unique("woken");
    let tenant = submit(&bus, "CreateTenant", json!({"name": "w"})).await;
    let config = RelayConfig {
        database_url: None,
        poll_interval: Duration::from_secs(30),
        ..config(&db, &brokers(), &prefix)
    };
    let running = start_relay(&db.pool, &config);
    // Its first read, at start-up; from here on only a wake-up (or the poll) makes it read.
    wait_caught_up(&db.pool).await;
    for i in 0..3 {
        let started = tokio::time::Instant::now();
        submit(
            &bus,
            "UpdateTenant",
            json!({"tenant_id": tenant, "description": format!("d{i}")}),
        )
        .await;
        let head = head(&db.pool).await;
        while checkpoint(&db.pool).await < head {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "update {i} was not published within 5 s: the relay waited for its poll"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    running.stop().await;
}

#[test]
fn the_event_catalogue_in_docs_matches_the_rust_types() {
    let update = std::env::var("PLINTH_UPDATE_SCHEMA").is_ok_and(|v| v == "1");
    kafka::check_docs(&repo().join("docs"), update).unwrap();
}

/// Bootstrapping a new downstream consumer from position 0 (docs/events.md): a second relay
/// with its own name (`PLINTH_KAFKA_RELAY_NAME`) keeps its own checkpoint and its own leader
/// lock, so it publishes the whole log to its own topic prefix while the live relay runs on,
/// its checkpoint untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_with_its_own_name_replays_the_whole_log_to_its_own_prefix_beside_the_live_one() {
    let db = test_db().await;
    let bus = CommandBus::start(db.pool.clone(), 2);
    let store = EventStore::new(db.pool.clone());
    scenario(&bus, &store, "boot").await;
    let live_prefix = unique("live");
    let live = start_relay(&db.pool, &config(&db, &brokers(), &live_prefix));
    wait_caught_up(&db.pool).await;
    let live_checkpoint = checkpoint(&db.pool).await;

    let new_prefix = unique("bootstrap");
    let name = unique("bootstrap-relay");
    let bootstrap = start_relay(
        &db.pool,
        &RelayConfig {
            name: name.clone(),
            ..config(&db, &brokers(), &new_prefix)
        },
    );
    let head = head(&db.pool).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while kafka::checkpoint(&db.pool, &name)
        .await
        .unwrap()
        .unwrap_or_default()
        < head
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the named relay never published the log"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bootstrap.stop().await;

    let events = all_events(&db.pool).await;
    let received = read_all(&brokers(), &new_prefix).await;
    assert_eq!(verify(&events, &received, &new_prefix), 0, "no duplicates");
    assert_eq!(
        checkpoint(&db.pool).await,
        live_checkpoint,
        "the live relay's checkpoint must not move"
    );
    // The live relay is still the leader of its name and still publishing.
    let tenant = submit(&bus, "CreateTenant", json!({"name": "after-bootstrap"})).await;
    wait_caught_up(&db.pool).await;
    live.stop().await;
    let live_received = read_all(&brokers(), &live_prefix).await;
    assert!(live_received.iter().any(|r| r.key == tenant));
}
