//! How far the relay is behind the log.

use std::time::Duration;

use deadpool_postgres::Pool;
use plinth_commands::{log, Checkpoint};
use tokio::sync::watch;

use super::{checkpoint, is_stopped, stopped};

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
    let checkpoint = checkpoint::checkpoint(pool, name)
        .await?
        .unwrap_or_default();
    let backlog = log::backlog(&pool.get().await?, checkpoint, EXACT_COUNT_LIMIT).await?;
    let events = if backlog.counted < EXACT_COUNT_LIMIT {
        backlog.counted
    } else {
        backlog.counted.max(backlog.head - checkpoint.position)
    };
    Ok(Lag {
        events: events.max(0) as u64,
        seconds: backlog.oldest_seconds.unwrap_or(0.0).max(0.0),
        checkpoint,
    })
}

/// Publishes `plinth_relay_lag_events` and `plinth_relay_lag_seconds` of relay `name` every
/// `interval` until `stop`. Standbys report too: the lag is the relay name's, not the process's.
pub(crate) async fn report(
    pool: Pool,
    name: String,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let events = metrics::gauge!("plinth_relay_lag_events", "relay" => name.clone());
    let seconds = metrics::gauge!("plinth_relay_lag_seconds", "relay" => name.clone());
    while !is_stopped(&stop) {
        match lag(&pool, &name).await {
            Ok(lag) => {
                events.set(lag.events as f64);
                seconds.set(lag.seconds);
            }
            Err(e) => tracing::debug!(error = %e, "failed to measure relay lag"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stopped(&mut stop) => {}
        }
    }
}
