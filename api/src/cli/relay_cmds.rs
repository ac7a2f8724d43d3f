//! CLI glue for the Kafka relay (`plinth relay`, `republish`, `consume`, `bench relay`).

#[derive(Debug, clap::Args)]
pub(crate) struct RelayArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub(crate) database_url: String,
    #[arg(long, env = "PLINTH_KAFKA_BROKERS")]
    pub(crate) kafka_brokers: String,
    #[arg(long, env = "PLINTH_KAFKA_TOPIC_PREFIX", default_value = "plinth")]
    pub(crate) topic_prefix: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RepublishArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub(crate) database_url: String,
    #[arg(long, env = "PLINTH_KAFKA_BROKERS")]
    pub(crate) kafka_brokers: String,
    #[arg(long, env = "PLINTH_KAFKA_TOPIC_PREFIX", default_value = "plinth")]
    pub(crate) topic_prefix: String,
    #[arg(long)]
    pub(crate) from_position: i64,
    #[arg(long)]
    pub(crate) to_position: Option<i64>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ConsumeArgs {
    #[arg(long, env = "PLINTH_KAFKA_BROKERS")]
    pub(crate) kafka_brokers: String,
    /// Topic to read, e.g. `plinth.tenants`.
    #[arg(long)]
    pub(crate) topic: String,
    #[arg(long, default_value = "plinth-example-consumer")]
    pub(crate) group: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct BenchRelayArgs {
    /// Server to create the benchmark database on.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub(crate) database_url: String,
    #[arg(long, env = "PLINTH_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub(crate) kafka_brokers: String,
    /// Events in the log to relay.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) events: u64,
}

pub(crate) async fn relay(_args: RelayArgs) -> anyhow::Result<()> {
    anyhow::bail!("the Kafka relay is not built yet")
}

pub(crate) async fn republish(_args: RepublishArgs) -> anyhow::Result<()> {
    anyhow::bail!("republish is not built yet")
}

pub(crate) async fn consume(_args: ConsumeArgs) -> anyhow::Result<()> {
    anyhow::bail!("the example consumer is not built yet")
}

pub(crate) async fn bench_relay(_args: BenchRelayArgs) -> anyhow::Result<()> {
    anyhow::bail!("the relay benchmark is not built yet")
}
