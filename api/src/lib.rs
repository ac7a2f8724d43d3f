//! Plinth's HTTP API and the `plinth` command line.
//!
//! `main.rs` only calls [`cli::main`]; the application itself ([`app`]) is a library so that
//! tests and `plinth bench` start exactly what `plinth serve` starts.

pub mod app;
pub mod auth;
mod bench;
pub mod cli;
pub mod error;
mod health;
pub mod limits;
pub mod replicas;
mod request_context;
mod routes;
mod seed;
pub mod serve;
pub mod settings;
pub mod state;
pub(crate) mod strict_json;
pub mod telemetry;
