//! The pacer: what every request to one integration waits for (the pace in
//! force, the concurrency cap, the latest `Retry-After`), driven by the
//! estimator and by what each answer says.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use reqwest::header::HeaderMap;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::concurrency::{Concurrency, Outcome, Place};
use super::estimator::Estimator;
use super::headers::RateHeaders;
use super::lanes::{Class, Gate, Lane};
use crate::integrations::{Budget, RateLimit};

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
/// Interactive work waits out stalls longer than this (see [`held_until`]);
/// Atlassian's own clients wait this long when no `Retry-After` comes.
const INTERACTIVE_STALL: Duration = Duration::from_secs(5);
/// "Used": requests sent over the last window this long.
const USED_WINDOW: Duration = Duration::from_secs(10);

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
    /// `rateLimit.share` / `perHour`.
    budget: Budget,
    /// The latest episode's stall (Retry-After, or less from a fast bucket):
    /// late 429s of that episode wait no longer.
    stall: Duration,
    /// A request sent within the latest stall met an empty bucket: the
    /// pace is above the refill, so the rest of the stall holds everyone
    /// (and the next 429 after it teaches the estimator).
    refused_in_stall: bool,
    /// Requests answered (429s included) in the current [`USED_WINDOW`]
    /// since its start, and the rate of the window before.
    used: (Instant, u64, f64),
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
    /// Requests allowed in flight now (adaptive, up to `maxConcurrentRequests`).
    pub concurrency: usize,
    pub in_flight: usize,
    /// `rateLimit.share`, when set.
    pub share: Option<f64>,
    /// The fixed ceiling (requests per second): `requestsPerSecond` and
    /// `perHour` spread over the hour, the lower.
    pub ceiling_per_second: Option<f64>,
    /// The refill rate learnt from 429s or headers.
    pub refill_per_second: Option<f64>,
    /// Requests answered per second over the last ~10 s.
    pub used_per_second: f64,
}

/// Which episode a request was sent in, for [`Pacer::rate_limited`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    epoch: u64,
}

/// A concurrency slot; hold it until the response body has been read.
/// Its lifetime is the request's latency for the adaptive limit; say
/// [`Slot::overloaded`] when the answer was an overload.
#[derive(Debug)]
pub(crate) struct Slot {
    place: Option<Place>,
    concurrency: Arc<Concurrency>,
    sent: Instant,
    overloaded: bool,
    rate_limited: bool,
    pub ticket: Ticket,
}

impl Slot {
    /// 429, 502–504 or no answer at all: the concurrency backs off.
    pub(crate) fn overloaded(&mut self) {
        self.overloaded = true;
    }

    /// 429: left to the pace; the concurrency neither grows nor shrinks.
    pub(crate) fn refused_by_bucket(&mut self) {
        self.rate_limited = true;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(place) = self.place.take() {
            let outcome = if self.overloaded {
                Outcome::Overloaded
            } else if self.rate_limited {
                Outcome::RateLimited
            } else {
                Outcome::Answered(self.sent.elapsed())
            };
            self.concurrency.finished(place, outcome);
        }
    }
}

/// Shared by every request to one integration, across runs and providers.
#[derive(Debug)]
pub(crate) struct Pacer {
    /// The integration's host, named in logs.
    host: String,
    configured: Option<RateLimit>,
    /// Requests in flight, interactive work first, the limit adaptive.
    permits: Arc<Concurrency>,
    /// One request at a time waits on the pace, interactive work first, so
    /// the limiter's next token goes to it rather than to a queued sweep.
    turn: Arc<Gate>,
    state: Mutex<State>,
    /// Wakes requests waiting on the pace when it changes, so none keeps
    /// draining at an old rate.
    changed: Notify,
}

