//! Client-side pacing for one Bitbucket integration: an optional configured
//! rate (a hard ceiling), a cap on concurrent requests, and a pace learnt
//! from the server's token bucket.
//!
//! Nothing is paced until the first 429. From then on the [`Estimator`]
//! works out the bucket's refill rate (and roughly its size) from what
//! Bitbucket accepted between 429s, and the pace sits just under it, probing
//! upward slowly. `X-RateLimit-*` headers, when a server sends them, give the
//! answer directly. Every request waits out the latest `Retry-After`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use reqwest::header::HeaderMap;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::integrations::RateLimit;

/// The share of the estimated refill rate we send at: a pace exactly at the
/// refill rate has no slack, and jitter bunches arrivals on an empty bucket.
const MARGIN: f64 = 0.95;
/// The slowest pace the estimator goes to.
const MIN_RATE: f64 = 0.1;
/// While searching upward for the refill rate, a pace that drew no 429 for
/// this long grows by [`SEARCH_GROWTH`]. (×1.5 measured worse: the bucket
/// absorbs a small overshoot for longer than a step, so the search overshoots
/// anyway, from a half-drained bucket.)
const SEARCH_STEP: Duration = Duration::from_millis(300);
const SEARCH_GROWTH: f64 = 2.0;
/// Once the refill rate is estimated, the pace creeps up after this long
/// without a 429, in case the bucket grew (or another client stopped sharing it).
const PROBE_CALM: Duration = Duration::from_secs(5);
/// Each probe adds this share of the estimated refill rate.
const PROBE_STEP: f64 = 0.025;
/// A search that rises past this stops pacing altogether.
const UNLIMITED_ABOVE: f64 = 1000.0;
/// Of what the bucket is believed to hold after a stall, the pace's burst uses this share.
const BURST_SHARE: f64 = 0.9;
/// Bitbucket Cloud's `X-RateLimit-NearLimit` means less than this share of
/// the hourly allowance is left.
const NEAR_LIMIT_SHARE: f64 = 0.2;
/// Nothing sent for this long: the bucket refilled unobserved (between
/// runs), so the next 429 does not measure the refill. Short lulls (a
/// listing handing over to the reads) still count as sending time.
const IDLE_GAP: Duration = Duration::from_secs(5);
const HOUR: f64 = 3600.0;
/// At most one rate-limit log line per integration this often.
const RATE_LIMIT_LOG_EVERY: Duration = Duration::from_secs(60);

/// One 429 episode: the first 429 of requests sent after the previous
/// episode began (later 429s of requests already in flight belong to it).
#[derive(Debug, Clone, Copy)]
struct Episode {
    at: Instant,
    /// Accepted responses up to then.
    accepted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Nothing learnt: no pace.
    Unlimited,
    /// The refill rate is unknown: send at `pace`, raising it after each
    /// calm [`SEARCH_STEP`]. `since` is when this pace began (or begins,
    /// after a stall), `accepted_at` the accepted count then.
    Search {
        pace: f64,
        since: Instant,
        accepted_at: u64,
        raised: bool,
    },
    /// The refill rate is estimated; `pace` starts at [`MARGIN`] × `refill`
    /// and creeps up after each calm [`PROBE_CALM`] since `since`.
    Paced {
        refill: f64,
        pace: f64,
        since: Instant,
    },
}

/// Works out the server's token bucket from 429s (and headers, when sent).
#[derive(Debug)]
pub(crate) struct Estimator {
    mode: Mode,
    /// Roughly the bucket's size: what the first unpaced burst got through
    /// (slightly more, as the bucket also refilled meanwhile).
    burst: Option<f64>,
    last: Option<Episode>,
    /// The latest `Retry-After`; what the bucket refills in a stall bounds
    /// the burst the pace may send after one.
    last_stall: Duration,
    /// The refill rate came from `X-RateLimit-*` headers: no probing.
    exact: bool,
}

