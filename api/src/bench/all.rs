//! `plinth bench all --quick|--full`: every benchmark in one run, one JSON report
//! (`report.rs`) and the table against the goals. `--full` uses each benchmark's own default
//! sizes (and 100,000 tenants for the access check, the goal); `--quick` small sizes and
//! short phases, to finish in a few minutes on two cores. Any size can be overridden (the
//! end-to-end test runs tiny ones).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::end_to_end::{self, EndToEndOptions};
use super::report::{AppendSummary, EndToEndSummary, RebuildSummary, RelaySummary, Report};
use super::{append, audit, rebuild, relay};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("size").required(true).args(["quick", "full"])))]
pub(crate) struct BenchAllArgs {
    /// Small sizes and short phases (under 3 minutes on two cores).
    #[arg(long)]
    quick: bool,
    /// The individual benchmarks' default sizes (1,000,000-event logs, 5 s append phases).
    #[arg(long)]
    full: bool,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the append figures (commands/s and p99 against clients) into this PNG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) server: super::ScratchServer,
    /// Kafka bootstrap servers for the relay runs (each on topics of a fresh prefix).
    #[arg(long, env = "PLINTH_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    kafka_brokers: String,
    /// Override: events in the rebuild, relay and audit logs.
    #[arg(long)]
    events: Option<u64>,
    /// Override: tenants in the rebuild and audit logs.
    #[arg(long)]
    tenants: Option<usize>,
    /// Override: tenants of the access-check platform (its log holds ten events per tenant).
    #[arg(long)]
    access_tenants: Option<usize>,
    /// Override: access checks timed.
    #[arg(long)]
    checks: Option<usize>,
    /// Override: concurrent clients of the append phases.
    #[arg(long, value_delimiter = ',')]
    clients: Option<Vec<usize>>,
    /// Override: seconds per append phase.
    #[arg(long)]
    seconds: Option<u64>,
    /// Override: seconds of each end-to-end latency run (read model, Kafka).
    #[arg(long)]
    latency_seconds: Option<u64>,
    /// Override: audit pages timed per measure.
    #[arg(long)]
    samples: Option<usize>,
}

/// The sizes of one run.
#[derive(Debug, Clone)]
struct Sizes {
    events: u64,
    tenants: usize,
    resource_providers: usize,
    access_tenants: usize,
    checks: usize,
    clients: Vec<usize>,
    seconds: u64,
    latency_seconds: u64,
    samples: usize,
}

impl Sizes {
    fn quick() -> Self {
        Self {
            events: 100_000,
            tenants: 2_000,
            resource_providers: 200,
            access_tenants: 10_000,
            checks: 5_000,
            clients: vec![1, 8, 32],
            seconds: 2,
            latency_seconds: 5,
            samples: 20,
        }
    }

    fn full() -> Self {
        Self {
            events: 1_000_000,
            tenants: 10_000,
            resource_providers: 1_000,
            access_tenants: 100_000,
            checks: 20_000,
            clients: vec![1, 8, 32],
            seconds: 5,
            latency_seconds: 20,
            samples: 200,
        }
    }

    fn of(args: &BenchAllArgs) -> Self {
        let mut sizes = if args.full {
            Self::full()
        } else {
            Self::quick()
        };
        let o = args;
        sizes.events = o.events.unwrap_or(sizes.events);
        sizes.tenants = o.tenants.unwrap_or(sizes.tenants);
        sizes.access_tenants = o.access_tenants.unwrap_or(sizes.access_tenants);
        sizes.checks = o.checks.unwrap_or(sizes.checks);
        sizes.clients = o.clients.clone().unwrap_or(sizes.clients);
        sizes.seconds = o.seconds.unwrap_or(sizes.seconds);
        sizes.latency_seconds = o.latency_seconds.unwrap_or(sizes.latency_seconds);
        sizes.samples = o.samples.unwrap_or(sizes.samples);
        sizes
    }
}

