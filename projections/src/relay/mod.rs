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