/// Paced at a margin under `refill`, from `since`.
fn paced(refill: f64, since: Instant) -> Mode {
    Mode::Paced {
        refill,
        pace: (MARGIN * refill).max(MIN_RATE),
        since,
    }
}

impl Estimator {
    fn new() -> Self {
        Self {
            mode: Mode::Unlimited,
            burst: None,
            last: None,
            last_stall: Duration::from_secs(1),
            exact: false,
        }
    }

    /// The refill rate estimated so far.
    pub(crate) fn refill(&self) -> Option<f64> {
        match self.mode {
            Mode::Paced { refill, .. } => Some(refill),
            _ => None,
        }
    }

    /// The pace to send at; `None` = unpaced.
    pub(crate) fn pace(&self) -> Option<f64> {
        match self.mode {
            Mode::Unlimited => None,
            Mode::Search { pace, .. } | Mode::Paced { pace, .. } => Some(pace),
        }
    }

    /// The burst the pace may send at once: what a stall lets the bucket
    /// refill, at most its size, with some slack.
    pub(crate) fn pace_burst(&self) -> u32 {
        match (self.mode, self.burst) {
            (Mode::Paced { refill, .. }, Some(burst)) => {
                let refilled = refill * self.last_stall.as_secs_f64();
                let cells = (BURST_SHARE * burst.min(refilled)).floor();
                // Bounded above by the burst estimate, itself a request count.
                if cells >= 1.0 { cells as u32 } else { 1 }
            }
            _ => 1,
        }
    }

    /// A new 429 episode at `now`, after `accepted` accepted responses in
    /// all; everyone waits `stall`.
    /// `idle`: no request was in flight or waiting at some point since the
    /// last episode, so the bucket refilled unobserved and what got through
    /// in between measures nothing; the estimate stands.
    pub(crate) fn on_429(&mut self, now: Instant, accepted: u64, stall: Duration, idle: bool) {
        let resume = now + stall;
        self.mode = match (idle, self.last, self.mode) {
            (true, _, Mode::Paced { refill, .. }) => paced(refill, resume),
            (_, Some(prev), Mode::Search { .. } | Mode::Paced { .. }) => {
                paced(self.refill_since(prev, now, accepted).max(MIN_RATE), resume)
            }
            _ => self.first_episode(accepted, stall, resume),
        };
        self.last = Some(Episode { at: now, accepted });
        self.last_stall = stall;
    }

    /// The refill rate a 429 at `now` after the episode `prev` shows.
    fn refill_since(&self, prev: Episode, now: Instant, accepted: u64) -> f64 {
        // Both 429s found the bucket empty, so what got through in between
        // is what it refilled: a lower bound of the refill rate (exact
        // unless the bucket overflowed in a stall).
        let between = now.saturating_duration_since(prev.at).as_secs_f64();
        let got = accepted.saturating_sub(prev.accepted) as f64;
        let lower = if between > 0.0 { got / between } else { 0.0 };
        match self.mode {
            Mode::Search {
                pace,
                since,
                accepted_at,
                raised: true,
            } => {
                // The pace before the last raise drew no 429, so the bucket
                // was full then: since, it let through its size plus what it
                // refilled. Only sending time counts.
                let sending = now.saturating_duration_since(since).as_secs_f64();
                let since_raise = accepted.saturating_sub(accepted_at) as f64;
                let measured = match self.burst {
                    Some(burst) if sending >= 0.05 => (since_raise - burst) / sending,
                    _ => 0.0,
                };
                measured.max(lower).max(pace / SEARCH_GROWTH).min(pace)
            }
            Mode::Paced { refill, pace, .. } if lower < refill => {
                // The lower bound undercounts when the stall let the bucket
                // overflow. Sent long enough since the stall, what got
                // through is what the bucket held then plus what it
                // refilled while we sent.
                let sending = between - self.last_stall.as_secs_f64();
                let held = self
                    .burst
                    .map(|burst| burst.min(refill * self.last_stall.as_secs_f64()));
                match held {
                    Some(held) if sending >= 0.1 => ((got - held) / sending).min(pace).max(lower),
                    // Too little to go on: halfway down.
                    _ => (refill + lower) / 2.0,
                }
            }
            _ => lower,
        }
    }

