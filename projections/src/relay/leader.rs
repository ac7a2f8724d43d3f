//! Leadership and the publishing pipeline.
//!
//! A session: connect, win the advisory lock (or stand by), build a producer, then run two
//! halves side by side: the sender reads the log from the checkpoint and hands events to
//! librdkafka in log order; the confirmer awaits their delivery reports in that same order and
//! saves the checkpoint after each confirmed batch. Awaiting in log order is what makes the
//! checkpoint a contiguous prefix: an event is covered only once it and every event before it
//! were confirmed. Any error ends the session; the next one starts from the saved checkpoint
//! with a new producer, so whatever was in flight is sent again (duplicates, never gaps).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use deadpool_postgres::{ClientWrapper, Object, Pool};
use futures::StreamExt as _;
use plinth_commands::{read_after, Checkpoint};
use rdkafka::producer::DeliveryFuture;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::producer::{self, Producer, Publisher};
use super::{checkpoint, is_stopped, stopped, RelayConfig};

/// After a notification, how many times to look again for the new events before falling back
/// to the poll interval; the delays double from 1 ms (1 + 2 + … + 128 ≈ 255 ms in all).
const EAGER_RETRIES: u32 = 8;
/// Save the checkpoint at least this often while batches keep coming.
const SAVE_EVERY: Duration = Duration::from_millis(200);

/// Runs sessions until `stop`, backing off after failures.
pub(crate) async fn run(pool: Pool, config: Arc<RelayConfig>, mut stop: watch::Receiver<bool>) {
    let mut backoff = config.min_backoff;
    while !is_stopped(&stop) {
        let mut progressed = false;
        let Err(error) = lead(&pool, &config, stop.clone(), &mut progressed).await else {
            return;
        };
        if progressed {
            backoff = config.min_backoff;
        }
        metrics::counter!("plinth_relay_errors_total", "relay" => config.name.clone()).increment(1);
        tracing::warn!(
            relay = %config.name,
            error = format!("{error:#}"),
            retry_in_ms = backoff.as_millis() as u64,
            "relay session failed; resuming from the checkpoint"
        );
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stopped(&mut stop) => return,
        }
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

/// One session. Returns `Ok` only when stopped.
#[tracing::instrument(name = "relay", skip_all, fields(relay = %config.name))]
async fn lead(
    pool: &Pool,
    config: &RelayConfig,
    mut stop: watch::Receiver<bool>,
    progressed: &mut bool,
) -> anyhow::Result<()> {
    let (client, wake) = connect(pool, config).await?;
    // Losing a checkpoint write to a crash only means re-sending a few events, so the relay
    // does not wait for its own WAL flushes.
    client.batch_execute("set synchronous_commit = off").await?;
    show_role(&client, &config.name, "starting").await?;
    let mut standing_by = false;
    while !checkpoint::try_lead(&client, &config.name).await? {
        if !standing_by {
            tracing::info!("another process leads this relay; standing by");
            show_role(&client, &config.name, "standby").await?;
            standing_by = true;
        }
        tokio::select! {
            () = tokio::time::sleep(config.lock_retry_interval) => {}
            () = stopped(&mut stop) => return Ok(()),
        }
    }
    show_role(&client, &config.name, "leader").await?;
    let _active = ActiveGauge::set(&config.name);
    let mut publisher = Publisher::new(config)?;
    tokio::select! {
        created = publisher.ensure_all_topics() => created?,
        () = stopped(&mut stop) => return Ok(()),
    }
    let start = checkpoint::load(&client, &config.name).await?;
    tracing::info!(
        tx = start.tx,
        position = start.position,
        "leading the relay"
    );
    let (batches, rx) = mpsc::channel(config.max_batches_in_flight);
    let producer = publisher.producer.clone();
    let sender = Sender {
        pool,
        config,
        publisher: &mut publisher,
        client: &client,
        wake: &wake,
    };
    tokio::try_join!(
        sender.run(start, batches, stop.clone()),
        confirm(config, &producer, &client, start, rx, stop, progressed),
    )?;
    Ok(())
}

/// Shows the session's role in `pg_stat_activity.application_name`
/// (`plinth-relay:<name>:starting|standby|leader`), so operators (and tests) can see which
/// process leads.
async fn show_role(client: &Client, name: &str, role: &str) -> anyhow::Result<()> {
    client
        .execute(
            "select set_config('application_name', $1, false)",
            &[&format!("plinth-relay:{name}:{role}")],
        )
        .await?;
    Ok(())
}

/// An event handed to the producer, awaiting its delivery report.
struct Pending {
    at: Checkpoint,
    delivery: DeliveryFuture,
}

struct Sender<'a> {
    pool: &'a Pool,
    config: &'a RelayConfig,
    publisher: &'a mut Publisher,
    client: &'a Client,
    wake: &'a Notify,
}

