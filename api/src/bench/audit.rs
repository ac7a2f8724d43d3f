//! `plinth bench audit`: audit page latency and export throughput on a large log (by default
//! 1,000,000 events across 10,000 tenants), on a throwaway database.
//!
//! Pages are timed through `queries::audit`, the statement `GET /v1/audit` runs (HTTP aside);
//! the export through `plinth audit export`'s own loop, writing JSON lines to nowhere.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use deadpool_postgres::Client;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use plinth_projections::read::queries::{self, AuditFilter, PageRequest, Viewer};
use plinth_projections::read::{rebuild, ProjectionSet};
use plinth_test_support::{write_platform_log, PlatformShape, ScratchDatabase, SyntheticPlatform};

use crate::cli::audit_export::{write_audit, Format};

/// Items per page, the API's default.
const PAGE: i64 = 100;

#[derive(Debug, clap::Args)]
pub(crate) struct BenchAuditArgs {
    #[command(flatten)]
    pub(crate) server: super::ScratchServer,
    /// Events in the synthetic log.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) events: u64,
    /// Tenants in the synthetic tree (10-ary).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) tenants: usize,
    /// Pages timed for each measure.
    #[arg(long, default_value_t = 200)]
    pub(crate) samples: usize,
}

/// p50 / p99 / max of one measure, in µs.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Latency {
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
}

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AuditReport {
    pub(crate) events: u64,
    pub(crate) tenants: usize,
    pub(crate) subtree_first_page: Latency,
    pub(crate) subtree_tenth_page: Latency,
    pub(crate) root_first_page: Latency,
    pub(crate) actor_first_page: Latency,
    pub(crate) correlation_page: Latency,
    pub(crate) exported: u64,
    pub(crate) export_events_per_s: f64,
}

impl Latency {
    fn of(histogram: &Histogram<u64>) -> Self {
        Self {
            p50_us: histogram.value_at_quantile(0.50),
            p99_us: histogram.value_at_quantile(0.99),
            max_us: histogram.max(),
        }
    }
}

pub(crate) async fn run(args: BenchAuditArgs) -> anyhow::Result<()> {
    let r = bench(&args).await?;
    println!(
        "\n| measure ({} events, {} tenants) | p50 | p99 | max |",
        r.events, r.tenants
    );
    println!("|---|---:|---:|---:|");
    let row = |name: &str, l: &Latency| {
        println!(
            "| {name} | {} µs | {} µs | {} µs |",
            l.p50_us, l.p99_us, l.max_us
        );
    };
    row(
        "tenant subtree (111 tenants), first page of 100",
        &r.subtree_first_page,
    );
    row(
        "tenant subtree (111 tenants), tenth page of 100",
        &r.subtree_tenth_page,
    );
    row(
        "root tenant (whole tree), first page of 100",
        &r.root_first_page,
    );
    row(
        "actor (1 event in 100), first page of 100",
        &r.actor_first_page,
    );
    row("correlation id, its page", &r.correlation_page);
    println!(
        "\nexport (jsonl, whole log): {} events = {:.0} events/s",
        r.exported, r.export_events_per_s
    );
    Ok(())
}

/// Writes, projects and times on a throwaway database; returns the figures.
pub(crate) async fn bench(args: &BenchAuditArgs) -> anyhow::Result<AuditReport> {
    let db = ScratchDatabase::create(&args.server.database_url, "plinth_bench_audit").await?;
    let result = measure(&db, args).await;
    db.drop().await?;
    result
}

