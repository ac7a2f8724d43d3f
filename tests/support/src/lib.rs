//! What Plinth's tests and benchmarks share, and nothing `plinth serve` runs: throwaway
//! databases and synthetic logs written straight into the `events` table.
//!
//! A synthetic log bypasses the write side (no deciding, no stream rows, zeroed hashes), so
//! `plinth audit verify` rejects it: it is never for a real database. Its users are the
//! integration tests (`tests/it`), the projections' property test, and `plinth bench`.

mod cpu_hog;
mod database;
mod log_writer;
mod platform;
mod seed;

pub use cpu_hog::CpuHog;
pub use database::{test_server_url, ScratchDatabase};
pub use log_writer::LogWriter;
pub use platform::{children_of, write_platform_log, PlatformShape, SyntheticPlatform};
pub use seed::seed_log;
