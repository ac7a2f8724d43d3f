//! CLI glue for the NATS relay (`plinth nats relay|ensure-stream|republish`). Everything of
//! substance lives in `plinth_projections::nats`.

use std::time::Duration;

use plinth_projections::nats::{self, MessageConfig, NatsConfig, StreamConfig};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum NatsCommand {
    /// Run the NATS relay alone (it also runs inside `serve` when PLINTH_NATS_URL is set).
    Relay(RelayArgs),
    /// Create a JetStream stream on `<prefix>.changes.>` and `<prefix>.events.>` if none of
    /// that name exists (for development; production streams belong to the operator).
    EnsureStream(EnsureStreamArgs),
    /// Re-send a range of the log to NATS without touching the live checkpoint.
    Republish(RepublishArgs),
}

/// Where and how messages go: shared by every `plinth nats` command.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    #[arg(long, env = "PLINTH_NATS_URL")]
    pub(crate) nats_url: String,
    /// Subject prefix (x/events' publish prefix).
    #[arg(long, env = "PLINTH_NATS_PREFIX", default_value = "com.infratographer")]
    pub(crate) prefix: String,
    /// The messages' `source`.
    #[arg(long, env = "PLINTH_NATS_SOURCE", default_value = "plinth")]
    pub(crate) source: String,
    /// `chained`: each publish names the one before it (`Nats-Expected-Last-Msg-Id`), so
    /// stream order is log order, in a stream no one else publishes to; `unchained`: for a
    /// stream shared with other publishers.
    #[arg(long, env = "PLINTH_NATS_ORDERING", default_value = "chained")]
    pub(crate) ordering: nats::Ordering,
}

impl Target {
    fn config(&self) -> NatsConfig {
        NatsConfig {
            message: MessageConfig {
                prefix: self.prefix.clone(),
                source: self.source.clone(),
            },
            ordering: self.ordering,
            ..NatsConfig::new(self.nats_url.clone())
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct RelayArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub(crate) database_url: String,
    #[command(flatten)]
    pub(crate) target: Target,
    /// Checkpoint name: processes sharing it elect one leader.
    #[arg(long, env = "PLINTH_NATS_RELAY_NAME", default_value = nats::DEFAULT_NAME)]
    pub(crate) name: String,
    /// Events read and published per batch (up to 4 batches await acknowledgement at once).
    #[arg(long, env = "PLINTH_NATS_BATCH_SIZE", default_value_t = 500)]
    pub(crate) batch_size: i64,
}

#[derive(Debug, clap::Args)]
pub(crate) struct EnsureStreamArgs {
    #[arg(long, env = "PLINTH_NATS_URL")]
    pub(crate) nats_url: String,
    #[arg(long, env = "PLINTH_NATS_PREFIX", default_value = "com.infratographer")]
    pub(crate) prefix: String,
    /// Stream name.
    #[arg(long, default_value = "plinth-infratographer")]
    pub(crate) stream: String,
    /// Seconds the stream remembers message ids to drop repeats.
    #[arg(long, default_value_t = 120)]
    pub(crate) duplicate_window_secs: u64,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RepublishArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub(crate) database_url: String,
    #[command(flatten)]
    pub(crate) target: Target,
    /// First position to send (inclusive).
    #[arg(long)]
    pub(crate) from_position: i64,
    /// Last position to send (inclusive); default: the head of the log when it starts.
    #[arg(long)]
    pub(crate) to_position: Option<i64>,
}

pub(crate) async fn run(command: NatsCommand) -> anyhow::Result<()> {
    match command {
        NatsCommand::Relay(args) => {
            let config = NatsConfig {
                database_url: Some(args.database_url.clone()),
                name: args.name,
                batch_size: args.batch_size,
                ..args.target.config()
            };
            // Bad settings are refused before anything is connected to.
            config.validate()?;
            let pool = super::relay_cmds::connect(&args.database_url).await?;
            nats::run(pool, config, crate::app::shutdown_signal()).await
        }
        NatsCommand::EnsureStream(args) => {
            let config = StreamConfig {
                name: args.stream,
                duplicate_window: Duration::from_secs(args.duplicate_window_secs),
                ..StreamConfig::new(args.nats_url, args.prefix)
            };
            let subjects = nats::ensure_stream(&config).await?;
            println!("stream {} captures {}", config.name, subjects.join(", "));
            Ok(())
        }
        NatsCommand::Republish(args) => {
            let config = args.target.config();
            config.validate()?;
            let pool = super::relay_cmds::connect(&args.database_url).await?;
            let done = nats::republish(pool, config, args.from_position, args.to_position).await?;
            println!(
                "republished {} event(s), {} already in the stream's duplicate window",
                done.sent, done.duplicates
            );
            Ok(())
        }
    }
}
