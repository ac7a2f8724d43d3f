//! `plinth bench append`: HTTP command throughput beside a baseline measured in the same run:
//! raw tokio-postgres inserts of the same event rows, one transaction per event, on as many
//! connections as there are clients, the two taking turns in rounds. The ratio is what the
//! target is stated in. Each phase also reports latency and CPU per command: the server's (its
//! runtime's threads, apart from the HTTP client) and PostgreSQL's, which tells whether the
//! database or Plinth is the cost.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::json;
use tokio_postgres::NoTls;

use plinth_test_support::ScratchDatabase;

use super::cpu::{CpuSample, CpuSpent};
use super::load_client::{encode_post, KeepAliveConnection};
use super::server::{Server, SERVER_THREADS};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub(crate) struct BenchAppendArgs {
    #[command(flatten)]
    pub(crate) server: super::ScratchServer,
    /// Concurrent clients, one phase each.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    clients: Vec<usize>,
    /// Seconds per phase (Plinth's, and the baseline's), each run as rounds alternating with
    /// the other's.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Group-commit writers of the server under test.
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// Also draw commands/s and p99 latency against clients into this PNG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// The HTTP client that sends the commands (`reqwest` to compare with the general-purpose
    /// client of earlier measurements).
    #[arg(long, value_enum, default_value_t = LoadClient::KeepAlive)]
    load_client: LoadClient,
}

/// How the benchmark sends its commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LoadClient {
    /// A minimal keep-alive HTTP/1.1 connection per client ([`super::load_client`]).
    KeepAlive,
    /// reqwest, as until 2026-12-01.
    Reqwest,
}

/// What to measure.
#[derive(Debug, Clone)]
pub(crate) struct AppendOptions {
    pub(crate) database_url: String,
    pub(crate) clients: Vec<usize>,
    pub(crate) phase: Duration,
    pub(crate) writers: usize,
    pub(crate) load_client: LoadClient,
}

/// One client count's figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AppendRow {
    pub(crate) clients: usize,
    pub(crate) commands_per_s: f64,
    pub(crate) baseline_per_s: f64,
    pub(crate) ratio_to_baseline: f64,
    /// Average group-commit batch: Plinth's commands per transaction in the phase.
    pub(crate) commands_per_commit: f64,
    /// CPU of the server's threads per command, in µs.
    pub(crate) cpu_us_per_command: f64,
    /// CPU of the PostgreSQL processes serving the benchmark's database per command, in µs.
    pub(crate) pg_cpu_us_per_command: f64,
    /// CPU of the benchmark's HTTP client per command, in µs: not Plinth's, but it shares the
    /// machine's cores with the server and PostgreSQL.
    pub(crate) client_cpu_us_per_command: f64,
    /// Share of the machine's CPU busy during the Plinth phase (0–1).
    pub(crate) machine_busy: f64,
    /// The same PostgreSQL figure per baseline insert, in µs.
    pub(crate) baseline_pg_cpu_us_per_insert: f64,
    /// CPU of the baseline's client (tokio-postgres) per insert, in µs.
    pub(crate) baseline_client_cpu_us_per_insert: f64,
    /// Share of the machine's CPU busy during the baseline phase (0–1).
    pub(crate) baseline_machine_busy: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) baseline_p50_ms: f64,
    pub(crate) baseline_p99_ms: f64,
}

const SECRET: &str = "bench-secret";
const ADMIN: &str = "bench-admin";
/// Rounds each phase is split into, the baseline's and Plinth's alternating.
const ROUNDS: u32 = 3;

pub(crate) async fn run(args: BenchAppendArgs) -> anyhow::Result<()> {
    let rows = bench(&AppendOptions {
        database_url: args.server.database_url,
        clients: args.clients,
        phase: Duration::from_secs(args.seconds),
        writers: args.writers,
        load_client: args.load_client,
    })
    .await?;
    print_table(&rows);
    if let Some(path) = args.plot {
        super::plot::append(&rows, &path)?;
        eprintln!("plot written to {}", path.display());
    }
    Ok(())
}

