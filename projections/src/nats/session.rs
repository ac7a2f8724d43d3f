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
//!
//! Order ([`Ordering::Chained`], the default): every publish of a session but the first carries
//! `Nats-Expected-Last-Msg-Id` = the previous event's id. If a message is lost in flight (the
//! connection drops, a stream leader changes) while later ones reach the server, those are
//! refused ("wrong last msg ID", error 10070) instead of being stored ahead of it; the session
//! fails at the first missing acknowledgement and the next one re-sends in log order. The
//! server checks `Nats-Msg-Id` first, so a re-sent duplicate carrying a stale expectation is
//! still acknowledged as a duplicate. The first publish of a session names nothing: it follows
//! the checkpoint, which the stream holds, and a stream whose last message is not Plinth's
//! (a repeat past the duplicate window, another publisher) must not stop the relay for good.
//!
//! A clustered nats-server 2.11 keeps the id of a refused message "in process" (error 10158 on
//! a re-send) until its duplicate window has passed. So after a failed session the next one
//! re-sends what the failed one had published one event at a time, each acknowledged before
//! the next, and pipelines again past it: a refusal then delays the relay by one duplicate
//! window at most, instead of getting every message pipelined behind the blocked one refused
//! (and so blocked) in turn.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{Context, ErrorCode};
use deadpool_postgres::Pool;
use plinth_commands::follower::{Consumer, Follower, FollowerConfig, LockConnection};
use plinth_commands::{Checkpoint, StoredEvent};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_postgres::Client;

use super::history::States;
use super::{NatsConfig, Ordering};
use crate::relay::{checkpoint, is_stopped, stopped, Backoff, Retry};

/// Save the checkpoint at least this often while batches keep coming.
const SAVE_EVERY: Duration = Duration::from_millis(200);

/// Sessions ended by a refused publish in a row before the log says another publisher may
/// share the stream.
const REFUSALS_BEFORE_HINT: u32 = 3;

/// JetStream's "duplicate message id is in process" (not exported by async-nats).
const DUPLICATE_IN_PROCESS: ErrorCode = ErrorCode(10158);

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
    // Chained: up to here, a session publishes one event at a time (see the module's doc).
    let mut careful_until = Checkpoint::default();
    let mut refusals = 0;
    while !is_stopped(&stop) {
        let mut progressed = false;
        let mut sent = Checkpoint::default();
        let session = Session {
            careful_until,
            progressed: &mut progressed,
            sent: &mut sent,
        };
        let Err(error) = lead(&pool, &config, &mut follower, stop.clone(), session).await else {
            return;
        };
        if config.ordering == Ordering::Chained {
            careful_until = careful_until.max(sent);
        }
        count_refusals(&error, &mut refusals);
        if !retry.after_failure(&error, progressed, &mut stop).await {
            return;
        }
    }
}

/// Counts the sessions ended by a refused publish in a row (a clustered server's "in process"
/// answers in between do not break the run) and says, when the stream looks shared with
/// another publisher, what to set.
fn count_refusals(error: &anyhow::Error, refusals: &mut u32) {
    if let Some(refused) = error.downcast_ref::<Refused>() {
        *refusals += 1;
        let foreign = refused.last_is_foreign();
        if foreign || *refusals >= REFUSALS_BEFORE_HINT {
            tracing::warn!(
                refused_sessions = *refusals,
                "{}; another publisher may be writing to this stream: chained publishes are \
                 refused whenever another publisher's message comes last. Give Plinth a stream \
                 of its own, or set PLINTH_NATS_ORDERING=unchained (docs/infratographer.md)",
                if foreign {
                    "the stream's last message is not one of Plinth's events".to_owned()
                } else {
                    format!(
                        "{} sessions in a row ended with a refused publish",
                        *refusals
                    )
                }
            );
        }
    } else if error.downcast_ref::<InProcess>().is_none() {
        *refusals = 0;
    }
}

