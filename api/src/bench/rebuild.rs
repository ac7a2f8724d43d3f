//! `plinth bench rebuild`: the read models' rebuild rate and peak memory, and access-check
//! latency (`access.rs`), on a synthetic platform's log in a throwaway database.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use deadpool_postgres::Pool;
use rand::rngs::StdRng;
use rand::SeedableRng;

use plinth_projections::read::{rebuild, ProjectionSet, RebuildProgress};
use plinth_test_support::{write_platform_log, PlatformShape, ScratchDatabase};

use super::access::{self, AccessReport};

use crate::cli::progress;

#[derive(Debug, clap::Args)]
pub(crate) struct BenchRebuildArgs {
    #[command(flatten)]
    pub(crate) server: super::ScratchServer,
    /// Events in the log to rebuild from.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) events: u64,
    /// Tenants in the synthetic tree.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) tenants: usize,
    /// Resource providers in the synthetic platform.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) resource_providers: usize,
    /// Access checks to time (0: none).
    #[arg(long, default_value_t = 20_000)]
    pub(crate) checks: usize,
}

/// The figures.
#[derive(Debug, Clone)]
pub(crate) struct RebuildReport {
    pub(crate) events: u64,
    pub(crate) tenants: usize,
    pub(crate) resource_providers: usize,
    pub(crate) log_write: Duration,
    pub(crate) rebuild: Duration,
    pub(crate) rebuild_events_per_sec: f64,
    /// The physical limit beside it: the same columns of every event read sequentially in
    /// one statement with the same client (no order, no paging, no folding, no writing).
    pub(crate) raw_read_events_per_sec: f64,
    /// Peak resident memory of this process (VmHWM) before and after the rebuild, in KiB.
    pub(crate) peak_rss_before_kib: u64,
    pub(crate) peak_rss_after_kib: u64,
    /// None when no checks were asked for.
    pub(crate) access: Option<AccessReport>,
}

/// `plinth bench rebuild`: on a throwaway database.
pub(crate) async fn run(args: BenchRebuildArgs) -> anyhow::Result<()> {
    let r = bench(&args).await?;
    println!("\n| measure | value | goal |");
    println!("|---|---:|---:|");
    println!("| events in the log | {} | 1,000,000 |", r.events);
    println!(
        "| tenants / resource providers | {} / {} | 10,000 / 1,000 |",
        r.tenants, r.resource_providers
    );
    println!(
        "| writing the log (COPY) | {:.1} s | |",
        r.log_write.as_secs_f64()
    );
    println!(
        "| rebuild (all projections) | {:.1} s = {:.0} events/s | ≥ 200,000 events/s |",
        r.rebuild.as_secs_f64(),
        r.rebuild_events_per_sec
    );
    println!(
        "| peak memory (VmHWM) before / after rebuild | {} / {} MiB | flat |",
        r.peak_rss_before_kib / 1024,
        r.peak_rss_after_kib / 1024
    );
    println!(
        "| raw sequential read of the log, same client | {:.0} events/s (rebuild {:.2}×) | rebuild ≥ 0.5× |",
        r.raw_read_events_per_sec,
        r.rebuild_events_per_sec / r.raw_read_events_per_sec
    );
    if let Some(a) = &r.access {
        println!(
            "| access/check latency p50 / p99 / max ({} checks, {} allowed) | {} / {} / {} µs | p99 ≤ 1,000 µs (100,000 tenants) |",
            a.checks, a.allowed, a.p50_us, a.p99_us, a.max_us
        );
        let w = &a.allow;
        println!(
            "| /api/v1/allow check latency p50 / p99 / max ({} checks, {} allowed) | {} / {} / {} µs | p99 ≤ 1,000 µs (100,000 tenants) |",
            w.checks, w.allowed, w.p50_us, w.p99_us, w.max_us
        );
    }
    Ok(())
}

/// Writes the log, rebuilds and checks on a throwaway database; returns the figures.
pub(crate) async fn bench(args: &BenchRebuildArgs) -> anyhow::Result<RebuildReport> {
    let db = ScratchDatabase::create(&args.server.database_url, "plinth_bench_rebuild").await?;
    let result = async {
        let pool = db.migrated_pool(8).await?;
        eprintln!(
            "writing a synthetic log of {} events ({} tenants)…",
            args.events, args.tenants
        );
        let bar = progress::rebuild_bar();
        let report = measure(&pool, args, progress::on_rebuild(&bar)).await;
        bar.finish_and_clear();
        report
    }
    .await;
    db.drop().await?;
    result
}

/// Writes the synthetic log into the (empty, migrated) database behind `pool`, rebuilds every
/// projection from it, then times access checks.
async fn measure(
    pool: &Pool,
    args: &BenchRebuildArgs,
    mut on_progress: impl FnMut(RebuildProgress) + Send,
) -> anyhow::Result<RebuildReport> {
    let mut rng = StdRng::seed_from_u64(7);
    let shape = PlatformShape {
        events: args.events,
        tenants: args.tenants,
        resource_providers: args.resource_providers,
    };
    let started = Instant::now();
    let world = write_platform_log(pool, &shape, &mut rng)
        .await
        .context("failed to write the synthetic log")?;
    let log_write = started.elapsed();
    let peak_rss_before_kib = super::peak_rss_kib();
    let report = rebuild(pool, ProjectionSet::all(), &mut on_progress).await?;
    let peak_rss_after_kib = super::peak_rss_kib();
    let raw_read_events_per_sec = raw_read(pool).await.context("raw read of the log")?;

    let access = if args.checks > 0 {
        let client = pool.get().await?;
        Some(access::measure(&client, &world, args.checks, &mut rng).await?)
    } else {
        None
    };
    Ok(RebuildReport {
        events: report.events,
        tenants: world.tenants.len(),
        resource_providers: world.rps.len(),
        log_write,
        rebuild: report.elapsed,
        rebuild_events_per_sec: report.events_per_second(),
        raw_read_events_per_sec,
        peak_rss_before_kib,
        peak_rss_after_kib,
        access,
    })
}

/// Events per second of the rebuild's reading alone at its physical limit: the columns it reads
/// (`plinth_commands::log::narrow_tail_sql`), every row of `events` streamed by one statement
/// on one pooled connection and decoded into the same Rust types, then dropped.
async fn raw_read(pool: &Pool) -> anyhow::Result<f64> {
    use futures::TryStreamExt as _;
    let client = pool.get().await?;
    let started = Instant::now();
    let rows = client
        .query_raw(
            "select tx, position, stream_id, event_type, schema_version, data::text, recorded_at
             from events",
            std::iter::empty::<i64>(),
        )
        .await?;
    futures::pin_mut!(rows);
    let mut n = 0u64;
    while let Some(row) = rows.try_next().await? {
        let decoded: (
            i64,
            i64,
            String,
            String,
            i32,
            String,
            chrono::DateTime<chrono::Utc>,
        ) = (
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
            row.get(5),
            row.get(6),
        );
        std::hint::black_box(decoded);
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64().max(1e-9))
}