pub(crate) fn print_table(rows: &[AppendRow]) {
    println!(
        "\n| clients | plinth commands/s (HTTP) | p50 / p99 ms | commands per commit \
         | server CPU µs/command | PostgreSQL CPU µs/command | client CPU µs/command \
         | baseline inserts/s (1 tx/event) | baseline p50 / p99 ms | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.1} / {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} / {:.1} | {:.2}× |",
            r.clients,
            r.commands_per_s,
            r.p50_ms,
            r.p99_ms,
            r.commands_per_commit,
            r.cpu_us_per_command,
            r.pg_cpu_us_per_command,
            r.client_cpu_us_per_command,
            r.baseline_per_s,
            r.baseline_p50_ms,
            r.baseline_p99_ms,
            r.ratio_to_baseline
        );
    }
}

/// Every phase on a throwaway database.
pub(crate) async fn bench(options: &AppendOptions) -> anyhow::Result<Vec<AppendRow>> {
    let db = ScratchDatabase::create(&options.database_url, "plinth_bench_append").await?;
    let result = measure(options, &db.url, &db.name).await;
    db.drop().await?;
    result
}

/// A phase's completed operations, its length and their latencies (µs).
struct Phase {
    done: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl Phase {
    fn empty() -> anyhow::Result<Self> {
        Ok(Self {
            done: 0,
            elapsed: Duration::ZERO,
            latency: histogram()?,
        })
    }

    /// Adds another round of the same phase.
    fn absorb(&mut self, round: Phase) -> anyhow::Result<()> {
        self.done += round.done;
        self.elapsed += round.elapsed;
        self.latency.add(&round.latency)?;
        Ok(())
    }

    fn per_second(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64()
    }

    fn ms_at(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

async fn last_position(client: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(client
        .query_one("select coalesce(max(position), 0) from events", &[])
        .await?
        .get(0))
}

async fn events_per_transaction(
    client: &tokio_postgres::Client,
    after: i64,
) -> anyhow::Result<f64> {
    let row = client
        .query_one(
            "select count(*)::float8 / greatest(count(distinct tx), 1) from events
             where position > $1 and event_type = 'LocationCreated' and stream_id like 'lctnloc-%'",
            &[&after],
        )
        .await?;
    Ok(row.get(0))
}

async fn measure(
    options: &AppendOptions,
    url: &str,
    database: &str,
) -> anyhow::Result<Vec<AppendRow>> {
    let mut settings = Settings::for_database(url, SECRET, &[ADMIN]);
    settings.db_pool_size = 8;
    settings.writers = options.writers;
    let server = Server::start(settings, false).await?;
    let base = server.base_url();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let token = crate::auth::mint_dev_token(SECRET, ADMIN, 3600)?;
    let max_clients = options.clients.iter().copied().max().unwrap_or(1);

    let root = post(
        &http,
        &base,
        &token,
        json!({"type": "CreateTenant", "data": {"name": "bench"}}),
    )
    .await?;
    let mut tenants = Vec::new();
    for i in 0..max_clients {
        let data = json!({"name": format!("client-{i}"), "parent_id": root});
        tenants.push(
            post(
                &http,
                &base,
                &token,
                json!({"type": "CreateTenant", "data": data}),
            )
            .await?,
        );
    }

    // The load runs as an ordinary user whose editor role is inherited from the root, so every
    // command pays for the full authorization path (the grant chain is read and locked).
    let user_token = crate::auth::mint_dev_token(SECRET, "bench-user", 3600)?;
    let me: serde_json::Value = http
        .get(format!("{base}/v1/me"))
        .bearer_auth(&user_token)
        .send()
        .await?
        .json()
        .await?;
    let grant = json!({"tenant_id": root, "user_id": me["id"], "role": "editor"});
    post(
        &http,
        &base,
        &token,
        json!({"type": "GrantTenantAccess", "data": grant}),
    )
    .await?;
    let token = user_token;

    let baseline_conns = connect_many(url, max_clients).await?;
    let mut rows = Vec::new();
    for &clients in &options.clients {
        let target = Target {
            address: server.address,
            token: &token,
        };
        let at = last_position(&baseline_conns[0]).await?;
        // The baseline and Plinth take turns, a round each at a time, so that both sample the
        // same stretches of a machine whose speed drifts (its disk's flush latency above all):
        // one long phase each let the ratio of two runs differ by half.
        let round = options.phase / ROUNDS;
        let (mut baseline, mut plinth) = (Phase::empty()?, Phase::empty()?);
        let (mut baseline_spent, mut plinth_spent) = (CpuSpent::default(), CpuSpent::default());
        for _ in 0..ROUNDS {
            let before = CpuSample::now(SERVER_THREADS, database);
            baseline.absorb(run_baseline(&baseline_conns[..clients], round).await?)?;
            let between = CpuSample::now(SERVER_THREADS, database);
            baseline_spent.add(&before, &between);
            let phase = match options.load_client {
                LoadClient::KeepAlive => {
                    run_keep_alive(&target, &tenants[..clients], round).await?
                }
                LoadClient::Reqwest => {
                    run_http(&http, &base, &token, &tenants[..clients], round).await?
                }
            };
            plinth.absorb(phase)?;
            plinth_spent.add(&between, &CpuSample::now(SERVER_THREADS, database));
        }
        let baseline_cpu = baseline_spent.per_command(baseline.done);
        let cpu = plinth_spent.per_command(plinth.done);
        let per_commit = events_per_transaction(&baseline_conns[0], at).await?;
        let row = AppendRow {
            clients,
            commands_per_s: plinth.per_second(),
            baseline_per_s: baseline.per_second(),
            ratio_to_baseline: plinth.per_second() / baseline.per_second(),
            commands_per_commit: per_commit,
            cpu_us_per_command: cpu.server_us,
            pg_cpu_us_per_command: cpu.postgres_us,
            client_cpu_us_per_command: cpu.client_us,
            machine_busy: cpu.machine_busy,
            baseline_pg_cpu_us_per_insert: baseline_cpu.postgres_us,
            baseline_client_cpu_us_per_insert: baseline_cpu.client_us,
            baseline_machine_busy: baseline_cpu.machine_busy,
            p50_ms: plinth.ms_at(0.5),
            p99_ms: plinth.ms_at(0.99),
            baseline_p50_ms: baseline.ms_at(0.5),
            baseline_p99_ms: baseline.ms_at(0.99),
        };
        eprintln!(
            "{clients:>3} clients: plinth {:.0}/s ({per_commit:.1} commands per commit, \
             p99 {:.1} ms; CPU per command: server {:.0} µs, PostgreSQL {:.0} µs, client {:.0} µs; \
             machine {:.0} % busy), baseline {:.0}/s (PostgreSQL {:.0} µs, client {:.0} µs per \
             insert; machine {:.0} % busy)",
            row.commands_per_s,
            row.p99_ms,
            cpu.server_us,
            cpu.postgres_us,
            cpu.client_us,
            cpu.machine_busy * 100.0,
            row.baseline_per_s,
            baseline_cpu.postgres_us,
            baseline_cpu.client_us,
            baseline_cpu.machine_busy * 100.0,
        );
        rows.push(row);
    }
    Ok(rows)
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: serde_json::Value,
) -> anyhow::Result<String> {
    let response = http
        .post(format!("{base}/v1/commands"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "setup command failed: {status} {body}");
    Ok(body["stream_id"]
        .as_str()
        .context("no stream_id")?
        .to_owned())
}

/// Where the load goes and as whom.
struct Target<'a> {
    address: std::net::SocketAddr,
    token: &'a str,
}

/// The body of each client's commands: a location in its own tenant.
fn create_location(tenant: &str) -> serde_json::Value {
    json!({"type": "CreateLocation", "data": {"tenant_id": tenant, "name": "benchmark location"}})
}

/// Each client creates locations in its own tenant as fast as it can, on its own keep-alive
/// connection.
async fn run_keep_alive(
    target: &Target<'_>,
    tenants: &[String],
    duration: Duration,
) -> anyhow::Result<Phase> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for tenant in tenants {
        let body = serde_json::to_vec(&create_location(tenant))?;
        let request = encode_post(target.address, "/v1/commands", target.token, &body);
        let mut connection = KeepAliveConnection::connect(target.address).await?;
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram()?;
            let mut failed = 0u64;
            while start.elapsed() < duration {
                let sent = Instant::now();
                match connection.send(&request).await? {
                    201 => latency.record(sent.elapsed().as_micros().max(1) as u64)?,
                    _ => failed += 1,
                }
            }
            anyhow::Ok((latency, failed))
        }));
    }
    collect(start, tasks).await
}

