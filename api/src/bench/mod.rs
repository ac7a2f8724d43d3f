//! `plinth bench`: each benchmark on a throwaway database (and, for the relay, fresh topics),
//! each against a baseline or a goal measured in the same run. Nothing here runs in
//! `plinth serve`; the synthetic logs come from `plinth-test-support`, shared with the tests.

mod access;
mod all;
mod append;
mod audit;
mod cpu;
mod end_to_end;
mod load_client;
mod plot;
mod rebuild;
mod relay;
mod replicas;
mod report;
mod server;

/// The PostgreSQL server every benchmark creates its (temporary) databases on.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ScratchServer {
    /// Server to create the (temporary) benchmark databases on.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = ScratchServer::LOCAL
    )]
    pub(crate) database_url: String,
}

impl ScratchServer {
    /// The local server of a development machine.
    pub(crate) const LOCAL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BenchCommand {
    /// HTTP command throughput vs raw one-transaction-per-event inserts.
    Append(append::BenchAppendArgs),
    /// Read-model rebuild rate and access-check latency.
    Rebuild(rebuild::BenchRebuildArgs),
    /// Relay throughput and command-to-Kafka latency.
    Relay(relay::BenchRelayArgs),
    /// Audit page latency (tenant subtree, actor, correlation id) and export throughput.
    Audit(audit::BenchAuditArgs),
    /// Command to read model latency (`min_position` answered) at a steady rate.
    ReadModel(end_to_end::BenchReadModelArgs),
    /// Every benchmark, end-to-end latency too, into one JSON report.
    All(all::BenchAllArgs),
    /// Read throughput with 0, 1, … read replicas, and read-your-writes through them.
    Replicas(replicas::BenchReplicasArgs),
}

pub(crate) async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Append(args) => append::run(args).await,
        BenchCommand::Rebuild(args) => rebuild::run(args).await,
        BenchCommand::Relay(args) => relay::run(args).await,
        BenchCommand::Audit(args) => audit::run(args).await,
        BenchCommand::ReadModel(args) => end_to_end::run(args).await,
        BenchCommand::All(args) => all::run(args).await,
        BenchCommand::Replicas(args) => replicas::run(args).await,
    }
}

/// The peak resident set size of this process, in KiB (Linux; 0 elsewhere).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
