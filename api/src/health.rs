//! What `/readyz` checks, and what `/metrics` samples from the database at each scrape (the
//! projections' lag, the pool's use): both read the shared database, so any replica answers
//! for the whole deployment, whether or not it runs the projectors itself.

use std::time::Duration;

use plinth_projections::read::projection_lags;

use crate::state::AppState;

/// Longest a readiness check or a scrape's sampling may take: a probe that hangs on an
/// exhausted pool says less than one that answers "not ready".
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether this replica should get traffic: PostgreSQL answers, every migration this binary
/// embeds is applied, and every projection is within `PLINTH_READY_MAX_LAG_EVENTS` of the
/// head of the log (further behind, reads would be stale and read-your-writes would time out).
/// `Err` names each reason.
pub(crate) async fn readiness(state: &AppState) -> Result<(), Vec<String>> {
    let max_lag = state.settings.ready_max_lag_events;
    let checks = async {
        let client = match state.pool.get().await {
            Ok(client) => client,
            Err(e) => {
                tracing::debug!(error = %e, "readiness: no connection");
                return Err(vec!["PostgreSQL is not reachable".to_owned()]);
            }
        };
        if let Err(e) = client.simple_query("select 1").await {
            tracing::debug!(error = %e, "readiness: no answer");
            return Err(vec!["PostgreSQL is not reachable".to_owned()]);
        }
        let mut reasons = Vec::new();
        match plinth_commands::migrate::missing(&client).await {
            Ok(missing) if missing.is_empty() => {}
            Ok(missing) => reasons.push(format!(
                "migrations not applied: {} (run `plinth migrate`)",
                missing.join(", ")
            )),
            Err(e) => reasons.push(format!("cannot read the applied migrations: {e:#}")),
        }
        match projection_lags(&client).await {
            Ok(lags) => reasons.extend(lags.iter().filter(|l| l.events > max_lag).map(|l| {
                format!(
                    "projection `{}` is {} events behind the log (PLINTH_READY_MAX_LAG_EVENTS={max_lag})",
                    l.projection.name(),
                    l.events
                )
            })),
            Err(e) => reasons.push(format!("cannot measure the projections' lag: {e:#}")),
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    };
    tokio::time::timeout(CHECK_TIMEOUT, checks)
        .await
        .unwrap_or_else(|_| {
            Err(vec![format!(
                "the readiness checks took longer than {} s",
                CHECK_TIMEOUT.as_secs()
            )])
        })
}

/// Sets the gauges only the database knows, just before a scrape renders them:
/// `plinth_db_pool_*` (this process's pool) and `plinth_projection_lag_{events,seconds}`.
/// If the database does not answer in time the lag gauges keep their last values, and
/// `plinth_projection_lag_sampled` says 0.
pub(crate) async fn sample_for_scrape(state: &AppState) {
    // Before taking a connection for the lag: the scrape's own is not "in use".
    let status = state.pool.status();
    metrics::gauge!("plinth_db_pool_connections", "state" => "in_use")
        .set(status.size.saturating_sub(status.available) as f64);
    metrics::gauge!("plinth_db_pool_connections", "state" => "idle").set(status.available as f64);
    metrics::gauge!("plinth_db_pool_max_connections").set(status.max_size as f64);
    metrics::gauge!("plinth_db_pool_waiting").set(status.waiting as f64);

    let lags = tokio::time::timeout(CHECK_TIMEOUT, async {
        let client = state.pool.get().await?;
        projection_lags(&client).await
    })
    .await;
    match lags {
        Ok(Ok(lags)) => {
            for lag in lags {
                let name = lag.projection.name();
                metrics::gauge!("plinth_projection_lag_events", "projection" => name)
                    .set(lag.events as f64);
                metrics::gauge!("plinth_projection_lag_seconds", "projection" => name)
                    .set(lag.seconds);
            }
            metrics::gauge!("plinth_projection_lag_sampled").set(1.0);
        }
        Ok(Err(e)) => {
            tracing::debug!(
                error = format!("{e:#}"),
                "could not sample the projections' lag"
            );
            metrics::gauge!("plinth_projection_lag_sampled").set(0.0);
        }
        Err(_) => metrics::gauge!("plinth_projection_lag_sampled").set(0.0),
    }
}