/// Each client creates locations in its own tenant as fast as it can, through reqwest.
async fn run_http(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    tenants: &[String],
    duration: Duration,
) -> anyhow::Result<Phase> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for tenant in tenants {
        let (http, url, token, tenant) = (
            http.clone(),
            format!("{base}/v1/commands"),
            token.to_owned(),
            tenant.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let body = create_location(&tenant);
            let mut latency = histogram()?;
            let mut failed = 0u64;
            while start.elapsed() < duration {
                let sent = Instant::now();
                match http.post(&url).bearer_auth(&token).json(&body).send().await {
                    Ok(r) if r.status().as_u16() == 201 => {
                        latency.record(sent.elapsed().as_micros().max(1) as u64)?;
                    }
                    _ => failed += 1,
                }
            }
            anyhow::Ok((latency, failed))
        }));
    }
    collect(start, tasks).await
}

/// A client task: its latencies and its count of failed commands.
type ClientTask = tokio::task::JoinHandle<anyhow::Result<(Histogram<u64>, u64)>>;

/// The clients' latencies merged into one phase; any failed command fails the benchmark.
async fn collect(start: Instant, tasks: Vec<ClientTask>) -> anyhow::Result<Phase> {
    let mut latency = histogram()?;
    let mut failures = 0;
    for t in tasks {
        let (h, failed) = t.await??;
        latency.add(&h)?;
        failures += failed;
    }
    anyhow::ensure!(
        failures == 0,
        "{failures} commands failed during the benchmark"
    );
    Ok(Phase {
        done: latency.len(),
        elapsed: start.elapsed(),
        latency,
    })
}