    /// The first 429: the bucket's size is at most what got through.
    /// Resume at the pace that would refill that much in one stall; a 429
    /// at it means the stall did not refill the bucket, so the next
    /// estimate is exact; none means the refill is faster, so search upward.
    fn first_episode(&mut self, accepted: u64, stall: Duration, resume: Instant) -> Mode {
        let stall_secs = stall.as_secs_f64().max(0.001);
        let got = accepted.saturating_sub(self.last.map_or(0, |e| e.accepted)) as f64;
        let burst = *self.burst.get_or_insert(got.max(1.0));
        Mode::Search {
            pace: (burst / stall_secs).max(MIN_RATE),
            since: resume,
            accepted_at: accepted,
            raised: false,
        }
    }

    /// Time passed without a 429: search or probe upward. True when the pace changed.
    pub(crate) fn on_calm(&mut self, now: Instant, accepted: u64) -> bool {
        match self.mode {
            Mode::Search { pace, since, .. } if now >= since + SEARCH_STEP => {
                let pace = pace * SEARCH_GROWTH;
                self.mode = if pace > UNLIMITED_ABOVE {
                    Mode::Unlimited
                } else {
                    Mode::Search {
                        pace,
                        since: now,
                        accepted_at: accepted,
                        raised: true,
                    }
                };
                true
            }
            Mode::Paced {
                refill,
                pace,
                since,
            } if !self.exact && now >= since + PROBE_CALM => {
                self.mode = Mode::Paced {
                    refill,
                    pace: pace + PROBE_STEP * refill,
                    since: now,
                };
                true
            }
            _ => false,
        }
    }

    /// The server said what its bucket is. True when that changed anything.
    pub(crate) fn known(&mut self, now: Instant, refill: f64, burst: Option<f64>) -> bool {
        if self.exact && self.refill() == Some(refill) && (burst.is_none() || burst == self.burst) {
            return false;
        }
        self.exact = true;
        if burst.is_some() {
            self.burst = burst;
        }
        self.mode = paced(refill, now);
        true
    }
}

/// What `X-RateLimit-*` headers say, when a server sends them.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct RateHeaders {
    /// Data Center: `X-RateLimit-FillRate` tokens per `-Interval-Seconds`.
    refill: Option<f64>,
    /// Data Center: `X-RateLimit-Limit`, the bucket's size.
    burst: Option<f64>,
    /// Cloud: `X-RateLimit-NearLimit` with `X-RateLimit-Limit` per hour.
    near_limit: Option<(bool, Option<f64>)>,
}

impl RateHeaders {
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let number = |name: &str| {
            headers
                .get(name)?
                .to_str()
                .ok()?
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
        };
        let limit = number("x-ratelimit-limit");
        let near_limit = headers
            .get("x-ratelimit-nearlimit")
            .and_then(|v| v.to_str().ok())
            .map(|v| (v.trim().eq_ignore_ascii_case("true"), limit));
        let fill = number("x-ratelimit-fillrate");
        match fill {
            // Data Center's bucket: `Limit` tokens, `FillRate` per interval.
            Some(fill) => Self {
                refill: Some(fill / number("x-ratelimit-interval-seconds").unwrap_or(1.0)),
                burst: limit,
                near_limit,
            },
            None => Self {
                refill: None,
                burst: None,
                near_limit,
            },
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[derive(Debug)]
struct State {
    estimator: Estimator,
    /// The pace in force (requests per second); `None` = unlimited.
    pace: Option<f64>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    /// Every request waits until then (the latest `Retry-After`).
    blocked_until: Option<Instant>,
    /// Episodes so far; a request sent in an older one belongs to it.
    epoch: u64,
    /// Responses other than 429 so far.
    accepted: u64,
    /// Cloud said it is near its hourly limit: spread what is left over the hour.
    hourly_cap: Option<f64>,
    /// No request was in flight or waiting for [`IDLE_GAP`] or more at some
    /// point since the last episode (e.g. between two runs).
    idle_since_episode: bool,
    /// The latest request started or answered (or Retry-After's end).
    last_request: Option<Instant>,
    /// 429s since start-up.
    rate_limited: u64,
    /// When the last rate-limit line was logged, and episodes since not logged.
    logged: Option<(Instant, u64)>,
}

/// An integration's pace and 429s since start-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PaceView {
    /// Requests per second in force; `None`: not paced.
    pub pace_per_second: Option<f64>,
    /// Responses, 429s included.
    pub answered: u64,
    pub rate_limited: u64,
    /// Waiting out a `Retry-After` right now.
    pub blocked: bool,
}

/// Which episode a request was sent in, for [`Pacer::rate_limited`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket {
    epoch: u64,
}

