//! Throwaway databases: the one place a test or a benchmark gets a fresh database.
//!
//! Names start with a prefix that says who made them (`plinth_test`, `plinth_proj`,
//! `plinth_bench_<name>`), so that `scripts/test` can drop what an interrupted run left behind.

use anyhow::Context as _;
use deadpool_postgres::Pool;
use tokio_postgres::NoTls;

/// The server tests make their databases on: `PLINTH_TEST_DATABASE_URL`, or the local default.
pub fn test_server_url() -> String {
    std::env::var("PLINTH_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh, empty database `<prefix>_<uuid>` on the server of `server_url`.
#[derive(Debug)]
pub struct ScratchDatabase {
    server_url: String,
    pub name: String,
    /// `server_url` pointing at the new database (server and options such as `sslmode` kept).
    pub url: String,
}

impl ScratchDatabase {
    pub async fn create(server_url: &str, prefix: &str) -> anyhow::Result<Self> {
        let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
        let (client, connection) = tokio_postgres::connect(server_url, NoTls)
            .await
            .context("failed to connect to PostgreSQL (scripts/postgres-up starts it)")?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!("create database {name}"))
            .await?;
        let url = replace_dbname(server_url, &name)?;
        Ok(Self {
            server_url: server_url.to_owned(),
            name,
            url,
        })
    }

    /// A pool of `size` connections to the database, with every migration applied.
    pub async fn migrated_pool(&self, size: usize) -> anyhow::Result<Pool> {
        let pool = plinth_commands::pool(&self.url, size)?;
        plinth_commands::migrate::run(&pool).await?;
        Ok(pool)
    }

    /// Drops the database, disconnecting whoever still uses it.
    pub async fn drop(self) -> anyhow::Result<()> {
        let (client, connection) = tokio_postgres::connect(&self.server_url, NoTls).await?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "drop database if exists {} with (force)",
                self.name
            ))
            .await?;
        Ok(())
    }
}

/// `database_url` pointing at database `name` instead (URL form only).
fn replace_dbname(database_url: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = match database_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (database_url, None),
    };
    let scheme_end = base
        .find("://")
        .context("the server URL must be a postgres:// URL")?
        + 3;
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    Ok(match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::replace_dbname;

    #[test]
    fn the_scratch_url_keeps_server_and_options() {
        assert_eq!(
            replace_dbname("postgres://u@h:5432/db", "x").unwrap(),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            replace_dbname("postgres://u@h", "x").unwrap(),
            "postgres://u@h/x"
        );
        assert_eq!(
            replace_dbname("postgres://u@h/db?sslmode=disable", "x").unwrap(),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