async fn connect_many(url: &str, n: usize) -> anyhow::Result<Vec<Arc<tokio_postgres::Client>>> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(connection);
        clients.push(Arc::new(client));
    }
    Ok(clients)
}

/// The same kind of event row, inserted one per transaction.
async fn run_baseline(
    clients: &[Arc<tokio_postgres::Client>],
    duration: Duration,
) -> anyhow::Result<Phase> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in clients {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let statement = client
                .prepare(
                    "insert into events (event_id, stream_id, stream_version, event_type, schema_version,
                                         data, metadata, recorded_at, hash)
                     values ($1, $2, 1, 'LocationCreated', 1, $3::text::json, $4::text::json, now(), $5)",
                )
                .await?;
            let data = r#"{"location_id":"lctnloc-bench","tenant_id":"tnntten-bench","name":"benchmark location","description":null}"#;
            let mut latency = histogram()?;
            while start.elapsed() < duration {
                let sent = Instant::now();
                let id = uuid::Uuid::now_v7();
                let metadata = format!(
                    r#"{{"actor":"idntusr-bench","command_id":"{id}","correlation_id":"{id}","causation_id":"{id}"}}"#
                );
                let stream = format!("baseline-{id}");
                client.execute(&statement, &[&id, &stream, &data, &metadata, &vec![0u8; 32]]).await?;
                latency.record(sent.elapsed().as_micros().max(1) as u64)?;
            }
            anyhow::Ok(latency)
        }));
    }
    let mut latency = histogram()?;
    for t in tasks {
        latency.add(&t.await??)?;
    }
    Ok(Phase {
        done: latency.len(),
        elapsed: start.elapsed(),
        latency,
    })
}
