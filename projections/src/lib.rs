//! Plinth's read side: projectors that tail the event log into read models, the queries that
//! answer from them, and the relays that publish the log downstream (Kafka; NATS JetStream in
//! the Infratographer wire format).
//!
//! Everything here is driven by the durable log (read through `plinth_commands::log`, tailed
//! by `plinth_commands::follower`) and keeps its own checkpoint, so nothing is lost when a
//! process dies between a commit and an update.

#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "nats")]
pub mod nats;
pub mod read;
#[cfg(any(feature = "kafka", feature = "nats"))]
pub mod relay;
