//! Shared test setup: a fresh database per test, migrated, plus a running Plinth app.

use std::sync::atomic::{AtomicU32, Ordering};

use deadpool_postgres::Pool;
use tokio_postgres::NoTls;

/// The server the tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("PLINTH_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh, migrated database; dropped by nobody (names are unique, CI machines are fresh).
pub struct TestDb {
    pub url: String,
    pub name: String,
    pub pool: Pool,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub async fn test_db() -> TestDb {
    let name = format!(
        "plinth_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    let (client, connection) = tokio_postgres::connect(&admin_url(), NoTls)
        .await
        .expect("PostgreSQL must be running: run scripts/test, which starts it");
    tokio::spawn(connection);
    client.batch_execute(&format!("create database {name}")).await.expect("create database");
    let mut config: tokio_postgres::Config = admin_url().parse().unwrap();
    config.dbname(&name);
    let url = format!("{}/{name}", admin_url().rsplit_once('/').unwrap().0);
    let pool = plinth_commands::pool(&url, 16).unwrap();
    plinth_commands::migrate::run(&pool).await.expect("migrations");
    TestDb { url, name, pool }
}
