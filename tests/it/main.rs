//! End-to-end tests against real PostgreSQL (and, for the relay, a real Kafka-protocol broker).
//! One binary, one module per topic.

// Test modules are private to this binary; `pub` inside them only shares helpers.
#![allow(unreachable_pub)]

// Shared helpers: not every test module uses every one.
#[allow(dead_code)]
mod support;

mod admins;
mod ambiguous_json;
mod audit_export;
mod audit_scale;
mod audit_verify;
mod authz_matrix;
mod bench_all;
mod commands_api;
mod console;
mod crash;
mod db_failures;
mod event_store;
mod hostile_http;
mod lifecycle;
mod limits;
mod log_order;
mod metadata;
mod nats;
mod oidc;
mod openapi;
mod ops;
mod pg_restart;
mod query_params;
mod read_side;
mod relay;
mod replicas;
mod schema_evolution;
mod seed;
mod shared_reads;
mod soak;
mod time_travel;
mod under_load;
mod user_ids;
mod write_cache;
