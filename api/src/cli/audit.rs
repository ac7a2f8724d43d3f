//! `plinth audit verify`: recompute every stream's hash chain.

use plinth_commands::EventStore;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// Recompute every hash chain; exit non-zero naming the first event that does not match.
    Verify {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
}

pub(crate) async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { database_url } => {
            let store = EventStore::new(plinth_commands::pool(&database_url, 2)?);
            match store.verify_chains().await? {
                Ok(checked) => {
                    println!("ok: {checked} events, every chain intact");
                    Ok(())
                }
                Err(b) => anyhow::bail!(
                    "chain broken at event {} (stream {} version {}, position {})",
                    b.event_id,
                    b.stream_id,
                    b.stream_version,
                    b.position
                ),
            }
        }
    }
}
