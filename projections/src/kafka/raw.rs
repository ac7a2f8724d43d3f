//! The relay's physical limit, for `plinth bench relay`: the same messages produced by the same
//! producer (configuration, topics, headers, encoding), with the log already in memory, so
//! that no reading of the log, leadership or checkpoint is paid.

use std::time::{Duration, Instant};

use plinth_commands::StoredEvent;

use super::producer::{self, Publisher};
use super::RelayConfig;

/// A producer of the relay's messages without the relay.
#[derive(Debug)]
pub struct RawProducer {
    publisher: Publisher,
}

impl RawProducer {
    /// The relay's producer for `config`, its topics created.
    pub async fn new(config: &RelayConfig) -> anyhow::Result<Self> {
        let mut publisher = Publisher::new(config)?;
        publisher.ensure_all_topics().await?;
        Ok(Self { publisher })
    }

    /// Produces `events` as the relay would and waits for every delivery report; the time
    /// from the first send to the last report.
    pub async fn produce(&mut self, events: &[StoredEvent]) -> anyhow::Result<Duration> {
        let started = Instant::now();
        // As the relay: everything handed to librdkafka in log order, the reports awaited in
        // the same order, at most its 16 batches of 2,000 ahead.
        let mut pending = std::collections::VecDeque::new();
        for event in events {
            pending.push_back((event.position, self.publisher.send(event).await?));
            if pending.len() >= 32_000 {
                let (position, mut delivery) = pending.pop_front().expect("not empty");
                self.confirm(&mut delivery, position).await?;
            }
        }
        for (position, mut delivery) in pending {
            self.confirm(&mut delivery, position).await?;
        }
        Ok(started.elapsed())
    }

    async fn confirm(
        &self,
        delivery: &mut rdkafka::producer::DeliveryFuture,
        position: i64,
    ) -> anyhow::Result<()> {
        producer::confirmed(&self.publisher.producer, delivery, position, || false).await?;
        Ok(())
    }
}
