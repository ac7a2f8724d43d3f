//! `plinth nats ensure-stream`: a JetStream stream that captures what the relay publishes.
//!
//! In an Infratographer deployment the operator owns the streams (their charts create them);
//! this one is for development, tests and small setups. It captures exactly
//! `<prefix>.changes.>` and `<prefix>.events.>`, never `<prefix>.>`: permissions-api answers
//! request/reply subjects under the same prefix (`<prefix>.auth.relationships.…`), and a
//! stream capturing those would acknowledge requests in its place.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::stream;

use super::validate_prefix;

/// The stream to ensure.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub url: String,
    pub prefix: String,
    /// Stream name (letters, digits, `-`, `_`).
    pub name: String,
    /// How long the stream remembers `Nats-Msg-Id`s to drop repeats.
    pub duplicate_window: Duration,
    /// How long messages are kept (zero: for ever).
    pub max_age: Duration,
}

impl StreamConfig {
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: prefix.into(),
            name: "plinth-infratographer".to_owned(),
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::ZERO,
        }
    }

    /// The subjects the stream captures.
    pub fn subjects(&self) -> Vec<String> {
        vec![
            format!("{}.changes.>", self.prefix),
            format!("{}.events.>", self.prefix),
        ]
    }
}

/// Creates the stream if no stream of that name exists; returns its subjects, which for an
/// existing stream are whatever it was created with (it is not changed).
pub async fn ensure_stream(config: &StreamConfig) -> anyhow::Result<Vec<String>> {
    validate_prefix(&config.prefix)?;
    let jetstream =
        super::connect(&config.url, "ensure-stream", Duration::from_secs(10), 1).await?;
    let stream = jetstream
        .get_or_create_stream(stream::Config {
            name: config.name.clone(),
            subjects: config.subjects(),
            duplicate_window: config.duplicate_window,
            max_age: config.max_age,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .with_context(|| format!("failed to create or find the stream `{}`", config.name))?;
    Ok(stream.cached_info().config.subjects.clone())
}