async fn measure(db: &ScratchDatabase, args: &BenchAuditArgs) -> anyhow::Result<AuditReport> {
    let pool = db.migrated_pool(8).await?;
    let shape = PlatformShape {
        events: args.events,
        tenants: args.tenants,
        ..PlatformShape::default()
    };
    eprintln!(
        "writing and projecting a synthetic log of {} events…",
        args.events
    );
    let platform = write_platform_log(&pool, &shape, &mut StdRng::seed_from_u64(7))
        .await
        .context("failed to write the synthetic log")?;
    rebuild(&pool, ProjectionSet::all(), |_| {}).await?;
    let client = pool.get().await?;
    // As autovacuum leaves a settled log: statistics, and a visibility map for index-only scans.
    client.batch_execute("vacuum analyze").await?;
    let mut rng = StdRng::seed_from_u64(11);
    eprintln!("timing pages…");
    let (first, tenth) = tenant_pages(&client, &platform, args.samples, &mut rng).await?;
    let root = root_pages(&client, &platform).await?;
    let actor = actor_pages(&client, &platform, args.samples, &mut rng).await?;
    let correlation = correlation_pages(&client, args.events, args.samples, &mut rng).await?;
    eprintln!("exporting the whole log…");
    let started = Instant::now();
    let exported = write_audit(
        &client,
        &AuditFilter::default(),
        Format::Jsonl,
        std::io::sink(),
        &ProgressBar::hidden(),
    )
    .await?;
    let export = started.elapsed();

    Ok(AuditReport {
        events: args.events,
        tenants: platform.tenants.len(),
        subtree_first_page: first,
        subtree_tenth_page: tenth,
        root_first_page: root,
        actor_first_page: actor,
        correlation_page: correlation,
        exported,
        export_events_per_s: exported as f64 / export.as_secs_f64(),
    })
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// Times one page; returns it and records its latency.
async fn timed_page(
    client: &Client,
    filter: &AuditFilter,
    after: Option<String>,
    histogram: Option<&mut Histogram<u64>>,
) -> anyhow::Result<queries::Page<queries::AuditItem>> {
    let page = PageRequest { after, limit: PAGE };
    let began = Instant::now();
    let result = queries::audit(client, &Viewer::Platform, filter, &page)
        .await?
        .map_err(|refusal| anyhow::anyhow!("audit refused: {refusal:?}"))?;
    if let Some(histogram) = histogram {
        histogram.record(micros(began.elapsed()))?;
    }
    Ok(result)
}

fn micros(elapsed: Duration) -> u64 {
    elapsed.as_micros().max(1) as u64
}

fn tenant(id: &plinth_domain::TenantId) -> AuditFilter {
    AuditFilter {
        tenant_id: Some(id.to_string()),
        ..AuditFilter::default()
    }
}

/// First and tenth pages of depth-2 tenants of the 10-ary tree (11 to 110) whose subtree is
/// whole, 111 tenants (tenant i's grandchildren are 100i + 11 to 100i + 110): a hundredth of
/// the log each at 10,000 tenants.
async fn tenant_pages(
    client: &Client,
    platform: &SyntheticPlatform,
    samples: usize,
    rng: &mut StdRng,
) -> anyhow::Result<(Latency, Latency)> {
    let whole = (11..111)
        .filter(|i| 100 * i + 110 < platform.tenants.len())
        .count();
    anyhow::ensure!(whole > 0, "too few tenants for a whole depth-2 subtree");
    let depth_two = 11..11 + whole;
    let (mut first, mut tenth) = (histogram()?, histogram()?);
    for _ in 0..samples {
        let filter = tenant(&platform.tenants[rng.gen_range(depth_two.clone())]);
        let mut page = timed_page(client, &filter, None, Some(&mut first)).await?;
        for n in 2..=10 {
            let Some(next) = page.next.take() else {
                anyhow::bail!("the subtree has fewer than 10 pages: use more --events");
            };
            let timed = (n == 10).then_some(&mut tenth);
            page = timed_page(client, &filter, Some(next), timed).await?;
        }
    }
    Ok((Latency::of(&first), Latency::of(&tenth)))
}

/// The first page of the root's subtree, every stream of the platform: the most streams a page
/// merges. Few samples: it is the slow end of the subtree pages.
async fn root_pages(client: &Client, platform: &SyntheticPlatform) -> anyhow::Result<Latency> {
    let mut histogram = histogram()?;
    let filter = tenant(&platform.tenants[0]);
    for _ in 0..5 {
        timed_page(client, &filter, None, Some(&mut histogram)).await?;
    }
    Ok(Latency::of(&histogram))
}

async fn actor_pages(
    client: &Client,
    platform: &SyntheticPlatform,
    samples: usize,
    rng: &mut StdRng,
) -> anyhow::Result<Latency> {
    let mut histogram = histogram()?;
    for _ in 0..samples {
        let filter = AuditFilter {
            actor: Some(platform.actors[rng.gen_range(0..platform.actors.len())].clone()),
            ..AuditFilter::default()
        };
        timed_page(client, &filter, None, Some(&mut histogram)).await?;
    }
    Ok(Latency::of(&histogram))
}

/// The page of a random event's correlation id (the synthetic log gives each event its own).
async fn correlation_pages(
    client: &Client,
    events: u64,
    samples: usize,
    rng: &mut StdRng,
) -> anyhow::Result<Latency> {
    let mut histogram = histogram()?;
    for _ in 0..samples {
        let position = rng.gen_range(1..=events as i64);
        let correlation: uuid::Uuid = client
            .query_one(
                "select (metadata->>'correlation_id')::uuid from events where position = $1",
                &[&position],
            )
            .await
            .context("no event at that position")?
            .get(0);
        let filter = AuditFilter {
            correlation_id: Some(correlation),
            ..AuditFilter::default()
        };
        timed_page(client, &filter, None, Some(&mut histogram)).await?;
    }
    Ok(Latency::of(&histogram))
}
