//! The Kafka relay (issue 4).
