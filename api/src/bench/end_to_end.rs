//! Command to read model, end to end: commands sent over HTTP at a steady rate (open loop: each
//! leaves on its tick whether or not earlier ones were answered, so a slow answer cannot slow
//! the load down and hide itself), each timed from sending until a read with
//! `?min_position=<its position>` answers 200, i.e. until the projectors have applied it and a
//! client relying on read-your-writes sees it. The API and the projectors run as `plinth serve`
//! runs them, in this process on their own runtime.

use std::time::Duration;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use plinth_test_support::{CpuHog, ScratchDatabase};

use super::server::Server;
use crate::settings::Settings;

const SECRET: &str = "bench-secret";
const ADMIN: &str = "bench-admin";

/// `plinth bench read-model`: this measure alone.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchReadModelArgs {
    #[command(flatten)]
    pub(crate) server: super::ScratchServer,
    /// Commands sent per second.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Length of the run, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// With a CPU-bound neighbour: a thread of this process spinning at normal priority for
    /// the whole run, as a build or another service would take a core.
    #[arg(long)]
    cpu_hog: bool,
}

pub(crate) async fn run(args: BenchReadModelArgs) -> anyhow::Result<()> {
    let report = bench(&EndToEndOptions {
        database_url: args.server.database_url,
        commands_per_second: args.rate,
        duration: Duration::from_secs(args.seconds),
        cpu_hog: args.cpu_hog,
    })
    .await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

#[derive(Debug, Clone)]
pub(crate) struct EndToEndOptions {
    pub(crate) database_url: String,
    pub(crate) commands_per_second: u32,
    pub(crate) duration: Duration,
    /// Run beside a [`CpuHog`].
    pub(crate) cpu_hog: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct EndToEndReport {
    pub(crate) commands_per_second: u32,
    /// Whether a CPU hog ran beside the server.
    pub(crate) cpu_hog: bool,
    pub(crate) commands: u64,
    /// Commands refused, reads that did not answer 200, and transport errors.
    pub(crate) errors: u64,
    /// Sending the command until its answer.
    pub(crate) command_p50_ms: f64,
    pub(crate) command_p99_ms: f64,
    /// Sending the command until the `min_position` read answered 200.
    pub(crate) read_model_p50_ms: f64,
    pub(crate) read_model_p99_ms: f64,
    pub(crate) read_model_max_ms: f64,
}

/// On a throwaway database.
pub(crate) async fn bench(options: &EndToEndOptions) -> anyhow::Result<EndToEndReport> {
    let db = ScratchDatabase::create(&options.database_url, "plinth_bench_e2e").await?;
    let hog = options.cpu_hog.then(CpuHog::start);
    let result = measure(options, &db.url).await;
    drop(hog);
    db.drop().await?;
    result
}

/// Times of one command: until its answer, until its read (µs); None if anything failed.
type Timing = Option<(u64, u64)>;

async fn measure(options: &EndToEndOptions, url: &str) -> anyhow::Result<EndToEndReport> {
    let server = Server::start(Settings::for_database(url, SECRET, &[ADMIN]), true).await?;
    let base = server.base_url();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let token = crate::auth::mint_dev_token(SECRET, ADMIN, 3600)?;
    // Warm up: the admin's user row, connections, statement caches, the projectors' first batch.
    for _ in 0..20 {
        anyhow::ensure!(
            one(&http, &base, &token).await.is_some(),
            "a warm-up command failed"
        );
    }
    let commands = (u64::from(options.commands_per_second) * options.duration.as_secs()).max(1);
    eprintln!(
        "end to end: {commands} commands at {}/s, each until its read model",
        options.commands_per_second
    );
    let mut tick =
        tokio::time::interval(Duration::from_secs(1) / options.commands_per_second.max(1));
    // A late tick fires at once rather than being skipped: the rate holds over the run.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(commands as usize);
    for _ in 0..commands {
        tick.tick().await;
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        tasks.push(tokio::spawn(async move { one(&http, &base, &token).await }));
    }
    let mut command = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut read = command.clone();
    let mut errors = 0;
    for task in tasks {
        match task.await.context("command task")? {
            Some((answered, seen)) => {
                command.record(answered)?;
                read.record(seen)?;
            }
            None => errors += 1,
        }
    }
    drop(server);
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(EndToEndReport {
        commands_per_second: options.commands_per_second,
        cpu_hog: options.cpu_hog,
        commands,
        errors,
        command_p50_ms: ms(&command, 0.5),
        command_p99_ms: ms(&command, 0.99),
        read_model_p50_ms: ms(&read, 0.5),
        read_model_p99_ms: ms(&read, 0.99),
        read_model_max_ms: read.max() as f64 / 1000.0,
    })
}

/// Creates a tenant, then reads it back at the command's position.
async fn one(http: &reqwest::Client, base: &str, token: &str) -> Timing {
    let sent = Instant::now();
    let body =
        json!({"type": "CreateTenant", "data": {"name": format!("e2e {}", uuid::Uuid::now_v7())}});
    let response = http
        .post(format!("{base}/v1/commands"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .ok()?;
    if response.status().as_u16() != 201 {
        return None;
    }
    let outcome: serde_json::Value = response.json().await.ok()?;
    let answered = micros(sent);
    let (id, position) = (
        outcome["stream_id"].as_str()?,
        outcome["position"].as_i64()?,
    );
    let read = http
        .get(format!("{base}/v1/tenants/{id}?min_position={position}"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    (read.status().as_u16() == 200).then(|| (answered, micros(sent)))
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros().max(1) as u64
}
