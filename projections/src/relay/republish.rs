//! Re-sending a range of the log, for a consumer that lost data.

use anyhow::Context as _;
use deadpool_postgres::Pool;
use plinth_commands::{EventMetadata, StoredEvent};
use tokio_postgres::Row;

use super::producer::{self, Publisher};
use super::RelayConfig;

/// Re-publishes the events with `from_position <= position <= to_position` (to the head of
/// the log as it is now when `to_position` is `None`) to `config.topic_prefix`, exactly as
/// the relay publishes them, and returns how many were confirmed. The live checkpoint is
/// neither read nor written: a running relay carries on, and consumers see the range again
/// (they dedupe by `ce_id`).
///
/// Events are sent in position order. Per stream that is version order: the write side
/// appends version n+1 only after version n committed (the stream row is locked), or later in
/// the same statement, so its position is always higher.
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
        None => client
            .query_one("select coalesce(max(position), 0) from events", &[])
            .await?
            .get(0),
    };
    let mut publisher = Publisher::new(&config)?;
    let statement = client
        .prepare_cached(
            "select position, tx, event_id, stream_id, stream_version, event_type, schema_version,
                    data::text as data, metadata::text as metadata, recorded_at
             from events where position >= $1 and position <= $2 order by position limit $3",
        )
        .await?;
    let mut next = from_position;
    let mut sent = 0u64;
    // Batch n+1 is read and handed to librdkafka while batch n is still being confirmed.
    let mut in_flight: Vec<(i64, rdkafka::producer::DeliveryFuture)> = Vec::new();
    loop {
        let rows = client
            .query(&statement, &[&next, &to, &config.batch_size])
            .await?;
        let mut batch = Vec::with_capacity(rows.len());
        for row in &rows {
            let event = stored_event(row)?;
            batch.push((event.position, publisher.send(&event).await?));
            next = event.position + 1;
        }
        for (position, mut delivery) in std::mem::replace(&mut in_flight, batch) {
            producer::confirmed(&publisher.producer, &mut delivery, position, || false).await?;
            sent += 1;
        }
        if rows.is_empty() {
            break;
        }
        tracing::debug!(next, to, sent, "republishing");
    }
    Ok(sent)
}

fn stored_event(row: &Row) -> anyhow::Result<StoredEvent> {
    let metadata: String = row.get("metadata");
    let metadata: EventMetadata = serde_json::from_str(&metadata).context("bad event metadata")?;
    Ok(StoredEvent {
        position: row.get("position"),
        tx: row.get("tx"),
        event_id: row.get("event_id"),
        stream_id: row.get("stream_id"),
        stream_version: row.get("stream_version"),
        event_type: row.get("event_type"),
        schema_version: row.get("schema_version"),
        data: row.get("data"),
        metadata,
        recorded_at: row.get("recorded_at"),
        hash: Vec::new(),
    })
}
