//! Reads through PostgreSQL streaming replicas (ADR 0026): read throughput with 0, 1, … of the
//! given replicas (0 is the baseline, measured in the same run), and the read-your-writes
//! latency (command sent until its `?min_position` read answered) with them, with the share of
//! those reads a replica answered (`plinth-read-from`).
//!
//! Closed loop for throughput: `clients` tasks each read a random tenant back to back. The
//! replicas are standbys of the server the scratch database is made on (`scripts/replica`
//! makes them for a development cluster); on one machine they share its cores with the primary,
//! so the figures show the cost and the routing, not the capacity more machines would add.

use std::time::Duration;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use rand::Rng as _;
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use plinth_test_support::ScratchDatabase;

use super::server::Server;
use crate::replicas::route::READ_FROM;
use crate::settings::Settings;

const SECRET: &str = "bench-secret";
const ADMIN: &str = "bench-admin";
const TENANTS: usize = 200;

/// `plinth bench replicas`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchReplicasArgs {
    #[command(flatten)]
    pub(crate) server: super::ScratchServer,
    /// Server URLs (no database name) of hot standbys of that server, comma-separated
    /// (`scripts/replica url N`).
    #[arg(long, value_delimiter = ',', required = true)]
    replica: Vec<String>,
    /// Concurrent readers.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Length of each throughput run, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Commands per second of the read-your-writes run (as long as a throughput run).
    #[arg(long, default_value_t = 50)]
    rate: u32,
}

#[derive(Debug, Serialize)]
struct Run {
    replicas: usize,
    reads_per_second: f64,
    read_p50_ms: f64,
    read_p99_ms: f64,
    /// Reads answered by the primary, then by each replica.
    served_by: Vec<u64>,
    errors: u64,
    /// Command sent until its `?min_position` read answered 200.
    read_your_writes_p50_ms: f64,
    read_your_writes_p99_ms: f64,
    /// Of those reads, the share a replica answered.
    read_your_writes_on_replicas: f64,
}

pub(crate) async fn run(args: BenchReplicasArgs) -> anyhow::Result<()> {
    let db = ScratchDatabase::create(&args.server.database_url, "plinth_bench_replicas").await?;
    let result = measure(&args, &db.url, &db.name).await;
    db.drop().await?;
    let runs = result?;
    println!("{}", serde_json::to_string_pretty(&runs)?);
    Ok(())
}

async fn measure(args: &BenchReplicasArgs, url: &str, name: &str) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    let mut ids = Vec::new();
    for k in 0..=args.replica.len() {
        let mut settings = Settings::for_database(url, SECRET, &[ADMIN]);
        settings.read_database_urls = args.replica[..k]
            .iter()
            .map(|r| format!("{}/{name}", r.trim_end_matches('/')))
            .collect();
        settings.db_pool_size = args.clients.max(16);
        let server = Server::start(settings, true).await?;
        let base = server.base_url();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(args.clients * 2)
            .timeout(Duration::from_secs(30))
            .build()?;
        let token = crate::auth::mint_dev_token(SECRET, ADMIN, 3600)?;
        if ids.is_empty() {
            for i in 0..TENANTS {
                let (id, _) = create(&http, &base, &token, &format!("bench {i}")).await?;
                ids.push(id);
            }
        }
        wait_in_rotation(&http, &base, k).await?;
        let mut run = throughput(args, &http, &base, &token, &ids, k).await?;
        read_your_writes(args, &http, &base, &token, &mut run).await?;
        eprintln!(
            "{k} replicas: {:.0} reads/s, read-your-writes p50 {:.1} ms",
            run.reads_per_second, run.read_your_writes_p50_ms
        );
        runs.push(run);
        drop(server);
    }
    Ok(runs)
}

