//! Plinth's write side: the PostgreSQL event store and command handling.
//!
//! A [`CommandBus`] takes [`Submission`]s, coalesces concurrent ones into one transaction
//! (group commit), locks and loads the streams each command reads ([`lock_streams`]), asks the pure domain to
//! decide, and appends the events with their hash chain, stream snapshots and idempotency keys
//! in that same transaction. [`EventStore`] reads the log back, gap-safely.
//! See `docs/architecture.md` and `docs/adr/` for why it is built this way.

mod batch;
mod committer;
mod error;
pub mod hash;
mod locks;
pub mod migrate;
mod model;
mod rows;
mod scratch;
mod store;
mod submission;

pub use batch::Processed;
pub use committer::CommandBus;
pub use error::CommandError;
pub use locks::lock_streams;
pub use model::{AppendedEvent, Checkpoint, CommandOutcome, EventMetadata, StoredEvent};
pub use scratch::ScratchDatabase;
pub use store::{pool, read_after, ChainBreak, EventStore, HeadMismatch};
pub use submission::{IdempotencyKey, Submission};
