//! Schema migrations (the SQL in `migrations/`), applied by `plinth migrate` and at startup.

use anyhow::Context as _;
use deadpool_postgres::{GenericClient, Pool};

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

/// The migrations this binary embeds that the database has not applied (`V<version>__<name>`),
/// for readiness: a database restored from an older backup, or migrated by nobody yet. Ones
/// the database has and this binary lacks (a newer replica migrated it) are not missing: they
/// are additive (docs/operations.md, upgrades).
pub async fn missing(client: &impl GenericClient) -> anyhow::Result<Vec<String>> {
    let applied: std::collections::HashSet<i32> = client
        .query("select version from refinery_schema_history", &[])
        .await
        .context("failed to read the applied migrations")?
        .iter()
        .map(|row| row.get(0))
        .collect();
    Ok(embedded::migrations::runner()
        .get_migrations()
        .iter()
        .filter(|m| !applied.contains(&(m.version() as i32)))
        .map(|m| format!("V{}__{}", m.version(), m.name()))
        .collect())
}
