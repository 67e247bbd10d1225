//! Client-side pacing for one Bitbucket integration: an optional configured
//! rate (governor), a cap on concurrent requests, and adaptation to 429s —
//! every request waits out `Retry-After`, the pace drops, then recovers.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::integrations::RateLimit;

/// The slowest pace adaptation goes to.
const MIN_RATE: f64 = 0.5;
/// How much a 429 slows the pace.
const DECREASE: f64 = 0.7;
/// How much each calm period speeds it up again.
const INCREASE: f64 = 1.1;
/// A calm period: this long without a 429.
const CALM: Duration = Duration::from_secs(2);
/// Above this an adapted pace with no configured limit is lifted entirely.
const UNLIMITED_ABOVE: f64 = 1000.0;
/// The window over which the current request rate is measured.
const WINDOW: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct State {
    /// Requests per second in force; `None` = unlimited.
    rate: Option<f64>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    /// Every request waits until then (the latest `Retry-After`).
    blocked_until: Option<Instant>,
    last_change: Instant,
    last_decrease: Option<Instant>,
    /// Send times within the last [`WINDOW`], to measure the pace a 429 cut short.
    recent: std::collections::VecDeque<Instant>,
}

/// Shared by every request to one integration, across runs and providers.
#[derive(Debug)]
pub struct Pacer {
    configured: Option<RateLimit>,
    permits: Arc<Semaphore>,
    state: Mutex<State>,
}

impl Pacer {
    pub fn new(configured: Option<RateLimit>, max_concurrent: usize) -> Self {
        let rate = configured.map(|r| r.requests_per_second);
        Self {
            configured,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            state: Mutex::new(State {
                rate,
                limiter: rate.map(|r| limiter(r, configured.map_or(1, |c| c.burst))),
                blocked_until: None,
                last_change: Instant::now(),
                last_decrease: None,
                recent: std::collections::VecDeque::new(),
            }),
        }
    }

    /// Waits for a `Retry-After` in force, the pace and a concurrency slot.
    /// Hold the permit until the response body has been read.
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        let permit = Arc::clone(&self.permits).acquire_owned().await.ok();
        loop {
            let (blocked_until, limiter) = {
                let mut state = self.state.lock();
                self.recover(&mut state);
                (state.blocked_until, state.limiter.clone())
            };
            if let Some(until) = blocked_until.filter(|u| *u > Instant::now()) {
                tokio::time::sleep_until(until.into()).await;
                continue;
            }
            if let Some(limiter) = limiter {
                limiter.until_ready().await;
            }
            break;
        }
        let now = Instant::now();
        let mut state = self.state.lock();
        state.recent.push_back(now);
        while state
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            state.recent.pop_front();
        }
        permit
    }

    /// Bitbucket said 429: everyone waits `retry_after`, and the pace drops
    /// (at most once per calm period, so a burst of 429s from requests
    /// already in flight counts as one).
    pub fn rate_limited(&self, retry_after: Duration) {
        let now = Instant::now();
        let mut state = self.state.lock();
        let until = now + retry_after;
        state.blocked_until = Some(state.blocked_until.map_or(until, |b| b.max(until)));
        if state
            .last_decrease
            .is_some_and(|t| now.duration_since(t) < CALM)
        {
            return;
        }
        state.last_decrease = Some(now);
        let observed = state.recent.len() as f64 / WINDOW.as_secs_f64();
        let current = state
            .rate
            .map_or(observed, |r| r.min(observed.max(MIN_RATE)));
        let next = (current * DECREASE).max(MIN_RATE);
        tracing::info!(
            rate = format!("{next:.2}"),
            "Bitbucket rate limit hit; slowing down"
        );
        self.set_rate(&mut state, Some(next), now);
    }

    fn recover(&self, state: &mut State) {
        let now = Instant::now();
        let Some(rate) = state.rate else { return };
        if now.duration_since(state.last_change) < CALM
            || state.blocked_until.is_some_and(|b| b > now)
        {
            return;
        }
        let ceiling = self.configured.map(|c| c.requests_per_second);
        let next = rate * INCREASE;
        let next = match ceiling {
            Some(ceiling) => Some(next.min(ceiling)),
            None if next > UNLIMITED_ABOVE => None,
            None => Some(next),
        };
        if next != state.rate {
            self.set_rate(state, next, now);
        } else {
            state.last_change = now;
        }
    }

    fn set_rate(&self, state: &mut State, rate: Option<f64>, now: Instant) {
        state.rate = rate;
        let burst = self.configured.map_or(1, |c| c.burst);
        state.limiter = rate.map(|r| limiter(r, burst.min(r.ceil().max(1.0) as u32)));
        state.last_change = now;
    }

    /// The pace in force (requests per second), `None` when unlimited.
    #[cfg(test)]
    pub fn current_rate(&self) -> Option<f64> {
        self.state.lock().rate
    }
}

fn limiter(rate: f64, burst: u32) -> Arc<DefaultDirectRateLimiter> {
    let period = Duration::from_secs_f64(1.0 / rate.max(MIN_RATE));
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period).map_or_else(
        || Quota::per_second(NonZeroU32::MIN),
        |q| q.allow_burst(burst),
    );
    Arc::new(RateLimiter::direct(quota))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_429_slows_the_pace_and_calm_brings_it_back() {
        let pacer = Pacer::new(
            Some(RateLimit {
                requests_per_second: 10.0,
                burst: 10,
            }),
            4,
        );
        for _ in 0..10 {
            drop(pacer.acquire().await);
        }
        pacer.rate_limited(Duration::from_millis(10));
        let slowed = pacer.current_rate().unwrap();
        assert!(slowed < 10.0, "{slowed}");
        // A second 429 right after counts as the same event.
        pacer.rate_limited(Duration::from_millis(10));
        assert_eq!(pacer.current_rate(), Some(slowed));
        tokio::time::sleep(Duration::from_millis(20)).await;
        {
            let mut state = pacer.state.lock();
            state.last_change -= CALM * 2;
            state.last_decrease = state.last_decrease.map(|t| t - CALM * 2);
            pacer.recover(&mut state);
        }
        let recovered = pacer.current_rate().unwrap();
        assert!(
            recovered > slowed && recovered <= 10.0,
            "{slowed} -> {recovered}"
        );
    }

    #[tokio::test]
    async fn unlimited_adapts_from_the_observed_pace() {
        let pacer = Pacer::new(None, 4);
        assert_eq!(pacer.current_rate(), None);
        for _ in 0..40 {
            drop(pacer.acquire().await);
        }
        pacer.rate_limited(Duration::from_millis(1));
        let rate = pacer.current_rate().unwrap();
        // 40 requests in the 2 s window: 20/s observed, 14/s after the cut.
        assert!((rate - 14.0).abs() < 0.01, "{rate}");
    }
}
