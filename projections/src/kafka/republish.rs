//! Re-sending a range of the log, for a consumer that lost data.

use anyhow::Context as _;
use deadpool_postgres::Pool;
use plinth_commands::log;

use super::producer::{self, Publisher};
use super::RelayConfig;

/// Re-publishes the events with `from_position <= position <= to_position` (to the head of
/// the log as it is now when `to_position` is `None`) to `config.topic_prefix`, exactly as
/// the relay publishes them, and returns how many were confirmed. The live checkpoint is
/// neither read nor written: a running relay carries on, and consumers see the range again
/// (they dedupe by `ce_id`).
///
/// Events are sent in position order, which per stream is version order
/// (`plinth_commands::log::read_positions`).
pub async fn republish(
    pool: Pool,
    config: RelayConfig,
    from_position: i64,
    to_position: Option<i64>,
) -> anyhow::Result<u64> {
    let client = pool
        .get()
        .await
        .context("failed to connect to PostgreSQL")?;
    let to = match to_position {
        Some(to) => to,
        None => log::head_position(&client).await?,
    };
    let mut publisher = Publisher::new(&config)?;
    let mut next = from_position;
    let mut sent = 0u64;
    // Batch n+1 is read and handed to librdkafka while batch n is still being confirmed.
    let mut in_flight: Vec<(i64, rdkafka::producer::DeliveryFuture)> = Vec::new();
    loop {
        let events = log::read_positions(&client, next, to, config.batch_size).await?;
        let mut batch = Vec::with_capacity(events.len());
        for event in &events {
            batch.push((event.position, publisher.send(event).await?));
            next = event.position + 1;
        }
        for (position, mut delivery) in std::mem::replace(&mut in_flight, batch) {
            producer::confirmed(&publisher.producer, &mut delivery, position, || false).await?;
            sent += 1;
        }
        if events.is_empty() {
            break;
        }
        tracing::debug!(next, to, sent, "republishing");
    }
    Ok(sent)
}