/// A concurrency slot; hold it until the response body has been read.
#[derive(Debug)]
pub(super) struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
    pub ticket: Ticket,
}

/// Shared by every request to one integration, across runs and providers.
#[derive(Debug)]
pub(super) struct Pacer {
    /// The integration's host, named in logs.
    host: String,
    configured: Option<RateLimit>,
    max_concurrent: usize,
    permits: Arc<Semaphore>,
    state: Mutex<State>,
    /// Wakes requests waiting on the pace when it changes, so none keeps
    /// draining at an old rate.
    changed: Notify,
}

impl Pacer {
    pub(super) fn new(host: String, configured: Option<RateLimit>, max_concurrent: usize) -> Self {
        let pacer = Self {
            host,
            configured,
            max_concurrent: max_concurrent.max(1),
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            state: Mutex::new(State {
                estimator: Estimator::new(),
                pace: None,
                limiter: None,
                blocked_until: None,
                epoch: 0,
                accepted: 0,
                hourly_cap: None,
                idle_since_episode: false,
                last_request: None,
                rate_limited: 0,
                logged: None,
            }),
            changed: Notify::new(),
        };
        {
            let mut state = pacer.state.lock();
            pacer.apply(&mut state, false);
        }
        pacer
    }

    /// Waits for a `Retry-After` in force, the pace and a concurrency slot.
    pub(super) async fn acquire(&self) -> Slot {
        {
            let mut state = self.state.lock();
            let now = Instant::now();
            let quiet = state
                .last_request
                .is_some_and(|t| now.saturating_duration_since(t) >= IDLE_GAP);
            if quiet && self.permits.available_permits() >= self.max_concurrent {
                state.idle_since_episode = true;
            }
            state.last_request = Some(now);
        }
        let permit = Arc::clone(&self.permits).acquire_owned().await.ok();
        loop {
            // Registered before reading the state, so no change is missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (blocked_until, limiter) = {
                let mut state = self.state.lock();
                let now = Instant::now();
                if state.blocked_until.is_none_or(|b| b <= now) {
                    let accepted = state.accepted;
                    if state.estimator.on_calm(now, accepted) {
                        self.apply(&mut state, true);
                    }
                }
                (state.blocked_until, state.limiter.clone())
            };
            if let Some(until) = blocked_until.filter(|u| *u > Instant::now()) {
                tokio::time::sleep_until(until).await;
                continue;
            }
            if let Some(limiter) = limiter {
                tokio::select! {
                    _ = limiter.until_ready() => {}
                    () = &mut changed => continue,
                }
            }
            let state = self.state.lock();
            // A 429 came while this request waited for the pace.
            if state.blocked_until.is_some_and(|b| b > Instant::now()) {
                continue;
            }
            return Slot {
                _permit: permit,
                ticket: Ticket { epoch: state.epoch },
            };
        }
    }

    /// A response other than 429: the bucket took a token; read what the
    /// server says about its limits.
    pub(super) fn answered(&self, headers: &HeaderMap) {
        let hints = RateHeaders::parse(headers);
        let mut state = self.state.lock();
        state.accepted += 1;
        state.last_request = Some(Instant::now());
        let mut changed = false;
        if let Some(refill) = hints.refill {
            changed |= state.estimator.known(Instant::now(), refill, hints.burst);
        }
        if let Some((near, limit)) = hints.near_limit {
            let cap = match (near, limit) {
                (true, Some(limit)) => Some(NEAR_LIMIT_SHARE * limit / HOUR),
                _ => None,
            };
            if cap != state.hourly_cap {
                if cap.is_some() {
                    tracing::info!(
                        host = self.host,
                        "Bitbucket {} says its hourly rate limit is near; spreading the rest over the hour",
                        self.host
                    );
                }
                state.hourly_cap = cap;
                changed = true;
            }
        }
        if changed {
            self.apply(&mut state, true);
        }
    }

    /// Bitbucket said 429: everyone waits `retry_after`; the first 429 of
    /// requests sent since the last episode teaches the estimator.
    pub(super) fn rate_limited(&self, ticket: Ticket, retry_after: Duration) {
        let now = Instant::now();
        let mut state = self.state.lock();
        state.rate_limited += 1;
        // Waiting out Retry-After is not idleness.
        state.last_request = Some(now + retry_after);
        let until = now + retry_after;
        state.blocked_until = Some(state.blocked_until.map_or(until, |b| b.max(until)));
        if ticket.epoch == state.epoch {
            state.epoch += 1;
            let accepted = state.accepted;
            let idle = std::mem::take(&mut state.idle_since_episode);
            state.estimator.on_429(now, accepted, retry_after, idle);
            self.apply(&mut state, true);
            self.log_rate_limited(&mut state, now, retry_after);
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// How the integration stands: for the status page.
    pub(super) fn view(&self) -> PaceView {
        let state = self.state.lock();
        PaceView {
            pace_per_second: state.pace,
            answered: state.accepted + state.rate_limited,
            rate_limited: state.rate_limited,
            blocked: state.blocked_until.is_some_and(|b| b > Instant::now()),
        }
    }

    /// One line per [`RATE_LIMIT_LOG_EVERY`] at most: a throttled
    /// integration hits 429 episodes often, and each line would say the same.
    fn log_rate_limited(&self, state: &mut State, now: Instant, retry_after: Duration) {
        let (last, quiet) = state.logged.unwrap_or((now, 0));
        if state.logged.is_some() && now.saturating_duration_since(last) < RATE_LIMIT_LOG_EVERY {
            state.logged = Some((last, quiet + 1));
            return;
        }
        state.logged = Some((now, 0));
        let pace = state
            .pace
            .map_or_else(|| "unpaced".to_owned(), |p| format!("{p:.2} requests/s"));
        tracing::info!(
            host = self.host,
            pace_per_second = state.pace.map(|p| format!("{p:.2}")),
            refill_per_second = state.estimator.refill().map(|r| format!("{r:.2}")),
            retry_after_ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX),
            episodes_not_logged = quiet,
            "Bitbucket {} rate limit hit (429): waiting {} ms, then pacing at {pace} ({quiet} more 429 episodes since the last line)",
            self.host,
            retry_after.as_millis(),
        );
    }

    /// Puts the estimator's pace, capped by the configured rate and Cloud's
    /// hourly allowance, in force. `drain`: the new limiter starts with no
    /// banked requests, so a change never lets a burst through.
    fn apply(&self, state: &mut State, drain: bool) {
        let ceiling = [
            self.configured.map(|c| c.requests_per_second),
            state.hourly_cap,
        ]
        .into_iter()
        .flatten()
        .reduce(f64::min);
        let learnt = state.estimator.pace();
        let pace = match (learnt, ceiling) {
            (Some(p), Some(c)) => Some(p.min(c)),
            (p, c) => p.or(c),
        };
        let configured_burst = self.configured.map_or(u32::MAX, |c| c.burst);
        let burst = if learnt.is_some() && pace == learnt {
            state.estimator.pace_burst().min(configured_burst)
        } else if state.hourly_cap.is_some() {
            1
        } else {
            self.configured.map_or(1, |c| c.burst)
        };
        if pace == state.pace && state.limiter.is_some() == pace.is_some() {
            return;
        }
        state.pace = pace;
        state.limiter = pace.map(|p| {
            let limiter = limiter(p, burst);
            if drain {
                while limiter.check().is_ok() {}
            }
            limiter
        });
        self.changed.notify_waiters();
    }

    /// The pace in force (requests per second), `None` when unlimited.
    #[cfg(test)]
    pub(crate) fn current_rate(&self) -> Option<f64> {
        self.state.lock().pace
    }
}