/// What a session is given and reports back.
struct Session<'a> {
    /// Publish up to here one event at a time.
    careful_until: Checkpoint,
    /// Set once a checkpoint was saved.
    progressed: &'a mut bool,
    /// The last event published.
    sent: &'a mut Checkpoint,
}

/// One session. Returns `Ok` only when stopped.
#[tracing::instrument(name = "nats_relay", skip_all, fields(relay = %config.name))]
async fn lead(
    pool: &Pool,
    config: &NatsConfig,
    follower: &mut Follower,
    mut stop: watch::Receiver<bool>,
    session: Session<'_>,
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
        ordering = %config.ordering,
        "leading the NATS relay"
    );
    if session.careful_until > start {
        tracing::info!(
            until = session.careful_until.position,
            "re-sending what the failed session had published one event at a time"
        );
    }
    *session.sent = start;
    let (batches, rx) = mpsc::channel(config.max_batches_in_flight);
    let (confirmed_tx, confirmed) = watch::channel(start);
    let sender = Sender {
        config,
        jetstream: &jetstream,
        states: States::new(config.state_cache),
        lock: &client,
        sent: session.sent,
        previous: None,
        careful_until: session.careful_until,
        batches,
        confirmed,
    };
    tokio::try_join!(
        send(follower, sender, stop.clone()),
        confirm(
            config,
            &client,
            start,
            rx,
            confirmed_tx,
            stop,
            session.progressed
        ),
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
    /// Its `Nats-Msg-Id`: the event id.
    pub(crate) msg_id: String,
    /// The `Nats-Expected-Last-Msg-Id` it carries, if any.
    pub(crate) after: Option<String>,
    pub(crate) ack: PublishAckFuture,
}

/// Publishes `stored` (mapped with `states`), returning what to await. With `after`, JetStream
/// stores it only if the stream's last message has that `Nats-Msg-Id` (or drops it as a
/// duplicate, which it checks first).
pub(crate) async fn publish(
    jetstream: &Context,
    states: &mut States,
    client: &impl deadpool_postgres::GenericClient,
    config: &super::MessageConfig,
    stored: &StoredEvent,
    after: Option<&str>,
) -> anyhow::Result<Pending> {
    let outgoing = states.message(client, stored, config).await?;
    let mut message = PublishMessage::build()
        .payload(outgoing.payload.into())
        .message_id(&outgoing.msg_id);
    if let Some(after) = after {
        message = message.expected_last_message_id(after);
    }
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
        msg_id: outgoing.msg_id,
        after: after.map(str::to_owned),
        ack,
    })
}

/// JetStream refused a chained publish: the event before it is not the stream's last message
/// (error 10070). Nothing was stored; the session ends and the next re-sends from the
/// checkpoint, in log order.
#[derive(Debug)]
pub(crate) struct Refused {
    position: i64,
    event_id: String,
    subject: String,
    /// The `Nats-Expected-Last-Msg-Id` it carried.
    after: String,
    /// The stream's last message id as the server reported it (`""`: a message without one).
    last: Option<String>,
}

impl Refused {
    /// Whether the stream's last message is certainly not Plinth's: it has no `Nats-Msg-Id`
    /// (x/events publishes without one), or one that is no event id.
    fn last_is_foreign(&self) -> bool {
        self.last
            .as_deref()
            .is_some_and(|last| uuid::Uuid::parse_str(last).is_err())
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "JetStream refused the event at position {} ({}) on `{}` (wrong last msg ID, error \
             10070): it was published to follow event {}, but the stream's last message is ",
            self.position, self.event_id, self.subject, self.after
        )?;
        match self.last.as_deref() {
            Some("") => f.write_str("one without Nats-Msg-Id")?,
            Some(last) => write!(f, "`{last}`")?,
            None => f.write_str("another one")?,
        }
        f.write_str("; it was not stored")
    }
}

