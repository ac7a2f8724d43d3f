//! Shared test setup: a fresh database per test, migrated, plus a running Plinth app.

use deadpool_postgres::Pool;
use plinth_projections::read::ProjectionSet;
use plinth_test_support::{
    test_server_url, write_platform_log, PlatformShape, ScratchDatabase, SyntheticPlatform,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// A fresh, migrated database; dropped by nobody (names are unique, CI machines are fresh, and
/// `scripts/test` drops what earlier runs left).
pub struct TestDb {
    pub url: String,
    pub name: String,
    pub pool: Pool,
}

pub async fn test_db() -> TestDb {
    test_db_on(&test_server_url()).await
}

/// A fresh, migrated database on the server of `server_url` (e.g. a test's private cluster).
pub async fn test_db_on(server_url: &str) -> TestDb {
    let db = ScratchDatabase::create(server_url, "plinth_test")
        .await
        .expect("PostgreSQL must be running: run scripts/test, which starts it");
    let pool = db.migrated_pool(16).await.expect("migrations");
    TestDb {
        url: db.url,
        name: db.name,
        pool,
    }
}

/// Writes a synthetic platform's log of `events` events (`tenants` tenants, `resource_providers`
/// resource providers) into `db` and projects it. Its transactions hold the cluster's snapshot
/// horizon back for seconds: callers hold [`HORIZON`] for writing.
pub async fn synthetic_platform(
    db: &TestDb,
    events: u64,
    tenants: usize,
    resource_providers: usize,
) -> SyntheticPlatform {
    let shape = PlatformShape {
        events,
        tenants,
        resource_providers,
    };
    let platform = write_platform_log(&db.pool, &shape, &mut StdRng::seed_from_u64(7))
        .await
        .expect("synthetic log");
    plinth_projections::read::rebuild(&db.pool, ProjectionSet::all(), |_| {})
        .await
        .expect("rebuild");
    platform
}

/// The secret test apps sign development tokens with.
/// Tests that bound how soon an event is seen hold this for reading; tests that keep every core
/// busy for seconds (`plinth seed`, a CPU hog), which would stretch those bounds, hold it for
/// writing, so the two never overlap. (It was first for tests that hold a transaction open on
/// purpose: the gap-safe tail's horizon was the whole cluster's, so one test's open transaction
/// stalled every other test's readers. Since ADR 0023 the horizon is per database; those tests
/// still hold it, harmlessly.)
pub static HORIZON: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub const SECRET: &str = "test-secret";
/// The platform administrator of test apps.
pub const ADMIN: &str = "platform-admin";

/// A running Plinth (HTTP) on a fresh database. Derefs to its [`Api`] client.
pub struct TestApp {
    pub api: Api,
    pub db: TestDb,
    pub app: plinth_api::app::RunningApp,
}

/// An HTTP client of a running app, cheap to clone into concurrent tasks.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl std::ops::Deref for TestApp {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// A response: status and JSON body (`Null` when the body is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: serde_json::Value,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with_admins(&[ADMIN]).await
}

/// A running Plinth whose `PLINTH_PLATFORM_ADMINS` is `admins`.
pub async fn spawn_app_with_admins(admins: &[&str]) -> TestApp {
    let db = test_db().await;
    let settings = plinth_api::settings::Settings::for_database(&db.url, SECRET, admins);
    spawn_app_on(db, settings).await
}

/// A running Plinth with `settings` (which name `db`).
pub async fn spawn_app_on(db: TestDb, settings: plinth_api::settings::Settings) -> TestApp {
    if std::env::var("PLINTH_TEST_LOG").is_ok() {
        plinth_api::telemetry::init_tracing();
    }
    let app = plinth_api::app::spawn(settings).await.expect("app starts");
    TestApp {
        api: Api {
            base: format!("http://{}", app.address),
            http: reqwest::Client::new(),
        },
        db,
        app,
    }
}

impl TestApp {
    /// A development token for `subject`.
    pub fn token(&self, subject: &str) -> String {
        plinth_api::auth::mint_dev_token(SECRET, subject, 3600).unwrap()
    }

    pub fn admin(&self) -> String {
        self.token(ADMIN)
    }

    /// Records a user by its first request; returns its id.
    pub async fn user(&self, subject: &str) -> String {
        let me = self.get(&self.token(subject), "/v1/me").await;
        assert_eq!(me.status, 200, "{me:?}");
        me.body["id"].as_str().unwrap().to_owned()
    }

    /// A client for concurrent tasks.
    pub fn api(&self) -> Api {
        self.api.clone()
    }
}

