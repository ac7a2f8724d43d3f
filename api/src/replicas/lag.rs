//! How far behind a replica is, in time: the age of the newest primary WAL position it has
//! replayed.
//!
//! The monitor samples the primary's WAL position on every probe. A replica that has replayed
//! up to LSN `r` holds everything the primary held at each sample at or below `r`, so its lag
//! is the time from the newest such sample to now. This is the meaning of `replay_lag` in
//! `pg_stat_replication`, computed here because that view names a standby by its connection,
//! not by the URL the operator gave us. `now() - pg_last_xact_replay_timestamp()` was rejected:
//! on an idle primary it grows without the replica missing anything.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Primary WAL positions sampled over the last [`LsnHistory::window`].
#[derive(Debug)]
pub(crate) struct LsnHistory {
    samples: VecDeque<(Instant, u64)>,
    window: Duration,
}

impl LsnHistory {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            samples: VecDeque::new(),
            window,
        }
    }

    /// Records the primary's WAL position as read at `at`; forgets samples older than the
    /// window, but always keeps the newest one.
    pub(crate) fn record(&mut self, at: Instant, lsn: u64) {
        self.samples.push_back((at, lsn));
        while self.samples.len() > 1
            && self
                .samples
                .front()
                .is_some_and(|(t, _)| at.saturating_duration_since(*t) > self.window)
        {
            self.samples.pop_front();
        }
    }

    /// The lag at `now` of a replica that has replayed up to `replayed`: `now` minus the time
    /// of the newest sample it covers; the whole window (or more) when it covers none; `None`
    /// before the first sample.
    pub(crate) fn lag(&self, now: Instant, replayed: u64) -> Option<Duration> {
        let oldest = self.samples.front()?;
        let covered = self
            .samples
            .iter()
            .rev()
            .find(|(_, lsn)| *lsn <= replayed)
            .map_or(
                oldest.0.checked_sub(self.window).unwrap_or(oldest.0),
                |(t, _)| *t,
            );
        Some(now.saturating_duration_since(covered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_replica_at_the_newest_sample_has_no_lag_and_one_behind_has_the_age_of_what_it_covers() {
        let t0 = Instant::now();
        let mut history = LsnHistory::new(10 * S);
        assert_eq!(history.lag(t0, 0), None, "nothing sampled yet");
        history.record(t0, 100);
        history.record(t0 + S, 200);
        history.record(t0 + 2 * S, 300);
        assert_eq!(history.lag(t0 + 2 * S, 300), Some(Duration::ZERO));
        assert_eq!(history.lag(t0 + 2 * S, 350), Some(Duration::ZERO));
        assert_eq!(
            history.lag(t0 + 2 * S, 299),
            Some(S),
            "covers the sample at t0+1"
        );
        assert_eq!(history.lag(t0 + 2 * S, 100), Some(2 * S));
    }

    #[test]
    fn an_idle_primary_leaves_a_caught_up_replica_without_lag() {
        let t0 = Instant::now();
        let mut history = LsnHistory::new(10 * S);
        for i in 0..5 {
            history.record(t0 + i * S, 500);
        }
        assert_eq!(history.lag(t0 + 4 * S, 500), Some(Duration::ZERO));
    }

    #[test]
    fn a_replica_behind_every_sample_lags_at_least_the_window() {
        let t0 = Instant::now() + 100 * S;
        let mut history = LsnHistory::new(3 * S);
        for i in 0..10 {
            history.record(t0 + i * S, 1000 + u64::from(i));
        }
        let lag = history.lag(t0 + 9 * S, 10).unwrap();
        assert!(lag >= 3 * S, "{lag:?}");
        assert!(history.samples.len() <= 4, "old samples are forgotten");
    }
}
