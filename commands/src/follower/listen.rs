//! The LISTEN connection: one per follower, kept up with reconnects and backoff, turning each
//! notification into a wake-up.

use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use futures::StreamExt as _;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

/// The channel the write side notifies on, in the statement that appends.
pub const CHANNEL: &str = "plinth_events";

/// The listening task; aborted when dropped, with the follower that owns it.
#[derive(Debug)]
pub(super) struct Listener(tokio::task::JoinHandle<()>);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts listening; the receiver's value changes with every notification (and after every
/// reconnect, since anything may have been committed meanwhile).
pub(super) fn start(
    pool: Pool,
    config: Option<tokio_postgres::Config>,
) -> (Listener, watch::Receiver<u64>) {
    let (wake, woken) = watch::channel(0);
    let task = tokio::spawn(listen_forever(pool, config, wake));
    (Listener(task), woken)
}

/// Keeps a LISTEN connection up. The configuration is derived from the pool at each attempt
/// when none was given, so a database that is down at start-up only delays listening.
async fn listen_forever(
    pool: Pool,
    config: Option<tokio_postgres::Config>,
    wake: watch::Sender<u64>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        let result = match &config {
            Some(config) => listen_once(config, &wake).await,
            None => match derive_config(&pool).await {
                Ok(config) => listen_once(&config, &wake).await,
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => tracing::info!("LISTEN connection closed; reconnecting"),
            Err(e) => tracing::warn!(error = %e, "LISTEN connection failed; polling meanwhile"),
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(100);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// The server, user and database of the pool's connections. No password: the pool does not
/// reveal it, so this suits trust or peer authentication; otherwise configure `listen`.
async fn derive_config(pool: &Pool) -> anyhow::Result<tokio_postgres::Config> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "select current_user::text, current_database()::text, host(inet_server_addr()),
                    inet_server_port()",
            &[],
        )
        .await?;
    let mut config = tokio_postgres::Config::new();
    config.user(row.get::<_, String>(0));
    config.dbname(row.get::<_, String>(1));
    match row.get::<_, Option<String>>(2) {
        Some(host) => config.host(&host),
        None => config.host_path("/var/run/postgresql"),
    };
    if let Some(port) = row.get::<_, Option<i32>>(3) {
        config.port(u16::try_from(port)?);
    }
    config.application_name("plinth-listen");
    Ok(config)
}

async fn listen_once(
    config: &tokio_postgres::Config,
    wake: &watch::Sender<u64>,
) -> anyhow::Result<()> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client.batch_execute(&format!("listen {CHANNEL}")).await?;
    // Anything committed while we were not listening: look once.
    wake.send_modify(|n| *n += 1);
    while rx.recv().await.is_some() {
        wake.send_modify(|n| *n += 1);
    }
    drop(client);
    driver.await??;
    Ok(())
}
