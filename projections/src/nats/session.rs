//! Leadership and the publishing pipeline, shaped as the Kafka relay's (`kafka/leader.rs`).
//!
//! A session: connect, win the advisory lock of the relay's name (or stand by), connect to
//! NATS, then run two halves side by side. The sender, fed by the log [`Follower`] from the
//! checkpoint, maps each event to its message and publishes it (JetStream answers each publish
//! with an acknowledgement, later); the confirmer awaits those acknowledgements in log order and
//! saves the checkpoint after each acknowledged batch, so the checkpoint only ever covers a
//! contiguous prefix of the log. Any error ends the session (a missing stream shows here as
//! "no responders"); the next one resumes from the saved checkpoint and re-sends what was in
//! flight, which the stream drops as duplicates by `Nats-Msg-Id`.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::Context;
use deadpool_postgres::Pool;
use plinth_commands::follower::{Consumer, Follower, FollowerConfig, LockConnection};
use plinth_commands::{Checkpoint, StoredEvent};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_postgres::Client;

use super::history::States;
use super::NatsConfig;
use crate::relay::{checkpoint, is_stopped, stopped, Backoff, Retry};

/// Save the checkpoint at least this often while batches keep coming.
const SAVE_EVERY: Duration = Duration::from_millis(200);

/// Runs sessions until `stop`, backing off after failures.
pub(crate) async fn run(
    pool: Pool,
    config: Arc<NatsConfig>,
    listen: Option<tokio_postgres::Config>,
    mut stop: watch::Receiver<bool>,
) {
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
#[tracing::instrument(name = "nats_relay", skip_all, fields(relay = %config.name))]
async fn lead(
    pool: &Pool,
    config: &NatsConfig,
    follower: &mut Follower,
    mut stop: watch::Receiver<bool>,
    progressed: &mut bool,
) -> anyhow::Result<()> {
    let client = match &config.database_url {
        Some(url) => LockConnection::connect(&url.parse()?).await?,
        None => LockConnection::take(pool).await?,
    };
    // Losing a checkpoint write to a crash only means re-sending a few events.
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
    let jetstream = super::connect(
        &config.url,
        &config.name,
        config.ack_timeout,
        config.max_in_flight(),
    )
    .await?;
    let start = checkpoint::load(&client, &config.name).await?;
    tracing::info!(
        tx = start.tx,
        position = start.position,
        "leading the NATS relay"
    );
    let (batches, rx) = mpsc::channel(config.max_batches_in_flight);
    let sender = Sender {
        config,
        jetstream: &jetstream,
        states: States::new(config.state_cache),
        lock: &client,
        cursor: start,
        batches,
    };
    tokio::try_join!(
        send(follower, sender, stop.clone()),
        confirm(config, &client, start, rx, stop, progressed),
    )?;
    Ok(())
}

/// `pg_stat_activity.application_name` = `plinth-relay:<name>:starting|standby|leader`.
async fn show_role(client: &Client, name: &str, role: &str) -> anyhow::Result<()> {
    client
        .execute(
            "select set_config('application_name', $1, false)",
            &[&format!("plinth-relay:{name}:{role}")],
        )
        .await?;
    Ok(())
}

/// A published event, awaiting its acknowledgement.
pub(crate) struct Pending {
    pub(crate) at: Checkpoint,
    pub(crate) subject: String,
    pub(crate) ack: PublishAckFuture,
}

/// Publishes `stored` (mapped with `states`), returning what to await.
pub(crate) async fn publish(
    jetstream: &Context,
    states: &mut States,
    client: &impl deadpool_postgres::GenericClient,
    config: &super::MessageConfig,
    stored: &StoredEvent,
) -> anyhow::Result<Pending> {
    let outgoing = states.message(client, stored, config).await?;
    let message = PublishMessage::build()
        .payload(outgoing.payload.into())
        .message_id(&outgoing.msg_id);
    let ack = jetstream
        .send_publish(outgoing.subject.clone(), message)
        .await
        .map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "failed to publish the event at position {} to {}",
                stored.position, outgoing.subject
            ))
        })?;
    Ok(Pending {
        at: stored.checkpoint(),
        subject: outgoing.subject,
        ack,
    })
}

/// Awaits one acknowledgement; whether the stream already had the message (a repeat inside its
/// duplicate window).
pub(crate) async fn acknowledged(pending: Pending) -> anyhow::Result<bool> {
    match pending.ack.await {
        Ok(ack) => Ok(ack.duplicate),
        Err(e) if e.kind() == PublishErrorKind::StreamNotFound => Err(anyhow::anyhow!(
            "no JetStream stream captures `{}` (the event at position {}): add the subject to a \
             stream (`plinth nats ensure-stream` makes one for development)",
            pending.subject,
            pending.at.position
        )),
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "JetStream did not acknowledge the event at position {} on {}",
            pending.at.position, pending.subject
        ))),
    }
}

/// The consumer the follower feeds: publishes in log order, hands each batch to the
/// confirmer.
struct Sender<'a> {
    config: &'a NatsConfig,
    jetstream: &'a Context,
    states: States,
    lock: &'a LockConnection,
    /// The last event published (ahead of the saved checkpoint).
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
        client: &mut deadpool_postgres::Client,
        _after: Checkpoint,
        events: Vec<StoredEvent>,
    ) -> anyhow::Result<()> {
        let mut batch = Vec::with_capacity(events.len());
        for event in &events {
            let pending = publish(
                self.jetstream,
                &mut self.states,
                &*client,
                &self.config.message,
                event,
            )
            .await?;
            batch.push(pending);
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
    config: &NatsConfig,
    client: &Client,
    start: Checkpoint,
    mut batches: mpsc::Receiver<Vec<Pending>>,
    mut stop: watch::Receiver<bool>,
    progressed: &mut bool,
) -> anyhow::Result<()> {
    let name = config.name.as_str();
    let published = metrics::counter!("plinth_relay_published_total", "relay" => name.to_owned());
    let duplicates = metrics::counter!("plinth_relay_duplicates_total", "relay" => name.to_owned());
    let position = metrics::gauge!("plinth_relay_checkpoint_position", "relay" => name.to_owned());
    let mut confirmed = start;
    let mut saved = start;
    let mut last_save = Instant::now();
    let result = async {
        loop {
            let batch = tokio::select! {
                batch = batches.recv() => batch,
                // Once stopped, only what is already queued is still awaited, within the grace.
                () = stopped(&mut stop) => batches.try_recv().ok(),
            };
            let Some(batch) = batch else { break };
            let n = batch.len() as u64;
            for pending in batch {
                let at = pending.at;
                let waited = if is_stopped(&stop) {
                    tokio::time::timeout(config.shutdown_grace, acknowledged(pending)).await
                } else {
                    Ok(acknowledged(pending).await)
                };
                match waited {
                    Ok(duplicate) => {
                        if duplicate? {
                            duplicates.increment(1);
                        }
                    }
                    Err(_elapsed) => {
                        tracing::warn!(
                            "stopping with publishes unacknowledged; the next leader re-sends them"
                        );
                        return Ok(());
                    }
                }
                confirmed = at;
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
        // Keep what was acknowledged even when the session is failing, unless the database is
        // what failed.
        match checkpoint::save(client, name, confirmed).await {
            Ok(()) => position.set(confirmed.position as f64),
            Err(e) => tracing::warn!(error = %e, "failed to save the final checkpoint"),
        }
    }
    result
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
