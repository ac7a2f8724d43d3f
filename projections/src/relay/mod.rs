//! What the relays (Kafka, NATS) share: their checkpoints and leadership lock in
//! `relay_checkpoints`, their lag, and how a relay's parts are told to stop.

pub mod checkpoint;
pub mod lag;

use tokio::sync::watch;

/// Resolves once `stop` is set (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

pub(crate) fn is_stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

/// How long a relay waits after a failed session: from `min`, doubling to `max`, back to `min`
/// after a session that made progress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) min: std::time::Duration,
    pub(crate) max: std::time::Duration,
}

/// What a relay does between failed sessions: counts the failure (`plinth_relay_errors_total`),
/// logs it with the relay's name and waits, from `backoff.min` doubling to `backoff.max`, back
/// to `min` after a session that made progress (a relay failing after long good runs retries
/// quickly).
pub(crate) struct Retry {
    name: String,
    backoff: Backoff,
    wait: std::time::Duration,
}

impl Retry {
    pub(crate) fn new(name: &str, backoff: Backoff) -> Self {
        Self {
            name: name.to_owned(),
            backoff,
            wait: backoff.min,
        }
    }

    /// After a failed session; returns false when `stop` was set during the wait.
    pub(crate) async fn after_failure(
        &mut self,
        error: &anyhow::Error,
        progressed: bool,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        if progressed {
            self.wait = self.backoff.min;
        }
        metrics::counter!("plinth_relay_errors_total", "relay" => self.name.clone()).increment(1);
        tracing::error!(
            relay = %self.name,
            error = format!("{error:#}"),
            retry_in_ms = self.wait.as_millis() as u64,
            "relay session failed; resuming from the checkpoint"
        );
        let waited = tokio::select! {
            () = tokio::time::sleep(self.wait) => true,
            () = stopped(stop) => false,
        };
        self.wait = (self.wait * 2).min(self.backoff.max);
        waited
    }
}

/// Runs a relay (`sessions`, given the stop signal) beside its lag report until `shutdown`
/// completes, then tells both to stop and waits for them, so that a stopping relay finishes
/// what it has in flight and saves its checkpoint.
pub(crate) async fn run_until_shutdown<F>(
    pool: &deadpool_postgres::Pool,
    name: &str,
    lag_interval: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()> + Send,
    sessions: impl FnOnce(watch::Receiver<bool>) -> F,
) where
    F: std::future::Future<Output = ()>,
{
    let (stop_tx, stop) = watch::channel(false);
    let work = async {
        tokio::join!(
            sessions(stop.clone()),
            lag::report(pool.clone(), name.to_owned(), lag_interval, stop.clone()),
        );
    };
    tokio::pin!(work);
    tokio::pin!(shutdown);
    tokio::select! {
        () = &mut work => return,
        () = &mut shutdown => {}
    }
    stop_tx.send_replace(true);
    work.await;
    tracing::info!(relay = %name, "relay stopped");
}
