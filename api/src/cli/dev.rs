//! `plinth serve --dev`: a zero-configuration start for a newcomer. Uses `DATABASE_URL` if
//! set, else the local server on 127.0.0.1:5432 (creating database `plinth`), else a private
//! cluster under `.plinth/pg` started with the machine's own `initdb`/`pg_ctl`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use tokio_postgres::NoTls;

use crate::settings::Settings;

/// The platform administrator of a development server.
pub(crate) const DEV_ADMIN: &str = "dev-admin";
const LOCAL_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const PRIVATE_PORT: u16 = 54329;

/// Fills in what `--dev` provides: a database, a secret and an administrator.
pub(crate) async fn prepare(settings: &mut Settings) -> anyhow::Result<()> {
    let home = PathBuf::from(".plinth");
    std::fs::create_dir_all(&home).context("failed to create .plinth/")?;
    if settings.database_url.is_none() {
        settings.database_url = Some(find_or_start_postgres(&home).await?);
    }
    if settings.jwt_secret.is_none() && settings.jwks_file.is_none() {
        settings.jwt_secret = Some(dev_secret(&home)?);
    }
    if settings.platform_admins.iter().all(|s| s.is_empty()) {
        settings.platform_admins = vec![DEV_ADMIN.to_owned()];
    }
    Ok(())
}

/// The secret persisted in `.plinth/dev-secret`, so tokens survive restarts.
fn dev_secret(home: &Path) -> anyhow::Result<String> {
    let path = home.join("dev-secret");
    if let Ok(secret) = std::fs::read_to_string(&path) {
        if !secret.trim().is_empty() {
            return Ok(secret.trim().to_owned());
        }
    }
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    std::fs::write(&path, &secret).context("failed to write .plinth/dev-secret")?;
    Ok(secret)
}

async fn can_connect(url: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(3), tokio_postgres::connect(url, NoTls)).await,
        Ok(Ok(_))
    )
}

/// Creates database `plinth` on the server at `server_url` if missing; returns its URL.
async fn ensure_database(server_url: &str) -> anyhow::Result<String> {
    let (client, connection) = tokio_postgres::connect(server_url, NoTls).await?;
    tokio::spawn(connection);
    let exists = client
        .query_opt("select 1 from pg_database where datname = 'plinth'", &[])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute("create database plinth")
            .await
            .context("failed to create database plinth")?;
    }
    Ok(format!(
        "{}/plinth",
        server_url.rsplit_once('/').expect("url has a path").0
    ))
}

async fn find_or_start_postgres(home: &Path) -> anyhow::Result<String> {
    if can_connect(LOCAL_SERVER).await {
        tracing::info!("using the local PostgreSQL on 127.0.0.1:5432");
        return ensure_database(LOCAL_SERVER).await;
    }
    let private = format!("postgres://postgres@127.0.0.1:{PRIVATE_PORT}/postgres");
    if !can_connect(&private).await {
        start_private_cluster(&home.join("pg"))?;
    }
    for _ in 0..50 {
        if can_connect(&private).await {
            return ensure_database(&private).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("the private cluster in .plinth/pg did not start; see .plinth/pg/log")
}

/// The directory of PostgreSQL's server programs: on PATH, or Debian's versioned directory.
fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates.pop().context(
        "no PostgreSQL found: install it (e.g. `apt-get install postgresql`) or set DATABASE_URL",
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL program; as root, as the `postgres` user (initdb refuses root).
fn run_pg(bin: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin)
            .args(args)
            .status()
    } else {
        Command::new(bin).args(args).status()
    }
    .with_context(|| format!("failed to run {}", bin.display()))?;
    anyhow::ensure!(
        status.success(),
        "{} {} failed",
        bin.display(),
        args.join(" ")
    );
    Ok(())
}

fn start_private_cluster(dir: &Path) -> anyhow::Result<()> {
    let bin = postgres_bin_dir()?;
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()?;
        anyhow::ensure!(
            status.success(),
            "failed to hand {} to the postgres user",
            dir.display()
        );
    }
    let data = dir.to_string_lossy().into_owned();
    if !dir.join("PG_VERSION").exists() {
        tracing::info!(dir = %data, "creating a private PostgreSQL cluster");
        run_pg(
            &bin.join("initdb"),
            &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        )?;
    }
    let options = format!("-p {PRIVATE_PORT} -k {data} -c listen_addresses=127.0.0.1");
    let log = format!("{data}/log");
    run_pg(
        &bin.join("pg_ctl"),
        &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
    )
}