impl Sender<'_> {
    async fn run(
        self,
        start: Checkpoint,
        batches: mpsc::Sender<Vec<Pending>>,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        // Reads go through the pool (the lock connection is a plain client); holding one
        // connection for the session keeps its prepared statement.
        let reader = self
            .pool
            .get()
            .await
            .context("failed to get a connection for reading the log")?;
        let mut cursor = start;
        let mut eager = 0;
        while !is_stopped(&stop) {
            let events = read_after(&reader, cursor, self.config.batch_size).await?;
            let Some(last) = events.last() else {
                anyhow::ensure!(
                    !self.client.is_closed(),
                    "the relay's database connection closed"
                );
                let delay = if eager > 0 {
                    // The notifying transaction committed, but the tail shows it only once no
                    // older transaction is running anywhere in the cluster: look again soon.
                    eager -= 1;
                    Duration::from_millis(1 << (EAGER_RETRIES - 1 - eager))
                } else {
                    self.config.poll_interval
                };
                tokio::select! {
                    () = self.wake.notified() => eager = EAGER_RETRIES,
                    () = tokio::time::sleep(delay) => {}
                    () = stopped(&mut stop) => {}
                }
                continue;
            };
            cursor = last.checkpoint();
            let mut batch = Vec::with_capacity(events.len());
            for event in &events {
                let delivery = self.publisher.send(event).await?;
                batch.push(Pending {
                    at: event.checkpoint(),
                    delivery,
                });
            }
            if batches.send(batch).await.is_err() {
                // The confirmer ended; its result is the session's.
                break;
            }
        }
        Ok(())
    }
}

async fn confirm(
    config: &RelayConfig,
    producer: &Producer,
    client: &Client,
    start: Checkpoint,
    mut batches: mpsc::Receiver<Vec<Pending>>,
    stop: watch::Receiver<bool>,
    progressed: &mut bool,
) -> anyhow::Result<()> {
    let name = config.name.as_str();
    let published = metrics::counter!("plinth_relay_published_total", "relay" => name.to_owned());
    let position = metrics::gauge!("plinth_relay_checkpoint_position", "relay" => name.to_owned());
    let mut confirmed = start;
    let mut saved = start;
    let mut last_save = Instant::now();
    let mut give_up_at = None;
    let mut give_up = || {
        is_stopped(&stop)
            && Instant::now()
                >= *give_up_at.get_or_insert_with(|| Instant::now() + config.shutdown_grace)
    };
    let result = async {
        while let Some(batch) = batches.recv().await {
            let n = batch.len() as u64;
            for mut pending in batch {
                if !producer::confirmed(
                    producer,
                    &mut pending.delivery,
                    pending.at.position,
                    &mut give_up,
                )
                .await?
                {
                    tracing::warn!(
                        "stopping with deliveries unconfirmed; the next leader re-sends them"
                    );
                    return Ok(());
                }
                confirmed = pending.at;
            }
            published.increment(n);
            if batches.is_empty() || last_save.elapsed() >= SAVE_EVERY {
                checkpoint::save(client, name, confirmed).await?;
                saved = confirmed;
                last_save = Instant::now();
                *progressed = true;
                position.set(confirmed.position as f64);
            }
        }
        anyhow::Ok(())
    }
    .await;
    if confirmed != saved {
        // Keep what was confirmed even when the session is failing, unless the database is
        // what failed.
        match checkpoint::save(client, name, confirmed).await {
            Ok(()) => position.set(confirmed.position as f64),
            Err(e) => tracing::warn!(error = %e, "failed to save the final checkpoint"),
        }
    }
    result
}

/// The connection that holds the leadership lock, writes the checkpoint and (when dedicated)
/// receives notifications. Dropping it closes the connection, which releases the lock: that
/// is what lets a standby take over from a leader whose task was killed.
enum LockConnection {
    Dedicated {
        client: Client,
        _listener: AbortOnDrop,
    },
    Pooled(ClientWrapper),
}

impl std::ops::Deref for LockConnection {
    type Target = Client;
    fn deref(&self) -> &Client {
        match self {
            Self::Dedicated { client, .. } => client,
            Self::Pooled(wrapper) => wrapper,
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn connect(
    pool: &Pool,
    config: &RelayConfig,
) -> anyhow::Result<(LockConnection, Arc<Notify>)> {
    let wake = Arc::new(Notify::new());
    let Some(url) = &config.database_url else {
        // Taken out of the pool: never returned to it, so the lock cannot leak to another user.
        let object = pool
            .get()
            .await
            .context("failed to connect to PostgreSQL")?;
        return Ok((LockConnection::Pooled(Object::take(object)), wake));
    };
    let (client, mut connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("failed to connect to PostgreSQL")?;
    let woken = wake.clone();
    let listener = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => woken.notify_one(),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the relay's database connection failed");
                    break;
                }
            }
        }
    });
    client.batch_execute("listen plinth_events").await?;
    Ok((
        LockConnection::Dedicated {
            client,
            _listener: AbortOnDrop(listener),
        },
        wake,
    ))
}

/// `plinth_relay_active` is 1 while this process leads the relay.
struct ActiveGauge(String);

impl ActiveGauge {
    fn set(name: &str) -> Self {
        metrics::gauge!("plinth_relay_active", "relay" => name.to_owned()).set(1.0);
        Self(name.to_owned())
    }
}

impl Drop for ActiveGauge {
    fn drop(&mut self) {
        metrics::gauge!("plinth_relay_active", "relay" => self.0.clone()).set(0.0);
    }
}