/// The rate of both end-to-end runs: the goal is stated at 500 commands/s.
const END_TO_END_RATE: u32 = 500;
/// The second rate for command → read model.
const HIGH_RATE: u32 = 2_000;

pub(crate) async fn run(args: BenchAllArgs) -> anyhow::Result<()> {
    let sizes = Sizes::of(&args);
    let started = Instant::now();
    let step = |name: &str| eprintln!("\n== {name} ({:.0} s in)", started.elapsed().as_secs_f64());
    let url = &args.server.database_url;

    // First, so that its peak memory is its own and not another benchmark's.
    step("rebuild");
    let rebuilt = rebuild::bench(&rebuild::BenchRebuildArgs {
        server: args.server.clone(),
        events: sizes.events,
        tenants: sizes.tenants,
        resource_providers: sizes.resource_providers,
        checks: 0,
    })
    .await
    .context("bench rebuild")?;

    step("access check");
    let access = rebuild::bench(&rebuild::BenchRebuildArgs {
        server: args.server.clone(),
        // Ten events per tenant: the synthetic log caps its tenants at a tenth of its events.
        events: sizes.access_tenants as u64 * 10,
        tenants: sizes.access_tenants,
        resource_providers: sizes.resource_providers,
        checks: sizes.checks,
    })
    .await
    .context("bench access check")?
    .access
    .context("no access checks ran")?;

    step("audit");
    let audited = audit::bench(&audit::BenchAuditArgs {
        server: args.server.clone(),
        events: sizes.events,
        tenants: sizes.tenants,
        samples: sizes.samples,
    })
    .await
    .context("bench audit")?;

    step("relay and command → Kafka");
    let relayed = relay::bench(relay::BenchOptions {
        database_url: url.clone(),
        brokers: args.kafka_brokers.clone(),
        events: sizes.events,
        commands_per_second: END_TO_END_RATE,
        latency_duration: Duration::from_secs(sizes.latency_seconds),
        keep_database: false,
        with_projectors: false,
    })
    .await
    .context("bench relay")?;

    step("append");
    let rows = append::bench(&append::AppendOptions {
        database_url: url.clone(),
        clients: sizes.clients.clone(),
        phase: Duration::from_secs(sizes.seconds),
        writers: 2,
        load_client: append::LoadClient::KeepAlive,
    })
    .await
    .context("bench append")?;
    append::print_table(&rows);
    if let Some(path) = &args.plot {
        super::plot::append(&rows, path)?;
    }

    let end_to_end = |commands_per_second, cpu_hog| EndToEndOptions {
        database_url: url.clone(),
        commands_per_second,
        duration: Duration::from_secs(sizes.latency_seconds),
        cpu_hog,
    };
    step("command → read model");
    let read_model = end_to_end::bench(&end_to_end(END_TO_END_RATE, false))
        .await
        .context("bench end to end")?;
    step("command → read model at 2,000 commands/s");
    let at_2000 = end_to_end::bench(&end_to_end(HIGH_RATE, false))
        .await
        .context("bench end to end at 2,000 commands/s")?;
    step("command → read model beside a CPU hog");
    let loaded = end_to_end::bench(&end_to_end(END_TO_END_RATE, true))
        .await
        .context("bench end to end beside a CPU hog")?;

    let report = Report {
        mode: if args.full { "full" } else { "quick" },
        append: AppendSummary::of(rows, sizes.seconds)?,
        rebuild: RebuildSummary::from(&rebuilt),
        relay: RelaySummary::of(&relayed),
        access_check: access,
        audit_page: audited,
        end_to_end: EndToEndSummary::of(read_model, at_2000, loaded, &relayed),
    };
    println!("\n{}", report.goals_table());
    eprintln!("all benchmarks in {:.0} s", started.elapsed().as_secs_f64());
    let json = serde_json::to_string_pretty(&report)?;
    match &args.json {
        Some(path) => std::fs::write(path, json + "\n")
            .with_context(|| format!("failed to write {}", path.display()))?,
        None => println!("{json}"),
    }
    Ok(())
}
