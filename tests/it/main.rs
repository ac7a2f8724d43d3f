//! End-to-end tests against real PostgreSQL (and, for the relay, a real Kafka-protocol broker).
//! One binary, one module per topic.

mod support;

mod commands_api;
mod event_store;
mod read_side;
mod relay;