fn limiter(rate: f64, burst: u32) -> Arc<DefaultDirectRateLimiter> {
    let period = Duration::from_secs_f64(1.0 / rate.max(1.0 / HOUR));
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
    use reqwest::header::HeaderValue;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Plays a token bucket against the estimator: `burst` tokens,
    /// `refill` per second, a client sending `send_rate` when unpaced, the
    /// server's whole-second `Retry-After`. Stops after six 429 episodes or a
    /// minute.
    fn converge(burst: f64, refill: f64) -> (Estimator, u32) {
        let start = Instant::now();
        let mut est = Estimator::new();
        let (mut tokens, mut accepted, mut episodes) = (burst, 0u64, 0u32);
        let step = 0.001;
        let mut t = 0.0;
        let mut blocked_until = 0.0;
        let mut next_send = 0.0;
        while t < 60.0 {
            t += step;
            tokens = (tokens + refill * step).min(burst);
            let now = start + secs(t);
            if t < blocked_until {
                continue;
            }
            if est.on_calm(now, accepted) {
                next_send = t;
            }
            let pace = est.pace().unwrap_or(2000.0);
            if t < next_send {
                continue;
            }
            next_send = t + 1.0 / pace;
            if tokens >= 1.0 {
                tokens -= 1.0;
                accepted += 1;
            } else {
                let wait = ((1.0 - tokens) / refill).ceil().max(1.0);
                est.on_429(now, accepted, secs(wait), false);
                blocked_until = t + wait;
                next_send = blocked_until;
                episodes += 1;
                if episodes >= 6 {
                    break;
                }
            }
        }
        (est, episodes)
    }

    /// Plays [`converge`] and checks the refill estimated.
    fn assert_estimates(burst: f64, refill: f64, expected: std::ops::RangeInclusive<f64>) {
        let (est, _) = converge(burst, refill);
        let estimated = est.refill().unwrap();
        assert!(expected.contains(&estimated), "{estimated}");
    }

    #[test]
    fn estimates_a_slow_refill_from_two_429s() {
        assert_estimates(60.0, 5.0, 4.5..=5.5);
    }

    #[test]
    fn estimates_a_bucket_that_a_stall_refills_completely() {
        // 20 tokens refill in 0.2 s, so a 1 s stall tells nothing: the search
        // has to send faster than the refill to measure it.
        assert_estimates(20.0, 100.0, 85.0..=105.0);
    }

    #[test]
    fn estimates_a_large_bucket() {
        assert_estimates(100.0, 50.0, 45.0..=55.0);
    }

    #[test]
    fn the_first_429_starts_a_search_and_calm_raises_it() {
        let t0 = Instant::now();
        let mut est = Estimator::new();
        assert_eq!(est.pace(), None);
        est.on_429(t0, 40, Duration::from_secs(2), false);
        assert_eq!(est.pace(), Some(20.0));
        // No raise during the stall.
        assert!(!est.on_calm(t0 + secs(1.0), 40));
        assert!(est.on_calm(t0 + secs(2.5), 45));
        assert_eq!(est.pace(), Some(40.0));
        for i in 0..20 {
            est.on_calm(t0 + secs(3.0 + f64::from(i)), 50);
        }
        assert_eq!(est.pace(), None, "a search past 1000/s stops pacing");
    }

    #[test]
    fn probes_upward_additively_and_a_429_below_the_estimate_remeasures_it() {
        let t0 = Instant::now();
        let mut est = Estimator::new();
        est.on_429(t0, 60, secs(1.0), false);
        est.on_429(t0 + secs(2.0), 70, secs(1.0), false);
        assert_eq!(est.refill(), Some(5.0));
        let paced = est.pace().unwrap();
        assert!((paced - 4.75).abs() < 1e-9, "{paced}");
        assert!(!est.on_calm(t0 + secs(4.0), 80));
        assert!(est.on_calm(t0 + secs(8.5), 100));
        let probed = est.pace().unwrap();
        assert!((probed - 4.875).abs() < 1e-9, "{probed}");
        // 10 accepted in the 10 s between two 429s: the bucket now refills
        // at 1/s, not 5/s (shared, or shrunk).
        est.on_429(t0 + secs(12.0), 80, secs(1.0), false);
        assert_eq!(est.refill(), Some(1.0));
    }

    /// Between two runs the bucket refills unobserved: a 429 after the idle
    /// gap says nothing about the refill rate (measured here, the ~2,000
    /// requests over the 1,400 s since the last 429 would read 1.4/s).
    #[test]
    fn a_429_after_an_idle_gap_keeps_the_estimate() {
        let t0 = Instant::now();
        let mut est = Estimator::new();
        est.on_429(t0, 60, secs(1.0), false);
        est.on_429(t0 + secs(2.0), 70, secs(1.0), false);
        assert_eq!(est.refill(), Some(5.0));
        est.on_429(t0 + secs(1400.0), 2070, secs(1.0), true);
        assert_eq!(est.refill(), Some(5.0));
        assert!((est.pace().unwrap() - 4.75).abs() < 1e-9);
        // Measured again from that 429 on.
        est.on_429(t0 + secs(1402.0), 2080, secs(1.0), false);
        assert_eq!(est.refill(), Some(5.0));
    }

    #[test]
    fn reads_data_center_and_cloud_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("X-RateLimit-Limit", HeaderValue::from_static("60"));
        headers.insert("X-RateLimit-FillRate", HeaderValue::from_static("10"));
        headers.insert(
            "X-RateLimit-Interval-Seconds",
            HeaderValue::from_static("2"),
        );
        headers.insert("X-RateLimit-Remaining", HeaderValue::from_static("12"));
        let parsed = RateHeaders::parse(&headers);
        assert_eq!(parsed.refill, Some(5.0));
        assert_eq!(parsed.burst, Some(60.0));
        assert_eq!(parsed.near_limit, None);

        let mut headers = HeaderMap::new();
        headers.insert("X-RateLimit-Limit", HeaderValue::from_static("1000"));
        headers.insert("X-RateLimit-NearLimit", HeaderValue::from_static("true"));
        headers.insert(
            "X-RateLimit-Resource",
            HeaderValue::from_static("api-repositories"),
        );
        let parsed = RateHeaders::parse(&headers);
        assert_eq!(parsed.refill, None);
        assert_eq!(parsed.near_limit, Some((true, Some(1000.0))));
        assert_eq!(
            RateHeaders::parse(&HeaderMap::new()),
            RateHeaders::default()
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("Retry-After", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        let at = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        headers.insert("Retry-After", HeaderValue::from_str(&at).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
        headers.insert(
            "Retry-After",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert("Retry-After", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[tokio::test]
    async fn data_center_headers_set_the_pace_without_a_429() {
        let pacer = Pacer::new("test".into(), None, 4);
        let mut headers = HeaderMap::new();
        headers.insert("X-RateLimit-Limit", HeaderValue::from_static("60"));
        headers.insert("X-RateLimit-FillRate", HeaderValue::from_static("5"));
        pacer.answered(&headers);
        assert_eq!(pacer.current_rate(), Some(MARGIN * 5.0));
    }

    #[tokio::test]
    async fn cloud_near_limit_spreads_the_rest_over_the_hour() {
        let pacer = Pacer::new("test".into(), None, 4);
        let mut headers = HeaderMap::new();
        headers.insert("X-RateLimit-Limit", HeaderValue::from_static("3600"));
        headers.insert("X-RateLimit-NearLimit", HeaderValue::from_static("false"));
        pacer.answered(&headers);
        assert_eq!(pacer.current_rate(), None);
        headers.insert("X-RateLimit-NearLimit", HeaderValue::from_static("true"));
        pacer.answered(&headers);
        assert_eq!(pacer.current_rate(), Some(NEAR_LIMIT_SHARE));
        headers.insert("X-RateLimit-NearLimit", HeaderValue::from_static("false"));
        pacer.answered(&headers);
        assert_eq!(pacer.current_rate(), None);
    }

    #[tokio::test]
    async fn a_configured_rate_stays_a_ceiling() {
        let pacer = Pacer::new(
            "test".into(),
            Some(RateLimit {
                requests_per_second: 10.0,
                burst: 10,
            }),
            4,
        );
        assert_eq!(pacer.current_rate(), Some(10.0));
        let mut headers = HeaderMap::new();
        headers.insert("X-RateLimit-FillRate", HeaderValue::from_static("100"));
        pacer.answered(&headers);
        assert_eq!(pacer.current_rate(), Some(10.0));
        headers.insert("X-RateLimit-FillRate", HeaderValue::from_static("4"));
        pacer.answered(&headers);
        assert_eq!(pacer.current_rate(), Some(MARGIN * 4.0));
    }

    #[tokio::test]
    async fn everyone_waits_out_retry_after_and_late_429s_are_one_episode() {
        let pacer = Arc::new(Pacer::new("test".into(), None, 4));
        let first = pacer.acquire().await;
        let second = pacer.acquire().await;
        let started = Instant::now();
        pacer.rate_limited(first.ticket, Duration::from_millis(200));
        let pace = pacer.current_rate();
        // The second request was in flight: its 429 is the same episode.
        pacer.rate_limited(second.ticket, Duration::from_millis(200));
        assert_eq!(pacer.current_rate(), pace);
        assert_eq!(pacer.state.lock().epoch, 1);
        drop((first, second));
        let _third = pacer.acquire().await;
        assert!(Instant::now() >= started + Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_pace_change_wakes_requests_waiting_on_the_old_pace() {
        let pacer = Arc::new(Pacer::new(
            "test".into(),
            Some(RateLimit {
                requests_per_second: 100.0,
                burst: 1,
            }),
            8,
        ));
        {
            // Force a very slow pace: one request per 100 s.
            let mut state = pacer.state.lock();
            state.hourly_cap = Some(0.01);
            pacer.apply(&mut state, true);
        }
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let pacer = Arc::clone(&pacer);
                tokio::spawn(async move { drop(pacer.acquire().await) })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(waiters.iter().all(|w| !w.is_finished()));
        {
            let mut state = pacer.state.lock();
            state.hourly_cap = None;
            pacer.apply(&mut state, true);
        }
        // At 100/s the four go out within a fraction of a second, not 100 s.
        let all = futures::future::join_all(waiters);
        tokio::time::timeout(Duration::from_secs(5), all)
            .await
            .unwrap();
    }

    /// Collects what a subscriber writes, for log assertions.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn rate_limit_lines_name_the_host_and_units_and_are_rate_limited() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let pacer = Pacer::new("bitbucket.example.com".into(), None, 4);
            // Ten 429 episodes within a minute: one line.
            for epoch in 0..10 {
                pacer.rate_limited(Ticket { epoch }, Duration::from_millis(1500));
            }
            assert_eq!(pacer.view().rate_limited, 10);
        });
        let text = String::from_utf8(captured.0.lock().clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(
            lines[0]
                .contains("Bitbucket bitbucket.example.com rate limit hit (429): waiting 1500 ms"),
            "{text}"
        );
        assert!(
            lines[0].contains("host=\"bitbucket.example.com\""),
            "{text}"
        );
        assert!(
            lines[0].contains("requests/s") || lines[0].contains("unpaced"),
            "{text}"
        );
    }
}
