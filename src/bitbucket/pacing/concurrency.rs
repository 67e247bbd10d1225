//! Adaptive concurrency: how many requests to one integration may be in
//! flight. AIMD on latency and errors, as vector's adaptive request
//! concurrency and Netflix's concurrency-limits do: while the limit is
//! used, answers come without 5xx (a 429 is the pace's business) and their median latency stays
//! near the lowest seen lately, the limit grows (by half per window until
//! the first back-off, then by one); a window with an overload answer
//! halves it, two in a row whose median latency climbed cut it by a
//! fifth. Latency is judged only while the limit binds: a lone listing
//! page that is slow says nothing about concurrency. The
//! configured `maxConcurrentRequests` is the ceiling. A token bucket that
//! binds keeps what is in flight below the limit, so the pace wins there.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::lanes::{Class, Gate, Held};

/// Where the limit starts (the fixed concurrency of earlier versions).
pub(crate) const INITIAL: usize = 8;
/// The limit never goes below this (when the ceiling allows): one place
/// for sweep work and one kept for interactive work.
const FLOOR: usize = 2;
/// A window lasts at least this long, else the lowest latency seen.
const MIN_WINDOW: Duration = Duration::from_millis(20);
/// A window needs this many answers to judge latency.
const MIN_SAMPLES: u32 = 4;
/// Latency counts as climbed past this multiple of the lowest seen…
const TOLERANCE: f64 = 2.0;
/// …plus this, so scheduling jitter on fast answers is not load.
const SLACK: Duration = Duration::from_millis(10);
/// The lowest latency is kept over two of these, so it can rise again
/// when the server's unloaded speed changes.
const BASE_PERIOD: Duration = Duration::from_secs(30);
const LATENCY_BACKOFF: f64 = 0.8;
const OVERLOAD_BACKOFF: f64 = 0.5;
/// Places only interactive work may take, once the limit allows one.
const RESERVE: usize = 1;

/// How one request ended, for the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Answered (any status but the overload ones) after this long.
    Answered(Duration),
    /// 502–504 or no answer: back off.
    Overloaded,
    /// 429: the bucket, not the server, said no; the pace answers it, and
    /// a quick refusal says nothing about latency either.
    RateLimited,
}

/// The AIMD state machine (no clock of its own, for tests).
#[derive(Debug)]
pub(crate) struct Adaptive {
    max: usize,
    floor: usize,
    limit: f64,
    slow_start: bool,
    /// The last window judged had a climbed median latency.
    was_slow: bool,
    /// Lowest latency this period and the one before.
    base: Option<Duration>,
    previous_base: Option<Duration>,
    period_started: Instant,
    window: Window,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    samples: u32,
    /// Answers slower than the tolerance.
    slow: u32,
    /// Some request ended while work waited for a place.
    full: bool,
    overloaded: bool,
}

impl Window {
    fn new(now: Instant) -> Self {
        Self {
            started: now,
            samples: 0,
            slow: 0,
            full: false,
            overloaded: false,
        }
    }
}

impl Adaptive {
    pub(crate) fn new(max: usize, now: Instant) -> Self {
        let max = max.max(1);
        Self {
            max,
            floor: FLOOR.min(max),
            limit: INITIAL.min(max) as f64,
            slow_start: true,
            was_slow: false,
            base: None,
            previous_base: None,
            period_started: now,
            window: Window::new(now),
        }
    }

    pub(crate) fn limit(&self) -> usize {
        (self.limit as usize).clamp(self.floor, self.max)
    }

    fn baseline(&self) -> Option<Duration> {
        match (self.base, self.previous_base) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One request ended; `full`: work waited for a place meanwhile.
    /// `Some(limit)` when the limit changed.
    pub(crate) fn record(&mut self, now: Instant, outcome: Outcome, full: bool) -> Option<usize> {
        if now.saturating_duration_since(self.period_started) >= BASE_PERIOD {
            self.previous_base = self.base.take();
            self.period_started = now;
        }
        self.window.full |= full;
        match outcome {
            Outcome::RateLimited => return None,
            Outcome::Overloaded => self.window.overloaded = true,
            Outcome::Answered(latency) => {
                self.base = Some(self.base.map_or(latency, |b| b.min(latency)));
                self.window.samples += 1;
                if self
                    .baseline()
                    .is_some_and(|b| latency > b.mul_f64(TOLERANCE) + SLACK)
                {
                    self.window.slow += 1;
                }
            }
        }
        let length = self.baseline().unwrap_or_default().max(MIN_WINDOW);
        let window = &self.window;
        let ripe = window.overloaded
            || (window.samples >= MIN_SAMPLES
                && now.saturating_duration_since(window.started) >= length);
        if !ripe {
            return None;
        }
        let before = self.limit();
        let slow = window.slow * 2 > window.samples;
        if window.overloaded {
            self.slow_start = false;
            self.limit *= OVERLOAD_BACKOFF;
        } else if !window.full {
            // The limit did not bind: nothing to learn about it.
        } else if slow && self.was_slow {
            self.slow_start = false;
            self.limit *= LATENCY_BACKOFF;
        } else if !slow {
            self.limit += if self.slow_start {
                (self.limit / 2.0).max(1.0)
            } else {
                1.0
            };
        }
        if window.full || window.overloaded {
            self.was_slow = slow && !self.was_slow;
        }
        self.limit = self.limit.clamp(self.floor as f64, self.max as f64);
        self.window = Window::new(now);
        let after = self.limit();
        (after != before).then_some(after)
    }
}

/// An integration's places for requests in flight, sized by [`Adaptive`].
#[derive(Debug)]
pub(crate) struct Concurrency {
    gate: Arc<Gate>,
    adaptive: Mutex<Adaptive>,
}

/// A place taken; give it back with [`Concurrency::finished`].
#[derive(Debug)]
pub(crate) struct Place {
    _held: Held,
}

impl Concurrency {
    /// `max`: the integration's `maxConcurrentRequests`.
    pub(crate) fn new(max: usize) -> Arc<Self> {
        let adaptive = Adaptive::new(max, Instant::now());
        let limit = adaptive.limit();
        Arc::new(Self {
            gate: Gate::new(limit, reserve(limit)),
            adaptive: Mutex::new(adaptive),
        })
    }

