//! How far each projection is behind the log: for `/metrics` and `/readyz`, from whichever
//! process asks (the lag is the projection's, not the applying process's).

use deadpool_postgres::GenericClient;

use plinth_commands::{log, Checkpoint};

use super::projection::Projection;

/// Counting more than this many unapplied events exactly would cost a scan per report; beyond
/// it the count is estimated from positions (as the relay's lag is).
const EXACT_COUNT_LIMIT: i64 = 100_000;

/// One projection's distance from the head of the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProjectionLag {
    pub projection: Projection,
    /// Committed events after its checkpoint (exact up to 100,000, then estimated).
    pub events: u64,
    /// Age of the oldest event it has not applied (0 when there is none).
    pub seconds: f64,
}

/// The lag of every projection. One that never ran (no checkpoint row yet) is behind by the
/// whole log.
pub async fn projection_lags(client: &impl GenericClient) -> anyhow::Result<Vec<ProjectionLag>> {
    let rows = client
        .query("select projection, tx, position from read.checkpoints", &[])
        .await?;
    let mut lags = Vec::with_capacity(Projection::ALL.len());
    for projection in Projection::ALL {
        let checkpoint = rows
            .iter()
            .find(|r| r.get::<_, &str>(0) == projection.name())
            .map(|r| Checkpoint {
                tx: r.get(1),
                position: r.get(2),
            })
            .unwrap_or_default();
        let backlog = log::backlog(client, checkpoint, EXACT_COUNT_LIMIT).await?;
        let events = if backlog.counted < EXACT_COUNT_LIMIT {
            backlog.counted
        } else {
            backlog.counted.max(backlog.head - checkpoint.position)
        };
        lags.push(ProjectionLag {
            projection,
            events: events.max(0) as u64,
            seconds: backlog.oldest_seconds.unwrap_or(0.0).max(0.0),
        });
    }
    Ok(lags)
}
