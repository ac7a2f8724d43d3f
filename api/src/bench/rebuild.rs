//! `plinth bench rebuild`: the read models' rebuild rate and peak memory, and access-check
//! latency, on a synthetic platform's log in a throwaway database.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use deadpool_postgres::Pool;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use plinth_domain::Scope;
use plinth_projections::read::{queries, rebuild, ProjectionSet, RebuildProgress};
use plinth_test_support::{children_of, write_platform_log, PlatformShape, ScratchDatabase};

use crate::cli::read_cmds::{on_progress, progress_bar};

#[derive(Debug, clap::Args)]
pub(crate) struct BenchRebuildArgs {
    /// Server to create the benchmark database on.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub(crate) database_url: String,
    /// Events in the log to rebuild from.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) events: u64,
    /// Tenants in the synthetic tree.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) tenants: usize,
    /// Resource providers in the synthetic platform.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) resource_providers: usize,
    /// Access checks to time.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) checks: usize,
}

/// The figures.
#[derive(Debug, Clone)]
struct BenchReport {
    events: u64,
    tenants: usize,
    resource_providers: usize,
    log_write: Duration,
    rebuild: Duration,
    rebuild_events_per_sec: f64,
    /// Peak resident memory of this process (VmHWM) before and after the rebuild, in KiB.
    peak_rss_before_kib: u64,
    peak_rss_after_kib: u64,
    checks: usize,
    allowed: usize,
    check_p50_us: u64,
    check_p99_us: u64,
    check_max_us: u64,
}

/// `plinth bench rebuild`: on a throwaway database.
pub(crate) async fn run(args: BenchRebuildArgs) -> anyhow::Result<()> {
    let db = ScratchDatabase::create(&args.database_url, "plinth_bench_rebuild").await?;
    let result = async {
        let pool = db.migrated_pool(8).await?;
        eprintln!("writing a synthetic log of {} events…", args.events);
        let bar = progress_bar();
        let report = measure(&pool, &args, on_progress(&bar)).await;
        bar.finish_and_clear();
        report
    }
    .await;
    db.drop().await?;
    let r = result?;
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
        "| rebuild (all projections) | {:.1} s = {:.0} events/s | ≥ 100,000 events/s |",
        r.rebuild.as_secs_f64(),
        r.rebuild_events_per_sec
    );
    println!(
        "| peak memory (VmHWM) before / after rebuild | {} / {} MiB | flat |",
        r.peak_rss_before_kib / 1024,
        r.peak_rss_after_kib / 1024
    );
    println!(
        "| access/check latency p50 / p99 / max ({} checks, {} allowed) | {} / {} / {} µs | p99 ≤ 2,000 µs |",
        r.checks, r.allowed, r.check_p50_us, r.check_p99_us, r.check_max_us
    );
    Ok(())
}

/// Writes the synthetic log into the (empty, migrated) database behind `pool`, rebuilds every
/// projection from it, then times access checks.
async fn measure(
    pool: &Pool,
    args: &BenchRebuildArgs,
    mut on_progress: impl FnMut(RebuildProgress) + Send,
) -> anyhow::Result<BenchReport> {
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

    let client = pool.get().await?;
    let n = world.tenants.len();
    let scopes: Vec<Scope> = ["loadbalancer:create", "network:read", "network:write"]
        .iter()
        .map(|s| Scope::parse(s).expect("valid scope"))
        .collect();
    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)?;
    let mut allowed = 0;
    // Warm the statement cache and the buffer cache first.
    for _ in 0..200 {
        let (rp, _) = &world.rps[rng.gen_range(0..world.rps.len())];
        let t = &world.tenants[rng.gen_range(0..n)];
        queries::access_check(&client, rp.as_str(), t.as_str(), &scopes[0]).await?;
    }
    for _ in 0..args.checks {
        let (rp, at) = &world.rps[rng.gen_range(0..world.rps.len())];
        // Half the checks inside the authorized subtree (mostly allowed), half anywhere.
        let tenant = if rng.gen_bool(0.5) {
            let mut t = *at;
            while rng.gen_bool(0.6) {
                let children: Vec<usize> = children_of(t, n).collect();
                if children.is_empty() {
                    break;
                }
                t = children[rng.gen_range(0..children.len())];
            }
            t
        } else {
            rng.gen_range(0..n)
        };
        let scope = &scopes[rng.gen_range(0..scopes.len())];
        let began = Instant::now();
        let ok = queries::access_check(&client, rp.as_str(), world.tenants[tenant].as_str(), scope)
            .await?;
        histogram.record(began.elapsed().as_micros().max(1) as u64)?;
        allowed += usize::from(ok);
    }
    Ok(BenchReport {
        events: report.events,
        tenants: n,
        resource_providers: world.rps.len(),
        log_write,
        rebuild: report.elapsed,
        rebuild_events_per_sec: report.events_per_second(),
        peak_rss_before_kib,
        peak_rss_after_kib,
        checks: args.checks,
        allowed,
        check_p50_us: histogram.value_at_quantile(0.50),
        check_p99_us: histogram.value_at_quantile(0.99),
        check_max_us: histogram.max(),
    })
}
