//! The pure estimator: from the 429s (and `X-RateLimit-*` headers) it is
//! told about, with the times they came, it works out the server's token
//! bucket and the pace to send at. No clock, no I/O: the pacer feeds it.

use std::time::Duration;

use tokio::time::Instant;

/// The share of the estimated refill rate we send at: a pace exactly at the
/// refill rate has no slack, and jitter bunches arrivals on an empty bucket.
pub(super) const MARGIN: f64 = 0.95;
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
/// Under a share, a 429 means the bucket ran dry with us under our share:
/// the estimate was too high (or others take more now). It is cut by this
/// factor (and probed upward again as without a share).
const SHARED_CUT: f64 = 0.7;
/// After a 429 from a bucket that refills fast, wait until it holds about
/// this many tokens (not the whole bucket: its size is only an upper
/// estimate, and the burst after the stall must not overrun it) ...
const STALL_TOKENS: f64 = 10.0;
/// ... but at least this long.
const MIN_STALL: Duration = Duration::from_millis(20);

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
pub(super) struct Estimator {
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
    /// `rateLimit.share`: once the refill is known, send at this share of
    /// it and burst at most this share of the bucket.
    share: Option<f64>,
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
    pub(super) fn new() -> Self {
        Self {
            mode: Mode::Unlimited,
            burst: None,
            last: None,
            last_stall: Duration::from_secs(1),
            exact: false,
            share: None,
        }
    }

    /// Sends at most `share` of the learnt refill rate once it is known.
    pub(super) fn with_share(mut self, share: Option<f64>) -> Self {
        self.share = share.filter(|s| s.is_finite() && *s > 0.0 && *s < 1.0);
        self
    }

    /// The refill rate estimated so far.
    pub(crate) fn refill(&self) -> Option<f64> {
        match self.mode {
            Mode::Paced { refill, .. } => Some(refill),
            _ => None,
        }
    }

    /// The pace to send at; `None` = unpaced. A search runs at full speed
    /// (it must overshoot the refill to measure it); a share applies once
    /// the refill is estimated.
    pub(crate) fn pace(&self) -> Option<f64> {
        match self.mode {
            Mode::Unlimited => None,
            Mode::Search { pace, .. } => Some(pace),
            Mode::Paced { pace, .. } => Some(match self.share {
                Some(share) => (share * pace).max(MIN_RATE),
                None => pace,
            }),
        }
    }

    /// The burst the pace may send at once: what a stall lets the bucket
    /// refill, at most its size, with some slack.
    pub(crate) fn pace_burst(&self) -> u32 {
        match (self.mode, self.burst) {
            (Mode::Paced { refill, .. }, Some(burst)) => {
                let refilled = refill * self.last_stall.as_secs_f64();
                let mut cells = (BURST_SHARE * burst.min(refilled)).floor();
                if let Some(share) = self.share {
                    // Leave the rest of the bucket's burst to other clients.
                    cells = cells.min((share * burst).floor());
                }
                // Bounded above by the burst estimate, itself a request count.
                if cells >= 1.0 { cells as u32 } else { 1 }
            }
            _ => 1,
        }
    }

    /// A new 429 episode at `now`, after `accepted` accepted responses in
    /// all; the server said to wait `retry_after`. Returns how long
    /// everyone waits: `retry_after`, or less from a bucket known to refill
    /// whole within it (Retry-After comes in whole seconds, at least 1, so
    /// it is only an upper bound there).
    /// `idle`: no request was in flight or waiting at some point since the
    /// last episode, so the bucket refilled unobserved and what got through
    /// in between measures nothing; the estimate stands.
    pub(crate) fn on_429(
        &mut self,
        now: Instant,
        accepted: u64,
        retry_after: Duration,
        idle: bool,
    ) -> Duration {
        let stall = self.stall(retry_after);
        let resume = now + stall;
        self.mode = match (idle, self.share, self.last, self.mode) {
            (true, _, _, Mode::Paced { refill, .. }) => paced(refill, resume),
            // Under a share our own count does not measure the refill
            // (others took the rest): cut the estimate instead.
            (false, Some(_), _, Mode::Paced { refill, .. }) => {
                paced((refill * SHARED_CUT).max(MIN_RATE), resume)
            }
            // The server said its refill: a 429 does not unlearn it (a
            // search from scratch would overrun the bucket again).
            (_, None, _, Mode::Paced { refill, .. }) if self.exact => paced(refill, resume),
            (_, _, Some(prev), Mode::Search { .. } | Mode::Paced { .. }) => {
                paced(self.refill_since(prev, now, accepted).max(MIN_RATE), resume)
            }
            _ => self.first_episode(accepted, stall, resume),
        };
        // The estimate may just have shown a fast bucket: wait less.
        let stall = self.stall(retry_after).min(stall);
        if let Mode::Paced { since, .. } = &mut self.mode {
            *since = now + stall;
        }
        self.last = Some(Episode { at: now, accepted });
        self.last_stall = stall;
        stall
    }

