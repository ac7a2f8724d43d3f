//! Leadership and the publishing pipeline.
//!
//! A session: connect, win the advisory lock (or stand by), build a producer, then run two
//! halves side by side: the sender, fed by the write side's [`Follower`] from the checkpoint,
//! hands events to librdkafka in log order; the confirmer awaits their delivery reports in
//! that same order and saves the checkpoint after each confirmed batch. Awaiting in log order is what makes the
//! checkpoint a contiguous prefix: an event is covered only once it and every event before it
//! were confirmed. Any error ends the session; the next one starts from the saved checkpoint
//! with a new producer, so whatever was in flight is sent again (duplicates, never gaps).

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use plinth_commands::follower::{Consumer, Follower, FollowerConfig, LockConnection};
use plinth_commands::{Checkpoint, StoredEvent};
use rdkafka::producer::DeliveryFuture;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_postgres::Client;

use super::producer::{self, Producer, Publisher};
use super::{checkpoint, is_stopped, stopped, RelayConfig};
use crate::relay::{Backoff, Retry};

/// Save the checkpoint at least this often while batches keep coming.
const SAVE_EVERY: Duration = Duration::from_millis(200);

/// Runs sessions until `stop`, backing off after failures.
pub(crate) async fn run(
    pool: Pool,
    config: Arc<RelayConfig>,
    listen: Option<tokio_postgres::Config>,
    mut stop: watch::Receiver<bool>,
) {
    // Standbys listen too: one connection each, and no delay when they take over.
    let mut follower = Follower::start(
        pool.clone(),
        FollowerConfig {
            listen,
            poll_interval: config.poll_interval,
            batch_size: config.batch_size,
        },
    );
    let mut retry = Retry::new(
        &config.name,
        Backoff {
            min: config.min_backoff,
            max: config.max_backoff,
        },
    );
    while !is_stopped(&stop) {
        let mut progressed = false;
        let Err(error) = lead(&pool, &config, &mut follower, stop.clone(), &mut progressed).await
        else {
            return;
        };
        if !retry.after_failure(&error, progressed, &mut stop).await {
            return;
        }
    }
}

/// One session. Returns `Ok` only when stopped.
#[tracing::instrument(name = "relay", skip_all, fields(relay = %config.name))]
async fn lead(
    pool: &Pool,
    config: &RelayConfig,
    follower: &mut Follower,
    mut stop: watch::Receiver<bool>,
    progressed: &mut bool,
) -> anyhow::Result<()> {
    let client = connect(pool, config).await?;
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
        publisher: &mut publisher,
        lock: &client,
        cursor: start,
        batches,
    };
    tokio::try_join!(
        send(follower, sender, stop.clone()),
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

/// The consumer the follower feeds: hands events to the producer in log order, and each
/// batch to the confirmer.
struct Sender<'a> {
    publisher: &'a mut Publisher,
    lock: &'a LockConnection,
    /// The last event handed to the producer (ahead of the saved checkpoint).
    cursor: Checkpoint,
    batches: mpsc::Sender<Vec<Pending>>,
}

impl Consumer for Sender<'_> {
    async fn cursors(
        &mut self,
        _client: &mut deadpool_postgres::Client,
    ) -> anyhow::Result<Vec<Checkpoint>> {
        // Without its lock connection this process no longer leads.
        self.lock.ensure_open()?;
        Ok(vec![self.cursor])
    }

    async fn consume(
        &mut self,
        _client: &mut deadpool_postgres::Client,
        _after: Checkpoint,
        events: Vec<StoredEvent>,
    ) -> anyhow::Result<()> {
        let mut batch = Vec::with_capacity(events.len());
        for event in &events {
            let delivery = self.publisher.send(event).await?;
            batch.push(Pending {
                at: event.checkpoint(),
                delivery,
            });
            self.cursor = event.checkpoint();
        }
        self.batches
            .send(batch)
            .await
            .map_err(|_| anyhow::anyhow!("the confirmer stopped"))
    }
}

/// Feeds `sender` until `stop`, or until the confirmer ends (its result is the session's).
async fn send(
    follower: &mut Follower,
    mut sender: Sender<'_>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let confirmer = sender.batches.clone();
    tokio::select! {
        result = follower.follow(&mut sender) => {
            let Err(error) = result;
            if confirmer.is_closed() {
                Ok(())
            } else {
                Err(error)
            }
        }
        () = stopped(&mut stop) => Ok(()),
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
            let acking = Instant::now();
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
            tracing::debug!(ack_us = acking.elapsed().as_micros() as u64, "confirmed");
            if batches.is_empty() || last_save.elapsed() >= SAVE_EVERY {
                let saving = Instant::now();
                checkpoint::save(client, name, confirmed).await?;
                tracing::debug!(save_us = saving.elapsed().as_micros() as u64, "saved");
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

/// The connection that holds the leadership lock and writes the checkpoint: the relay's own
/// when `database_url` is given, else one taken out of the pool.
async fn connect(pool: &Pool, config: &RelayConfig) -> anyhow::Result<LockConnection> {
    match &config.database_url {
        Some(url) => LockConnection::connect(&url.parse()?).await,
        None => LockConnection::take(pool).await,
    }
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
