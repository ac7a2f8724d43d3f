//! The `plinth` command line: serve, migrate, token, replay, audit, relay, republish, consume,
//! nats, bench, seed.

mod audit;
pub(crate) mod audit_export;
mod dev;
mod nats_cmds;
pub(crate) mod progress;
pub(crate) mod read_cmds;
mod relay_cmds;
mod seed;
mod serve;

use clap::{Parser, Subcommand};

use crate::settings::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "plinth",
    version,
    about = "Event-sourced foundation for an infrastructure platform"
)]
struct Cli {
    /// Log lines as `text` or `json` (one object per line), on stderr.
    #[arg(long, env = "PLINTH_LOG_FORMAT", default_value = "text", global = true)]
    log_format: crate::telemetry::LogFormat,
    #[command(subcommand)]
    command: Commands,
}

// Parsed once at start and matched at once: the size of `Serve`'s settings costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Commands {
    /// Apply migrations, then serve the API and run the projectors and the Kafka relay.
    Serve {
        #[command(flatten)]
        settings: Settings,
        /// Development mode: find or start PostgreSQL, make up a secret, print a token.
        #[arg(long)]
        dev: bool,
        #[command(flatten)]
        parts: serve::Parts,
    },
    /// Run only the projectors (they also run inside `serve`).
    Project {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// Apply pending migrations and exit.
    Migrate {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// Mint a development token (HS256, signed with PLINTH_JWT_SECRET).
    Token {
        #[arg(long)]
        subject: String,
        #[arg(long, env = "PLINTH_JWT_SECRET", hide_env_values = true)]
        secret: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 24 * 3600)]
        ttl: u64,
    },
    /// Rebuild read models from the event log.
    Replay(read_cmds::ReplayArgs),
    /// Audit the event log.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Run the Kafka relay alone.
    Relay(relay_cmds::RelayArgs),
    /// Re-send a range of the log to Kafka without touching the live checkpoint.
    Republish(relay_cmds::RepublishArgs),
    /// Example consumer: read a topic in a consumer group, committing after processing.
    Consume(relay_cmds::ConsumeArgs),
    /// The NATS JetStream relay in Infratographer's wire format (docs/infratographer.md).
    Nats {
        #[command(subcommand)]
        command: nats_cmds::NatsCommand,
    },
    /// Write a realistic platform (deep and wide trees, grants, shared locations and
    /// providers, metadata) through the command path, then bring the read models up to date.
    Seed(seed::SeedArgs),
    /// Benchmarks, each against a baseline measured in the same run.
    Bench {
        #[command(subcommand)]
        command: crate::bench::BenchCommand,
    },
}

/// Entry point of the binary.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A benchmark runs its server in this process: at `info` it logs every command, thousands
    // of lines a second that bury the report. Warnings only, unless RUST_LOG asks for more.
    let default_level = match cli.command {
        Commands::Bench { .. } => "warn",
        _ => "info",
    };
    crate::telemetry::init_logging_at(cli.log_format, default_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(cli.command));
    drop(runtime);
    // A refusal the caller has to fix exits 2, as clap's usage errors do; failures exit 1.
    if let Some(refused) = result
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<seed::Refused>())
    {
        eprintln!("error: {refused}");
        std::process::exit(2);
    }
    if let Some(invalid) = result
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<crate::settings::InvalidSettings>())
    {
        eprintln!("error: {invalid}");
        std::process::exit(2);
    }
    result
}

async fn run(command: Commands) -> anyhow::Result<()> {
    match command {
        Commands::Serve {
            settings,
            dev,
            parts,
        } => serve::serve(settings, dev, parts).await,
        Commands::Project { database_url } => serve::project(&database_url).await,
        Commands::Migrate { database_url } => {
            let pool = plinth_commands::pool(&database_url, 2)?;
            let applied = plinth_commands::migrate::run(&pool).await?;
            println!("applied {applied} migration(s)");
            Ok(())
        }
        Commands::Token {
            subject,
            secret,
            ttl,
        } => {
            println!("{}", crate::auth::mint_dev_token(&secret, &subject, ttl)?);
            Ok(())
        }
        Commands::Replay(args) => read_cmds::replay(args).await,
        Commands::Audit { command } => audit::run(command).await,
        Commands::Relay(args) => relay_cmds::relay(args).await,
        Commands::Republish(args) => relay_cmds::republish(args).await,
        Commands::Consume(args) => relay_cmds::consume(args).await,
        Commands::Nats { command } => nats_cmds::run(command).await,
        Commands::Seed(args) => seed::seed(args).await,
        Commands::Bench { command } => crate::bench::run(command).await,
    }
}