    /// How long to wait after a 429 that said `retry_after`: from a bucket
    /// that refills whole within it, the time it takes to hold
    /// [`STALL_TOKENS`] (the pace's burst spends them right after).
    pub(crate) fn stall(&self, retry_after: Duration) -> Duration {
        match (self.mode, self.burst) {
            (Mode::Paced { refill, .. }, Some(burst))
                if refill * retry_after.as_secs_f64() > burst =>
            {
                Duration::from_secs_f64(burst.min(STALL_TOKENS) / refill)
                    .max(MIN_STALL)
                    .min(retry_after)
            }
            _ => retry_after,
        }
    }

    /// The refill rate a 429 at `now` after the episode `prev` shows.
    fn refill_since(&self, prev: Episode, now: Instant, accepted: u64) -> f64 {
        // Both 429s found the bucket empty, so what got through in between
        // is what it refilled: a lower bound of the refill rate (exact
        // unless the bucket overflowed in a stall).
        let between = now.saturating_duration_since(prev.at).as_secs_f64();
        let got = accepted.saturating_sub(prev.accepted) as f64;
        let lower = if between > 0.0 { got / between } else { 0.0 };
        if self.share.is_some() {
            // Other clients may have drained the bucket too, which the
            // estimates below would read as our own overshoot: under a
            // share only the safe side counts (probing raises it).
            return lower;
        }
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
            // Under a share the estimate itself creeps up (the pace is a
            // share of it), in case it was cut too far.
            Mode::Paced { refill, since, .. }
                if !self.exact && self.share.is_some() && now >= since + PROBE_CALM =>
            {
                self.mode = paced(refill * (1.0 + PROBE_STEP), now);
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_share_paces_at_that_share_and_yields_to_other_clients() {
        let t0 = Instant::now();
        let mut est = Estimator::new().with_share(Some(0.5));
        est.on_429(t0, 60, secs(1.0), false);
        est.on_429(t0 + secs(2.0), 70, secs(1.0), false);
        assert_eq!(est.refill(), Some(5.0));
        let shared = est.pace().unwrap();
        assert!((shared - 0.5 * 4.75).abs() < 1e-9, "{shared}");
        // The bucket ran dry under our share: others take more; cut.
        est.on_429(t0 + secs(40.0), 250, secs(1.0), false);
        assert!((est.refill().unwrap() - 0.7 * 5.0).abs() < 1e-9);
        let cut = est.pace().unwrap();
        assert!((cut - 0.7 * shared).abs() < 1e-9, "{cut}");
        // Calm probes the estimate upward again, slowly.
        assert!(!est.on_calm(t0 + secs(44.0), 260));
        assert!(est.on_calm(t0 + secs(47.0), 260));
        let probed = est.pace().unwrap();
        assert!(probed > cut && probed < 1.05 * cut, "{probed}");
        // The burst leaves the rest of the bucket.
        let mut est = Estimator::new().with_share(Some(0.1));
        est.known(t0, 10.0, Some(60.0));
        assert_eq!(est.pace_burst(), 6);
        assert!((est.pace().unwrap() - 0.1 * MARGIN * 10.0).abs() < 1e-9);
    }

    #[test]
    fn a_429_keeps_a_refill_the_server_said() {
        let t0 = Instant::now();
        let mut est = Estimator::new();
        est.known(t0, 5.0, Some(60.0));
        assert_eq!(est.on_429(t0 + secs(3.0), 20, secs(1.0), false), secs(1.0));
        assert_eq!(est.refill(), Some(5.0));
        assert!((est.pace().unwrap() - 4.75).abs() < 1e-9);
    }

    #[test]
    fn a_fast_bucket_stalls_less_than_a_whole_second_retry_after() {
        let (est, _) = converge(20.0, 100.0);
        let stall = est.stall(secs(1.0));
        assert!(stall <= secs(0.3), "{stall:?}");
        // A slow bucket's Retry-After is what it takes.
        let (est, _) = converge(60.0, 5.0);
        assert_eq!(est.stall(secs(1.0)), secs(1.0));
        // Nothing known: Retry-After stands.
        assert_eq!(Estimator::new().stall(secs(1.0)), secs(1.0));
    }
}
