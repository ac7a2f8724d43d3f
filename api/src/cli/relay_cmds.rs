//! CLI glue for the Kafka relay (`plinth relay`, `republish`, `consume`, `bench relay`).
//! Everything of substance lives in `plinth_projections::kafka`.

use anyhow::Context as _;
use plinth_projections::kafka::{self, ConsumeConfig, RelayConfig};

#[derive(Debug, clap::Args)]
pub(crate) struct RelayArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub(crate) database_url: String,
    #[arg(long, env = "PLINTH_KAFKA_BROKERS")]
    pub(crate) kafka_brokers: String,
    #[arg(long, env = "PLINTH_KAFKA_TOPIC_PREFIX", default_value = "plinth")]
    pub(crate) topic_prefix: String,
    /// Checkpoint name: processes sharing it elect one leader; another name publishes the
    /// whole log again, independently (e.g. to a second cluster).
    #[arg(long, env = "PLINTH_KAFKA_RELAY_NAME", default_value = kafka::DEFAULT_NAME)]
    pub(crate) name: String,
    /// Partitions of topics the relay creates.
    #[arg(long, env = "PLINTH_KAFKA_PARTITIONS", default_value_t = 6)]
    pub(crate) partitions: i32,
    /// Replication factor of topics the relay creates (3 in production).
    #[arg(long, env = "PLINTH_KAFKA_REPLICATION_FACTOR", default_value_t = 1)]
    pub(crate) replication_factor: i32,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RepublishArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub(crate) database_url: String,
    #[arg(long, env = "PLINTH_KAFKA_BROKERS")]
    pub(crate) kafka_brokers: String,
    #[arg(long, env = "PLINTH_KAFKA_TOPIC_PREFIX", default_value = "plinth")]
    pub(crate) topic_prefix: String,
    /// First position to send (inclusive).
    #[arg(long)]
    pub(crate) from_position: i64,
    /// Last position to send (inclusive); default: the head of the log when it starts.
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
    /// Start a new group at the end of the topic instead of its beginning.
    #[arg(long)]
    pub(crate) from_latest: bool,
    /// Stop after this many events.
    #[arg(long)]
    pub(crate) max_events: Option<u64>,
}

/// Fails fast on an unreachable database or a missing schema, instead of retrying forever.
pub(super) async fn connect(database_url: &str) -> anyhow::Result<deadpool_postgres::Pool> {
    let pool = plinth_commands::pool(database_url, 4)?;
    let client = pool
        .get()
        .await
        .context("failed to connect to PostgreSQL")?;
    let migrated: bool = client
        .query_one("select to_regclass('relay_checkpoints') is not null", &[])
        .await?
        .get(0);
    anyhow::ensure!(
        migrated,
        "the database lacks the relay's tables: run `plinth migrate` first"
    );
    Ok(pool)
}

pub(crate) async fn relay(args: RelayArgs) -> anyhow::Result<()> {
    let pool = connect(&args.database_url).await?;
    let config = RelayConfig {
        database_url: Some(args.database_url),
        name: args.name,
        partitions: args.partitions,
        replication_factor: args.replication_factor,
        ..RelayConfig::new(args.kafka_brokers, args.topic_prefix)
    };
    kafka::run(pool, config, crate::app::shutdown_signal()).await
}

pub(crate) async fn republish(args: RepublishArgs) -> anyhow::Result<()> {
    let pool = connect(&args.database_url).await?;
    let config = RelayConfig::new(args.kafka_brokers, args.topic_prefix);
    let sent = kafka::republish(pool, config, args.from_position, args.to_position).await?;
    println!("republished {sent} event(s)");
    Ok(())
}

pub(crate) async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let mut config = ConsumeConfig::new(args.kafka_brokers, args.group, vec![args.topic]);
    config.from_beginning = !args.from_latest;
    config.max_events = args.max_events;
    let stats = kafka::consume(&config, crate::app::shutdown_signal(), |event| {
        // The "processing": one JSON line per event on stdout.
        let line = serde_json::to_string(&event);
        async move {
            println!("{}", line?);
            Ok(())
        }
    })
    .await?;
    eprintln!(
        "handled {} event(s), skipped {} redelivered",
        stats.handled, stats.duplicates
    );
    Ok(())
}
