//! Stream states folded from the log, for the messages' previous values and parents.
//!
//! The relay reads the log in order, and each stream's events in version order, so the state
//! before an event is almost always the one it kept after the stream's previous event: one fold
//! step per event. A stream it has not seen (the first event after a restart, a republished
//! range, a cache that was emptied) is folded afresh from its events before the event's
//! version. Read models are never consulted: they may be behind or rebuilt, and a message must
//! be the same whenever it is produced.

use std::collections::HashMap;

use anyhow::Context as _;
use deadpool_postgres::GenericClient;
use plinth_commands::{log, StoredEvent};

use super::message::{self, MessageConfig, Outgoing, StreamState};

/// Events read per query when folding a stream afresh.
const FOLD_PAGE: i64 = 1000;

/// Folded stream states, by stream id.
#[derive(Debug)]
pub(crate) struct States {
    states: HashMap<String, StreamState>,
    /// Beyond this many streams the cache is emptied (simpler than an LRU, and a refold is a
    /// single indexed read).
    capacity: usize,
}

impl States {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            states: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The message for `stored`, which must be the next event of its stream after those this
    /// cache folded, or any event if its stream is not cached.
    pub(crate) async fn message(
        &mut self,
        client: &impl GenericClient,
        stored: &StoredEvent,
        config: &MessageConfig,
    ) -> anyhow::Result<Outgoing> {
        let mut state = match self.states.remove(&stored.stream_id) {
            Some(state) if state.version == stored.stream_version - 1 => state,
            _ => fold(client, &stored.stream_id, stored.stream_version).await?,
        };
        let event = stored.decode().with_context(|| {
            format!(
                "event at position {} ({}) cannot be decoded",
                stored.position, stored.event_type
            )
        })?;
        let outgoing = message::message(stored, &event, &state, config).with_context(|| {
            format!(
                "cannot map the event at position {} to a NATS message",
                stored.position
            )
        })?;
        state.apply(stored, &event);
        if self.states.len() >= self.capacity {
            self.states.clear();
        }
        self.states.insert(stored.stream_id.clone(), state);
        Ok(outgoing)
    }
}

/// The state of `stream_id` after its events before version `before_version`.
async fn fold(
    client: &impl GenericClient,
    stream_id: &str,
    before_version: i64,
) -> anyhow::Result<StreamState> {
    let mut state = StreamState::default();
    while state.version + 1 < before_version {
        let limit = FOLD_PAGE.min(before_version - 1 - state.version);
        let events = log::read_stream(client, stream_id, state.version + 1, limit).await?;
        if events.is_empty() {
            break;
        }
        for event in &events {
            let decoded = event.decode().with_context(|| {
                format!(
                    "event at position {} ({}) cannot be decoded",
                    event.position, event.event_type
                )
            })?;
            state.apply(event, &decoded);
        }
    }
    Ok(state)
}
