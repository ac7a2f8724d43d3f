//! Per-principal rate limits (`PLINTH_RATE_LIMIT`): one caller sending far more than any
//! ordinary client gets `429` with `Retry-After` for the excess, and the others are not slowed.
//!
//! A token bucket per principal (the user id the token speaks for: a person, a resource
//! provider or an administrator), from `governor` (GCRA: a timestamp per key, no timer task):
//! `rate` requests a second, bursts of twice that. It is checked after the token is verified,
//! so an unauthenticated flood is not counted against anyone; the connection cap and the
//! header read timeout bound that instead.

use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The buckets of every principal seen recently.
#[derive(Debug)]
pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

/// How often buckets that are full again (idle principals) are dropped, so that memory follows
/// the principals active in the last minute, not every one ever seen.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

impl RateLimits {
    /// Limits of `per_second` requests a second per principal with bursts of twice that;
    /// `None` when 0 (off).
    pub fn new(per_second: u32) -> Option<Arc<Self>> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = rate.saturating_mul(NonZeroU32::new(2).expect("not zero"));
        let limits = Arc::new(Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
        });
        let weak: Weak<Self> = Arc::downgrade(&limits);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(FORGET_IDLE_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(limits) = weak.upgrade() else { return };
                limits.limiter.retain_recent();
                limits.limiter.shrink_to_fit();
            }
        });
        Some(limits)
    }

    /// Takes one request from `principal`'s bucket, or says in how many whole seconds (at
    /// least 1) the next one will be allowed.
    pub fn check(&self, principal: &str) -> Result<(), u32> {
        self.limiter
            .check_key(&principal.to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.clock.now());
                wait.as_secs_f64().ceil().max(1.0) as u32
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_principal_gets_twice_its_rate_as_a_burst_then_is_refused_alone() {
        let limits = RateLimits::new(5).unwrap();
        let (noisy, quiet) = ("idntusr-noisy", "idntusr-quiet");
        for n in 0..10 {
            assert_eq!(limits.check(noisy), Ok(()), "request {n} of the burst");
        }
        assert_eq!(limits.check(noisy), Err(1));
        assert_eq!(limits.check(quiet), Ok(()));
    }

    #[tokio::test]
    async fn zero_turns_the_limits_off() {
        assert!(RateLimits::new(0).is_none());
    }
}