impl Api {
    async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Reply {
            status,
            content_type,
            body,
        }
    }

    /// `POST /v1/commands` with `{"type", "data"}`.
    pub async fn command(&self, token: &str, command_type: &str, data: serde_json::Value) -> Reply {
        self.post_raw(
            token,
            serde_json::json!({"type": command_type, "data": data}).to_string(),
            &[],
        )
        .await
    }

    /// A command that must succeed; returns its stream id.
    pub async fn ok(&self, token: &str, command_type: &str, data: serde_json::Value) -> String {
        let reply = self.command(token, command_type, data).await;
        assert_eq!(reply.status, 201, "{command_type}: {reply:?}");
        reply.body["stream_id"].as_str().unwrap().to_owned()
    }

    /// `POST /v1/commands` with any body and extra headers.
    pub async fn post_raw(&self, token: &str, body: String, headers: &[(&str, &str)]) -> Reply {
        let mut request = self
            .http
            .post(format!("{}/v1/commands", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::reply(request.send().await.unwrap()).await
    }

    pub async fn get(&self, token: &str, path: &str) -> Reply {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        Self::reply(response).await
    }
}

/// The `plinth` binary built beside this test binary (`cargo test --workspace --all-targets`,
/// as `scripts/test` runs it, builds both into the same profile directory).
pub fn plinth_binary() -> std::path::PathBuf {
    let test_exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/it-<hash> → target/<profile>/plinth
    let binary = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("plinth"))
        .expect("the test binary lives in target/<profile>/deps");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p plinth-api` (scripts/test does)",
        binary.display()
    );
    binary
}

/// Sends SIGTERM to a spawned `plinth` (graceful shutdown); the caller waits for its exit.
pub fn send_sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Runs the `plinth` binary with `args`; returns whether it succeeded, and its stdout and stderr
/// together.
pub fn run_plinth(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(plinth_binary())
        .args(args)
        .output()
        .expect("plinth runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every event committed before the call, in the order every reader (projectors, relay, audit)
/// reads it. The gap-safe tail hides a committed event while any older transaction of this
/// database runs (an autovacuum's analyze, say), so this reads until it shows at least as many events as
/// `events` held when it was called (a CI run once failed on a single read, up to 30 s here).
pub async fn all_events(pool: &Pool) -> Vec<plinth_commands::StoredEvent> {
    let committed = committed_events(pool).await;
    events_eventually(pool, committed as usize).await
}

/// How many events are committed, by a plain count: unlike the gap-safe tail it never waits for
/// other transactions.
pub async fn committed_events(pool: &Pool) -> i64 {
    pool.get()
        .await
        .unwrap()
        .query_one("select count(*) from events", &[])
        .await
        .unwrap()
        .get(0)
}

/// One pass over the log's gap-safe tail as it stands.
async fn read_log(pool: &Pool) -> Vec<plinth_commands::StoredEvent> {
    let store = plinth_commands::EventStore::new(pool.clone());
    let mut events = Vec::new();
    let mut after = plinth_commands::Checkpoint::default();
    loop {
        let batch = store.read_after(after, 10_000).await.unwrap();
        let Some(last) = batch.last() else {
            return events;
        };
        after = last.checkpoint();
        events.extend(batch);
    }
}

/// The log once its tail shows at least `n` events: the tail waits for the oldest transaction
/// running in this database (ADR 0023), which may delay it briefly (up to 30 s here).
pub async fn events_eventually(pool: &Pool, n: usize) -> Vec<plinth_commands::StoredEvent> {
    for _ in 0..3000 {
        let events = read_log(pool).await;
        if events.len() >= n {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the log never showed {n} events");
}

/// A long transaction in another database of the same PostgreSQL cluster, as a neighbour holds
/// one (another tenant of the server, another test's bulk load, a CREATE or DROP DATABASE): it
/// has a transaction id older than anything written after it, so it is in every snapshot of the
/// cluster, yet it can never write Plinth's log (ADR 0023). The database is a fresh empty one,
/// dropped by [`NeighbourTransaction::end`] (or by `scripts/test` if the test fails first).
pub struct NeighbourTransaction {
    client: tokio_postgres::Client,
    db: ScratchDatabase,
    /// Its transaction id.
    pub xid: i64,
}

impl NeighbourTransaction {
    /// Opens the transaction and gives it an id.
    pub async fn open() -> Self {
        let db = ScratchDatabase::create(&test_server_url(), "plinth_test")
            .await
            .expect("a neighbour database");
        let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .expect("a connection to the neighbour database");
        tokio::spawn(connection);
        client.batch_execute("begin").await.unwrap();
        let xid = client
            .query_one("select pg_current_xact_id()::text::bigint", &[])
            .await
            .unwrap()
            .get(0);
        Self { client, db, xid }
    }

    /// Its database's URL (for more transactions there).
    pub fn url(&self) -> &str {
        &self.db.url
    }

    /// Rolls it back and drops its database.
    pub async fn end(self) {
        self.client.batch_execute("rollback").await.unwrap();
        drop(self.client);
        self.db
            .drop()
            .await
            .expect("the neighbour database dropped");
    }
}
