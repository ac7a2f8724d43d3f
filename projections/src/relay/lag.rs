//! How far the relay is behind the log.

use std::sync::Arc;

use deadpool_postgres::Pool;
use plinth_commands::Checkpoint;
use tokio::sync::watch;

use super::{is_stopped, stopped, RelayConfig};

/// Counting more than this many unpublished events exactly would cost a scan per report;
/// beyond it the count is estimated from positions.
const EXACT_COUNT_LIMIT: i64 = 100_000;

/// The relay's distance from the head of the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Committed events after the checkpoint (exact up to 100,000, then estimated from
    /// positions).
    pub events: u64,
    /// Age of the oldest unpublished event (0 when there is none).
    pub seconds: f64,
    /// The relay's checkpoint (the start of the log if it never ran).
    pub checkpoint: Checkpoint,
}

/// The lag of relay `name`.
pub async fn lag(pool: &Pool, name: &str) -> anyhow::Result<Lag> {
    let client = pool.get().await?;
    let checkpoint = client
        .query_opt(
            "select tx, position from relay_checkpoints where name = $1",
            &[&name],
        )
        .await?
        .map(|r| Checkpoint {
            tx: r.get(0),
            position: r.get(1),
        })
        .unwrap_or_default();
    // Both queries walk the (tx, position) index from the checkpoint, like the relay does;
    // unlike the relay they also see events still hidden behind a running transaction, which
    // are lag all the same.
    let row = client
        .query_one(
            "select
                 (select count(*) from (select 1 from events where (tx, position) > ($1, $2) limit $3) t),
                 (select extract(epoch from now() - recorded_at)::float8 from events
                   where (tx, position) > ($1, $2) order by tx, position limit 1),
                 (select coalesce(max(position), 0) from events)",
            &[&checkpoint.tx, &checkpoint.position, &EXACT_COUNT_LIMIT],
        )
        .await?;
    let counted: i64 = row.get(0);
    let oldest: Option<f64> = row.get(1);
    let head: i64 = row.get(2);
    let events = if counted < EXACT_COUNT_LIMIT {
        counted
    } else {
        counted.max(head - checkpoint.position)
    };
    Ok(Lag {
        events: events.max(0) as u64,
        seconds: oldest.unwrap_or(0.0).max(0.0),
        checkpoint,
    })
}

/// Publishes `plinth_relay_lag_events` and `plinth_relay_lag_seconds` every `lag_interval`
/// until `stop`. Standbys report too: the lag is the relay name's, not the process's.
pub(crate) async fn report(pool: Pool, config: Arc<RelayConfig>, mut stop: watch::Receiver<bool>) {
    let events = metrics::gauge!("plinth_relay_lag_events", "relay" => config.name.clone());
    let seconds = metrics::gauge!("plinth_relay_lag_seconds", "relay" => config.name.clone());
    while !is_stopped(&stop) {
        match lag(&pool, &config.name).await {
            Ok(lag) => {
                events.set(lag.events as f64);
                seconds.set(lag.seconds);
            }
            Err(e) => tracing::debug!(error = %e, "failed to measure relay lag"),
        }
        tokio::select! {
            () = tokio::time::sleep(config.lag_interval) => {}
            () = stopped(&mut stop) => {}
        }
    }
}
