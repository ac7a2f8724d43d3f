//! Re-sending a range of the log, for a stream that lost messages (or a new one to fill).

use anyhow::Context as _;
use deadpool_postgres::Pool;
use plinth_commands::log;

use super::history::States;
use super::session::{acknowledged, publish, Pending};
use super::{NatsConfig, Ordering};

/// What a republish did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Republished {
    /// Events sent and acknowledged.
    pub sent: u64,
    /// Of those, how many the stream already had (inside its duplicate window).
    pub duplicates: u64,
}

/// Re-publishes the events with `from_position <= position <= to_position` (to the head of
/// the log as it is now when `to_position` is `None`) exactly as the relay publishes them:
/// same subjects, same bytes, same `Nats-Msg-Id` (so inside the stream's duplicate window
/// nothing is stored twice). The live checkpoint is neither read nor written. Events are sent
/// in position order, which per stream is version order; chained as the relay chains them
/// (`config.ordering`), so a refused publish ends the republish with that error.
pub async fn republish(
    pool: Pool,
    config: NatsConfig,
    from_position: i64,
    to_position: Option<i64>,
) -> anyhow::Result<Republished> {
    config.validate()?;
    let client = pool
        .get()
        .await
        .context("failed to connect to PostgreSQL")?;
    let to = match to_position {
        Some(to) => to,
        None => log::head_position(&client).await?,
    };
    let jetstream = super::connect(
        &config.url,
        &config.name,
        config.ack_timeout,
        config.max_in_flight(),
    )
    .await?;
    let mut states = States::new(config.state_cache);
    let mut next = from_position;
    let mut done = Republished::default();
    // Batch n+1 is published while batch n's acknowledgements are still due.
    let mut in_flight: Vec<Pending> = Vec::new();
    // The id of the event published last: the next one's expected last message, when chained.
    let mut previous: Option<String> = None;
    loop {
        let events = log::read_positions(&client, next, to, config.batch_size).await?;
        let mut batch = Vec::with_capacity(events.len());
        for event in &events {
            let after = match config.ordering {
                Ordering::Chained => previous.as_deref(),
                Ordering::Unchained => None,
            };
            let pending = publish(
                &jetstream,
                &mut states,
                &client,
                &config.message,
                event,
                after,
            )
            .await?;
            previous = Some(pending.msg_id.clone());
            batch.push(pending);
            next = event.position + 1;
        }
        for pending in std::mem::replace(&mut in_flight, batch) {
            done.sent += 1;
            if acknowledged(pending).await? {
                done.duplicates += 1;
            }
        }
        if events.is_empty() {
            break;
        }
        tracing::debug!(next, to, sent = done.sent, "republishing");
    }
    Ok(done)
}
