//! Plinth's write side: the PostgreSQL event store and command handling.
//!
//! A [`CommandBus`] takes [`Submission`]s, coalesces concurrent ones into one transaction
//! (group commit), locks and then loads the streams each command reads ([`lock_streams`]), asks
//! the pure domain to decide, and appends the events with their hash chain, stream snapshots and idempotency keys
//! in that same transaction. [`log`] holds every statement that reads the log back, and with
//! it the one order rule that keeps tail readers gap-safe; [`follower`] is the loop that tails
//! it for the projectors and the relays (wake-ups, retries, polling, leadership).
//! See `docs/architecture.md` and `docs/adr/` for why it is built this way.

mod batch;
mod committer;
mod error;
pub mod follower;
pub mod hash;
mod locks;
pub mod log;
pub mod migrate;
mod model;
mod rows;
mod snapshots;
pub mod sqlstate;
mod store;
mod submission;

pub use batch::Processed;
pub use committer::CommandBus;
pub use error::CommandError;
pub use locks::lock_streams;
pub use log::read_after;
pub use model::{AppendedEvent, Checkpoint, CommandOutcome, EventMetadata, StoredEvent};
pub use snapshots::DEFAULT_CACHED_STATES;
pub use sqlstate::{database_unreachable, DbFailure};
pub use store::{pool, ChainBreak, EventStore, HeadMismatch, Identity};
pub use submission::{IdempotencyKey, Submission};
