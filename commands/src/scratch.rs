//! Throwaway databases for benchmarks: created on a server, dropped afterwards.

use anyhow::Context as _;
use tokio_postgres::NoTls;

/// A fresh, empty database `plinth_bench_<label>_<uuid>` on the server of `server_url`.
#[derive(Debug)]
pub struct ScratchDatabase {
    server_url: String,
    pub name: String,
    /// `server_url` pointing at the new database (server and options kept).
    pub url: String,
}

impl ScratchDatabase {
    pub async fn create(server_url: &str, label: &str) -> anyhow::Result<Self> {
        let name = format!("plinth_bench_{label}_{}", uuid::Uuid::now_v7().simple());
        let (client, connection) = tokio_postgres::connect(server_url, NoTls)
            .await
            .context("failed to connect to PostgreSQL")?;
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
        .context("DATABASE_URL must be a postgres:// URL for the bench")?
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
