//! `plinth audit verify`: recompute every stream's hash chain and check every stream's head;
//! `plinth audit export` (in `audit_export`).

use plinth_commands::EventStore;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// Recompute every hash chain and check each stream's head (version and last hash) against
    /// its last event; exit non-zero naming the first event or stream that does not match.
    Verify {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// Write the audit log, filtered as `GET /v1/audit` filters it, to stdout in log order
    /// (a platform administrator's tool: it reads the database directly).
    Export(super::audit_export::ExportArgs),
}

pub(crate) async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Export(args) => super::audit_export::export(args).await,
        AuditCommand::Verify { database_url } => {
            let store = EventStore::new(plinth_commands::pool(&database_url, 2)?);
            let checked = match store.verify_chains().await? {
                Ok(checked) => checked,
                Err(b) => anyhow::bail!(
                    "chain broken at event {} (stream {} version {}, position {})",
                    b.event_id,
                    b.stream_id,
                    b.stream_version,
                    b.position
                ),
            };
            match store.verify_heads().await? {
                Ok(heads) => {
                    println!(
                        "ok: {checked} events, every chain intact; {heads} stream heads match"
                    );
                    Ok(())
                }
                Err(m) => anyhow::bail!("stream head does not match the log: {m}"),
            }
        }
    }
}