async fn create(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
) -> anyhow::Result<(String, i64)> {
    let outcome: serde_json::Value = http
        .post(format!("{base}/v1/commands"))
        .bearer_auth(token)
        .json(&json!({"type": "CreateTenant", "data": {"name": name}}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((
        outcome["stream_id"]
            .as_str()
            .context("stream_id")?
            .to_owned(),
        outcome["position"].as_i64().context("position")?,
    ))
}

/// Until `/readyz` lists `k` replicas, each in rotation (60 s at most).
async fn wait_in_rotation(http: &reqwest::Client, base: &str, k: usize) -> anyhow::Result<()> {
    for _ in 0..600 {
        let text = http
            .get(format!("{base}/readyz"))
            .send()
            .await?
            .text()
            .await?;
        if text.lines().filter(|l| l.contains(": in rotation")).count() == k {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the replicas did not get in rotation")
}

/// Who answered: 0 the primary, n replica n.
fn served_by(response: &reqwest::Response) -> usize {
    response
        .headers()
        .get(READ_FROM)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("replica-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn throughput(
    args: &BenchReplicasArgs,
    http: &reqwest::Client,
    base: &str,
    token: &str,
    ids: &[String],
    k: usize,
) -> anyhow::Result<Run> {
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.clients)
        .map(|_| {
            let (http, base, token, ids) = (
                http.clone(),
                base.to_owned(),
                token.to_owned(),
                ids.to_vec(),
            );
            tokio::spawn(async move {
                let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let mut served = vec![0u64; k + 1];
                let mut errors = 0u64;
                while Instant::now() < end {
                    let id = &ids[rand::thread_rng().gen_range(0..ids.len())];
                    let sent = Instant::now();
                    match http
                        .get(format!("{base}/v1/tenants/{id}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => {
                            served[served_by(&r).min(k)] += 1;
                            let _ = r.bytes().await;
                            latency.record(micros(sent)).unwrap();
                        }
                        _ => errors += 1,
                    }
                }
                (latency, served, errors)
            })
        })
        .collect();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut served = vec![0u64; k + 1];
    let mut errors = 0;
    for task in tasks {
        let (l, s, e) = task.await?;
        latency.add(l)?;
        served.iter_mut().zip(s).for_each(|(a, b)| *a += b);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(Run {
        replicas: k,
        reads_per_second: latency.len() as f64 / elapsed,
        read_p50_ms: ms(&latency, 0.5),
        read_p99_ms: ms(&latency, 0.99),
        served_by: served,
        errors,
        read_your_writes_p50_ms: 0.0,
        read_your_writes_p99_ms: 0.0,
        read_your_writes_on_replicas: 0.0,
    })
}

/// Commands at `rate`/s, each read back with `?min_position`.
async fn read_your_writes(
    args: &BenchReplicasArgs,
    http: &reqwest::Client,
    base: &str,
    token: &str,
    run: &mut Run,
) -> anyhow::Result<()> {
    let commands = u64::from(args.rate) * args.seconds;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / args.rate.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for i in 0..commands {
        tick.tick().await;
        let (http, base, token) = (http.clone(), base.to_owned(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let (id, position) = create(
                &http,
                &base,
                &token,
                &format!("ryw {i} {}", uuid::Uuid::now_v7()),
            )
            .await
            .ok()?;
            let r = http
                .get(format!("{base}/v1/tenants/{id}?min_position={position}"))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?;
            r.status()
                .is_success()
                .then(|| (micros(sent), served_by(&r) > 0))
        }));
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut on_replicas = 0u64;
    for task in tasks {
        match task.await? {
            Some((t, replica)) => {
                latency.record(t)?;
                on_replicas += u64::from(replica);
            }
            None => run.errors += 1,
        }
    }
    run.read_your_writes_p50_ms = ms(&latency, 0.5);
    run.read_your_writes_p99_ms = ms(&latency, 0.99);
    run.read_your_writes_on_replicas = on_replicas as f64 / latency.len().max(1) as f64;
    Ok(())
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros().max(1) as u64
}