    pub(crate) async fn enter(&self, class: &Class) -> Place {
        Place {
            _held: self.gate.enter(class).await,
        }
    }

    /// The request that took `place` ended.
    pub(crate) fn finished(&self, place: Place, outcome: Outcome) {
        let full = self.gate.is_full();
        let changed = self.adaptive.lock().record(Instant::now(), outcome, full);
        if let Some(limit) = changed {
            tracing::debug!(limit, "adaptive concurrency limit changed");
            self.gate.set_limit(limit, reserve(limit));
        }
        drop(place);
    }

    /// The current limit.
    pub(crate) fn limit(&self) -> usize {
        self.adaptive.lock().limit()
    }

    /// Requests in flight now.
    pub(crate) fn in_flight(&self) -> usize {
        self.gate.held()
    }
}

fn reserve(limit: usize) -> usize {
    if limit > RESERVE { RESERVE } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds `windows` windows of answers taking `latency` (latency may
    /// depend on the limit) and returns the limit after each.
    fn run(
        adaptive: &mut Adaptive,
        now: &mut Instant,
        windows: usize,
        latency: impl Fn(usize) -> Duration,
    ) -> Vec<usize> {
        (0..windows)
            .map(|_| {
                let limit = adaptive.limit();
                let took = latency(limit);
                for _ in 0..limit.max(MIN_SAMPLES as usize) {
                    *now += took / limit as u32;
                    adaptive.record(*now, Outcome::Answered(took), true);
                }
                *now += MIN_WINDOW;
                adaptive.record(*now, Outcome::Answered(took), true);
                adaptive.limit()
            })
            .collect()
    }

    #[test]
    fn grows_to_the_ceiling_while_latency_holds() {
        let mut now = Instant::now();
        let mut adaptive = Adaptive::new(64, now);
        let limits = run(&mut adaptive, &mut now, 20, |_| 10 * MS);
        assert!(limits.windows(2).all(|w| w[1] >= w[0]), "{limits:?}");
        assert_eq!(adaptive.limit(), 64, "{limits:?}");
    }

    #[test]
    fn does_not_grow_when_the_limit_is_not_used() {
        let mut now = Instant::now();
        let mut adaptive = Adaptive::new(64, now);
        for _ in 0..100 {
            now += 10 * MS;
            adaptive.record(now, Outcome::Answered(10 * MS), false);
        }
        assert_eq!(adaptive.limit(), INITIAL);
    }

    #[test]
    fn backs_off_when_latency_grows_with_load() {
        let mut now = Instant::now();
        let mut adaptive = Adaptive::new(64, now);
        run(&mut adaptive, &mut now, 20, |_| 10 * MS);
        assert_eq!(adaptive.limit(), 64);
        // Now each request in flight adds 5 ms.
        let limits = run(&mut adaptive, &mut now, 40, |n| 10 * MS + 5 * MS * n as u32);
        // Within a few windows it stays near the knee (4 in flight: 30 ms).
        assert!(limits[10..].iter().all(|&l| l <= 6), "{limits:?}");
    }

    #[test]
    fn an_overload_answer_halves_the_limit_but_not_below_the_floor() {
        let mut now = Instant::now();
        let mut adaptive = Adaptive::new(64, now);
        now += MS;
        assert_eq!(adaptive.record(now, Outcome::Overloaded, true), Some(4));
        assert_eq!(adaptive.record(now, Outcome::Overloaded, true), Some(FLOOR));
        assert_eq!(adaptive.record(now, Outcome::Overloaded, true), None);
        assert_eq!(Adaptive::new(1, now).limit(), 1);
    }
}
