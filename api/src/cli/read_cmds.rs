//! CLI glue for the read side (`plinth replay`, `bench rebuild`).

#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub(crate) database_url: String,
    /// Rebuild every projection.
    #[arg(long, conflicts_with = "projection")]
    pub(crate) all: bool,
    /// Rebuild one projection by name.
    #[arg(long)]
    pub(crate) projection: Option<String>,
}

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
}

pub(crate) async fn replay(_args: ReplayArgs) -> anyhow::Result<()> {
    anyhow::bail!("read models are not built yet")
}

pub(crate) async fn bench_rebuild(_args: BenchRebuildArgs) -> anyhow::Result<()> {
    anyhow::bail!("the rebuild benchmark is not built yet")
}