impl Pacer {
    pub(crate) fn new(host: String, configured: Option<RateLimit>, max_concurrent: usize) -> Self {
        let pacer = Self {
            host,
            configured,
            permits: Concurrency::new(max_concurrent),
            turn: Gate::new(1, 0),
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
                budget: Budget::default(),
                stall: Duration::ZERO,
                refused_in_stall: false,
                used: (Instant::now(), 0, 0.0),
            }),
            changed: Notify::new(),
        };
        {
            let mut state = pacer.state.lock();
            pacer.apply(&mut state, false);
        }
        pacer
    }

    /// Sets `rateLimit.share` / `perHour`: at most that share of what the
    /// pacer learns, at most that many requests an hour.
    pub(crate) fn with_budget(self, budget: Budget) -> Self {
        {
            let mut state = self.state.lock();
            state.estimator = Estimator::new().with_share(budget.share);
            state.budget = budget;
            self.apply(&mut state, false);
        }
        self
    }

    /// Waits for a `Retry-After` in force, the pace and a concurrency slot;
    /// interactive work (see [`Lane`]) goes ahead of queued sweep work for
    /// both, and a sweep waiting on the pace gives its turn up to it. The
    /// pace comes first, so requests waiting on a bucket hold no slot and
    /// the slots measure only what Bitbucket is working on.
    pub(crate) async fn acquire(&self) -> Slot {
        let class = Class::current();
        let lane = class.lane();
        self.note_arrival();
        let mut place = None;
        // A sweep request gives its turn up at most once, so a stream of
        // interactive work cannot keep it from the pace.
        let mut yielded = false;
        loop {
            // Registered before reading the state, so no change is missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (hold, limiter) = self.hold_and_pace(lane);
            if let Some(until) = hold {
                tokio::time::sleep_until(until).await;
                continue;
            }
            if let Some(limiter) = limiter {
                let _turn = tokio::select! {
                    turn = self.turn.enter(&class) => turn,
                    () = &mut changed => continue,
                };
                // A sweep's turn is only a place in the line for the next
                // token: interactive work arriving meanwhile takes it.
                let may_yield = lane == Lane::Sweep && !yielded;
                let turn = &self.turn;
                let yield_turn = async move {
                    if may_yield {
                        turn.interactive_waiting().await;
                    } else {
                        std::future::pending::<()>().await;
                    }
                };
                tokio::select! {
                    _ = limiter.until_ready() => {}
                    () = &mut changed => continue,
                    () = yield_turn => {
                        yielded = true;
                        continue;
                    }
                }
            }
            let held = match place.take() {
                Some(held) => held,
                None => self.permits.enter(&class).await,
            };
            let state = self.state.lock();
            // A 429 came while this request waited for the pace or a slot:
            // it keeps its slot and waits the Retry-After out.
            if held_until(&state, lane, Instant::now()).is_some() {
                drop(state);
                place = Some(held);
                continue;
            }
            return Slot {
                place: Some(held),
                concurrency: Arc::clone(&self.permits),
                sent: Instant::now(),
                overloaded: false,
                rate_limited: false,
                ticket: Ticket { epoch: state.epoch },
            };
        }
    }

    /// A request after a quiet gap with nothing in flight marks the pacer
    /// idle since its last episode (what the estimator's probing needs).
    fn note_arrival(&self) {
        let mut state = self.state.lock();
        let now = Instant::now();
        let quiet = state
            .last_request
            .is_some_and(|t| now.saturating_duration_since(t) >= IDLE_GAP);
        if quiet && self.permits.in_flight() == 0 {
            state.idle_since_episode = true;
        }
        state.last_request = Some(now);
    }

    /// Until when a request of `lane` is held, if at all, and the pace it
    /// then waits on; outside a `Retry-After`, a calm stretch first lets
    /// the estimator raise the pace.
    fn hold_and_pace(
        &self,
        lane: Lane,
    ) -> (Option<Instant>, Option<Arc<DefaultDirectRateLimiter>>) {
        let mut state = self.state.lock();
        let now = Instant::now();
        if state.blocked_until.is_none_or(|b| b <= now) {
            let accepted = state.accepted;
            if state.estimator.on_calm(now, accepted) {
                self.apply(&mut state, true);
            }
        }
        (held_until(&state, lane, now), state.limiter.clone())
    }

    /// A response other than 429: the bucket took a token; read what the
    /// server says about its limits.
    pub(crate) fn answered(&self, headers: &HeaderMap) {
        let hints = RateHeaders::parse(headers);
        let mut state = self.state.lock();
        state.accepted += 1;
        state.last_request = Some(Instant::now());
        count_used(&mut state);
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

    /// Bitbucket said 429: sweeps wait `retry_after` (interactive work, see
    /// [`held_until`], only the next token); the first 429 of requests sent
    /// since the last episode teaches the estimator.
    pub(crate) fn rate_limited(&self, ticket: Ticket, retry_after: Duration) {
        let now = Instant::now();
        let mut state = self.state.lock();
        state.rate_limited += 1;
        count_used(&mut state);
        // An interactive request sent during a stall (at the next token)
        // that met an empty bucket anyway belongs to that episode: what got
        // through since it began measures nothing yet.
        let stalled = state.blocked_until.is_some_and(|b| b > now);
        // Sent within the stall (late 429s of requests sent before it say nothing).
        if stalled && ticket.epoch == state.epoch {
            state.refused_in_stall = true;
        }
        if ticket.epoch == state.epoch && !stalled {
            state.epoch += 1;
            state.refused_in_stall = false;
            let accepted = state.accepted;
            let idle = std::mem::take(&mut state.idle_since_episode);
            state.stall = state.estimator.on_429(now, accepted, retry_after, idle);
            self.apply(&mut state, true);
            // Nothing banked: interactive requests in the stall get the
            // bucket's next tokens, one at a time.
            if let Some(limiter) = &state.limiter {
                while limiter.check().is_ok() {}
            }
            self.log_rate_limited(&mut state, now, retry_after);
        }
        // Late 429s of the episode wait no longer than its stall.
        let until = now + retry_after.min(state.stall);
        // Waiting out Retry-After is not idleness.
        state.last_request = Some(until);
        state.blocked_until = Some(state.blocked_until.map_or(until, |b| b.max(until)));
        drop(state);
        self.changed.notify_waiters();
    }

    /// How the integration stands: for the status page.
    pub(crate) fn view(&self) -> PaceView {
        let state = self.state.lock();
        let now = Instant::now();
        let (since, count, before) = state.used;
        let elapsed = now.saturating_duration_since(since);
        PaceView {
            pace_per_second: state.pace,
            answered: state.accepted + state.rate_limited,
            rate_limited: state.rate_limited,
            blocked: state.blocked_until.is_some_and(|b| b > now),
            concurrency: self.permits.limit(),
            in_flight: self.permits.in_flight(),
            share: state.budget.share,
            ceiling_per_second: self.ceiling(&state),
            refill_per_second: state.estimator.refill(),
            used_per_second: if elapsed >= USED_WINDOW * 2 {
                0.0
            } else if elapsed >= Duration::from_secs(1) {
                count as f64 / elapsed.as_secs_f64()
            } else {
                before
            },
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
        let per_hour = state.budget.per_hour.map(|n| f64::from(n) / HOUR);
        let ceiling = [self.ceiling(state), state.hourly_cap]
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
        } else if state.hourly_cap.is_some() || (per_hour.is_some() && pace == per_hour) {
            // An hourly allowance is spread evenly, not spent in bursts.
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

    /// The fixed ceiling: `requestsPerSecond` and `perHour` spread over the hour.
    fn ceiling(&self, state: &State) -> Option<f64> {
        [
            self.configured.map(|c| c.requests_per_second),
            state.budget.per_hour.map(|n| f64::from(n) / HOUR),
        ]
        .into_iter()
        .flatten()
        .reduce(f64::min)
    }

    /// The pace in force (requests per second), `None` when unlimited.
    #[cfg(test)]
    pub(crate) fn current_rate(&self) -> Option<f64> {
        self.state.lock().pace
    }
}

/// Until when a request of `lane` waits on a `Retry-After` now. Sweeps
/// wait it out. Interactive work does not when the bucket's refill is
/// known and the stall is short (a Data Center bucket: `Retry-After` is
/// when one token will be there, rounded up to whole seconds): it goes at
/// the pace, whose limiter was emptied at the 429, so it gets the tokens
/// the bucket refills while the sweeps stand still. A long stall is an
/// allowance used up (Cloud's hour), where more requests only earn 429s.
fn held_until(state: &State, lane: Lane, now: Instant) -> Option<Instant> {
    let until = state.blocked_until.filter(|b| *b > now)?;
    let next_token = lane == Lane::Interactive
        && !state.refused_in_stall
        && state.limiter.is_some()
        && state.estimator.refill().is_some()
        && state.stall <= INTERACTIVE_STALL;
    (!next_token).then_some(until)
}

/// One more request answered, for "used".
fn count_used(state: &mut State) {
    let now = Instant::now();
    let (since, count, before) = state.used;
    let elapsed = now.saturating_duration_since(since);
    state.used = if elapsed >= USED_WINDOW {
        (now, 1, count as f64 / elapsed.as_secs_f64())
    } else {
        (since, count + 1, before)
    };
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
    use super::super::estimator::MARGIN;
    use super::*;
    use reqwest::header::HeaderValue;

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
    async fn a_budget_caps_the_pace_by_share_and_per_hour() {
        let budget = Budget {
            share: Some(0.5),
            per_hour: Some(7200),
        };
        let pacer = Pacer::new("test".into(), None, 4).with_budget(budget);
        // The per-hour ceiling binds before anything is learnt.
        assert_eq!(pacer.current_rate(), Some(2.0));
        let mut headers = HeaderMap::new();
        headers.insert("X-RateLimit-Limit", HeaderValue::from_static("60"));
        headers.insert("X-RateLimit-FillRate", HeaderValue::from_static("2"));
        pacer.answered(&headers);
        assert_eq!(pacer.current_rate(), Some(0.5 * MARGIN * 2.0));
        let view = pacer.view();
        assert_eq!(view.share, Some(0.5));
        assert_eq!(view.ceiling_per_second, Some(2.0));
        assert_eq!(view.refill_per_second, Some(2.0));
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

    /// A bucket known to refill 5 a second answers 429 with `Retry-After:
    /// 4`: a sweep request waits it out, an interactive one goes at the
    /// next token of the pace (a fifth of a second); its own 429 in the
    /// stall is part of the episode, not a new one, and ends the shortcut.
    #[tokio::test]
    async fn interactive_work_takes_the_next_token_while_sweeps_wait_out_retry_after() {
        let pacer = Arc::new(Pacer::new("test".into(), None, 4));
        let mut headers = HeaderMap::new();
        headers.insert("X-RateLimit-Limit", HeaderValue::from_static("60"));
        headers.insert("X-RateLimit-FillRate", HeaderValue::from_static("5"));
        pacer.answered(&headers);
        let first = pacer.acquire().await;
        let retry_after = Duration::from_secs(4);
        let started = Instant::now();
        pacer.rate_limited(first.ticket, retry_after);
        drop(first);
        let sweep = tokio::spawn({
            let pacer = Arc::clone(&pacer);
            super::super::sweep("p", async move { drop(pacer.acquire().await) })
        });
        let interactive = pacer.acquire().await;
        assert!(
            !sweep.is_finished(),
            "the sweep did not wait out Retry-After"
        );
        let pace = pacer.current_rate();
        pacer.rate_limited(interactive.ticket, Duration::from_secs(1));
        assert_eq!(
            pacer.state.lock().epoch,
            1,
            "a 429 in the stall began an episode"
        );
        assert_eq!(pacer.current_rate(), pace);
        drop(interactive);
        // Refused within the stall: the pace is above the refill, so the
        // rest of the stall holds interactive work too.
        drop(pacer.acquire().await);
        assert!(Instant::now() >= started + retry_after);
        sweep.await.expect("sweep task");
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
