//! The read side: projectors that tail the event log into read models (schema `read`), the
//! queries that answer from them, and rebuilding them from the log.
//!
//! - [`run_projectors`] applies every [`Projection`] as events commit (LISTEN/NOTIFY plus a
//!   fallback poll), each with its own checkpoint written in the same transaction as its rows,
//!   each applied by one process at a time (advisory lock, with failover).
//! - [`ReadProgress`] is read-your-writes: it waits until every projection has applied the
//!   event at a position a command returned, one watcher per process for all waiting reads.
//! - [`queries`] answers the API's reads, authorization included, in indexed lookups only (the
//!   tenant tree is a materialized path: `docs/adr/0002-tenant-tree-read-model.md`).
//! - [`rebuild`] rebuilds projections into fresh tables from the log and swaps them in
//!   atomically (`plinth bench rebuild` measures it).
//!
//! One code path turns events into rows (`models`, one file per read model over a shared write
//! engine): a batch of events is folded in memory into per-key changes, then written set-wise.
//! The incremental projector and the rebuild differ only in batch size and in how the changes
//! reach the tables; the property test in `tests` checks that they agree with each other and
//! with the domain's in-memory model of the rules.

mod lag;
mod models;
mod progress;
mod projection;
pub mod queries;
mod rebuild;
mod runner;

pub use lag::{projection_lags, ProjectionLag};
pub use progress::{has_reached, NotYet, ReadProgress};
pub use projection::{Projection, ProjectionSet};
pub use rebuild::{
    rebuild, rebuild_as_of, rebuild_in_batches, RebuildProgress, RebuildReport, REBUILD_BATCH,
    REBUILD_SCHEMA,
};
pub use runner::{run_projectors, run_projectors_with, RunnerConfig, CHANNEL};

#[cfg(test)]
mod tests;
