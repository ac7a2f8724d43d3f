//! Schema migrations (the SQL in `migrations/`), applied by `plinth migrate` and at startup.

use anyhow::Context as _;
use deadpool_postgres::Pool;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Serializes migrations across processes starting at once.
const MIGRATION_LOCK: i64 = 0x706c_696e_7468; // "plinth"

/// Applies pending migrations; returns how many were applied.
pub async fn run(pool: &Pool) -> anyhow::Result<usize> {
    let mut client = pool
        .get()
        .await
        .context("failed to connect to PostgreSQL")?;
    client
        .execute("select pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let client_ref: &mut tokio_postgres::Client = &mut client;
    let report = embedded::migrations::runner().run_async(client_ref).await;
    client
        .execute("select pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    Ok(report
        .context("migration failed")?
        .applied_migrations()
        .len())
}
