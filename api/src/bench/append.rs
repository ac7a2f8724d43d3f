//! `plinth bench append`: HTTP command throughput beside a baseline measured in the same run:
//! raw tokio-postgres inserts of the same event rows, one transaction per event, on as many
//! connections as there are clients. The ratio is what the target is stated in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;
use tokio_postgres::NoTls;

use plinth_test_support::ScratchDatabase;

use crate::app;
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub(crate) struct BenchAppendArgs {
    /// Server to create the (temporary) benchmark database on.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Concurrent clients, one phase each.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    clients: Vec<usize>,
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Group-commit writers of the server under test.
    #[arg(long, default_value_t = 2)]
    writers: usize,
}

const SECRET: &str = "bench-secret";
const ADMIN: &str = "bench-admin";

pub(crate) async fn run(args: BenchAppendArgs) -> anyhow::Result<()> {
    let db = ScratchDatabase::create(&args.database_url, "plinth_bench_append").await?;
    let result = measure(&args, &db.url).await;
    db.drop().await?;
    let rows = result?;
    println!("\n| clients | plinth commands/s (HTTP) | commands per commit | baseline inserts/s (1 tx/event) | ratio |");
    println!("|---:|---:|---:|---:|---:|");
    for r in &rows {
        let ratio = r.plinth / r.baseline;
        println!(
            "| {} | {:.0} | {:.1} | {:.0} | {ratio:.2}× |",
            r.clients, r.plinth, r.per_tx, r.baseline
        );
    }
    Ok(())
}

struct Row {
    clients: usize,
    plinth: f64,
    baseline: f64,
    /// Average group-commit batch: Plinth's events per transaction in the phase.
    per_tx: f64,
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

async fn measure(args: &BenchAppendArgs, url: &str) -> anyhow::Result<Vec<Row>> {
    let mut settings = Settings::for_database(url, SECRET, &[ADMIN]);
    settings.db_pool_size = 8;
    settings.writers = args.writers;
    let app = app::spawn(settings).await?;
    let base = format!("http://{}", app.address);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let token = crate::auth::mint_dev_token(SECRET, ADMIN, 3600)?;
    let max_clients = args.clients.iter().copied().max().unwrap_or(1);

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
    for &clients in &args.clients {
        let duration = Duration::from_secs(args.seconds);
        let baseline = run_baseline(&baseline_conns[..clients], duration).await?;
        let before = last_position(&baseline_conns[0]).await?;
        let plinth = run_http(&http, &base, &token, &tenants[..clients], duration).await?;
        let per_tx = events_per_transaction(&baseline_conns[0], before).await?;
        eprintln!("{clients:>3} clients: plinth {plinth:.0}/s ({per_tx:.1} commands per commit), baseline {baseline:.0}/s");
        rows.push(Row {
            clients,
            plinth,
            baseline,
            per_tx,
        });
    }
    app.handle.abort();
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

/// Each client creates locations in its own tenant as fast as it can.
async fn run_http(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    tenants: &[String],
    duration: Duration,
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for tenant in tenants {
        let (http, url, token, tenant) = (
            http.clone(),
            format!("{base}/v1/commands"),
            token.to_owned(),
            tenant.clone(),
        );
        let (done, failed) = (done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"type": "CreateLocation", "data": {"tenant_id": tenant, "name": "benchmark location"}});
            while start.elapsed() < duration {
                match http.post(&url).bearer_auth(&token).json(&body).send().await {
                    Ok(r) if r.status().as_u16() == 201 => done.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let failures = failed.load(Ordering::Relaxed);
    anyhow::ensure!(
        failures == 0,
        "{failures} commands failed during the benchmark"
    );
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
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
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in clients {
        let (client, done) = (client.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let statement = client
                .prepare(
                    "insert into events (event_id, stream_id, stream_version, event_type, schema_version,
                                         data, metadata, recorded_at, hash)
                     values ($1, $2, 1, 'LocationCreated', 1, $3::text::json, $4::text::json, now(), $5)",
                )
                .await?;
            let data = r#"{"location_id":"lctnloc-bench","tenant_id":"tnntten-bench","name":"benchmark location","description":null}"#;
            while start.elapsed() < duration {
                let id = uuid::Uuid::now_v7();
                let metadata = format!(
                    r#"{{"actor":"idntusr-bench","command_id":"{id}","correlation_id":"{id}","causation_id":"{id}"}}"#
                );
                let stream = format!("baseline-{id}");
                client.execute(&statement, &[&id, &stream, &data, &metadata, &vec![0u8; 32]]).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}