impl std::error::Error for Refused {}

/// A clustered nats-server 2.11 still holds the id of an earlier refused publish of the event
/// (error 10158): it accepts the event again once its duplicate window has passed.
#[derive(Debug, thiserror::Error)]
#[error(
    "JetStream still holds the id of the event at position {position} on `{subject}` as in \
     process (error 10158): a clustered nats-server 2.11 keeps the id of a refused publish \
     until the stream's duplicate window has passed; the relay retries until then"
)]
pub(crate) struct InProcess {
    position: i64,
    subject: String,
}

/// The server's error behind a failed publish, if it answered with one.
fn server_error(error: &PublishError) -> Option<&async_nats::jetstream::Error> {
    std::error::Error::source(error)?.downcast_ref()
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
        Err(e) if e.kind() == PublishErrorKind::WrongLastMessageId => {
            // async-nats keeps the description only in its Display: "wrong last msg ID: <id>
            // (code 400, error code 10070)".
            let last = server_error(&e).and_then(|server| {
                let text = server.to_string();
                let (description, _) = text.rsplit_once(" (code ")?;
                Some(description.strip_prefix("wrong last msg ID: ")?.to_owned())
            });
            Err(Refused {
                position: pending.at.position,
                event_id: pending.msg_id,
                subject: pending.subject,
                after: pending.after.unwrap_or_default(),
                last,
            }
            .into())
        }
        Err(e) if server_error(&e).map(|s| s.error_code()) == Some(DUPLICATE_IN_PROCESS) => {
            Err(InProcess {
                position: pending.at.position,
                subject: pending.subject,
            }
            .into())
        }
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
    sent: &'a mut Checkpoint,
    /// The id of the last event published in this session: what the next publish names as
    /// the stream's last message, when chained.
    previous: Option<String>,
    /// Up to here, each event is acknowledged before the next is published.
    careful_until: Checkpoint,
    batches: mpsc::Sender<Vec<Pending>>,
    /// The last event acknowledged, as the confirmer reports it.
    confirmed: watch::Receiver<Checkpoint>,
}

impl Sender<'_> {
    async fn hand_over(&mut self, batch: Vec<Pending>) -> anyhow::Result<()> {
        self.batches
            .send(batch)
            .await
            .map_err(|_| anyhow::anyhow!("the confirmer stopped"))
    }
}

impl Consumer for Sender<'_> {
    async fn cursors(
        &mut self,
        _client: &mut deadpool_postgres::Client,
    ) -> anyhow::Result<Vec<Checkpoint>> {
        // Without its lock connection this process no longer leads.
        self.lock.ensure_open()?;
        Ok(vec![*self.sent])
    }

    async fn consume(
        &mut self,
        client: &mut deadpool_postgres::Client,
        _after: Checkpoint,
        events: Vec<StoredEvent>,
    ) -> anyhow::Result<()> {
        let mut batch = Vec::with_capacity(events.len());
        for event in &events {
            let after = match self.config.ordering {
                Ordering::Chained => self.previous.as_deref(),
                Ordering::Unchained => None,
            };
            let pending = publish(
                self.jetstream,
                &mut self.states,
                &*client,
                &self.config.message,
                event,
                after,
            )
            .await?;
            let at = pending.at;
            self.previous = Some(pending.msg_id.clone());
            *self.sent = at;
            if at <= self.careful_until {
                if !batch.is_empty() {
                    self.hand_over(std::mem::take(&mut batch)).await?;
                }
                self.hand_over(vec![pending]).await?;
                self.confirmed
                    .wait_for(|confirmed| *confirmed >= at)
                    .await
                    .map_err(|_| anyhow::anyhow!("the confirmer stopped"))?;
            } else {
                batch.push(pending);
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.hand_over(batch).await
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
    acknowledged_to: watch::Sender<Checkpoint>,
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
                acknowledged_to.send_replace(at);
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
