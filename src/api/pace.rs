//! Requests that cost Bitbucket requests (entity, provider and location
//! refresh, `validate-entity`, `analyze-location`) are coalesced per
//! target and paced per caller and overall, so a flood of them cannot
//! spend the Bitbucket budget that pushes need.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;

use super::error::ApiError;
use super::request::{Caller, Req};
use crate::config::{BitbucketReadsPace, Pace};

/// A target asked for again within this is served by the first request.
const COALESCE: Duration = Duration::from_secs(30);
/// Targets and callers remembered; past it the oldest state is dropped.
const MAX_REMEMBERED: usize = 10_000;

#[derive(Debug)]
pub(crate) struct BitbucketPace {
    /// `backend.apiRateLimit.bitbucketReads`, for the 429's message.
    limits: BitbucketReadsPace,
    overall: DefaultDirectRateLimiter,
    per_caller: DefaultKeyedRateLimiter<u64>,
    recent: Mutex<HashMap<String, Instant>>,
}

/// What to do with an admitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admitted {
    /// Read Bitbucket.
    Go,
    /// The same target was asked for moments ago: that request serves it.
    Coalesced,
}

/// `pace` as a quota (config validation keeps both numbers positive).
pub(super) fn quota(pace: Pace) -> Quota {
    Quota::per_minute(NonZeroU32::new(pace.per_minute).unwrap_or(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(pace.burst).unwrap_or(NonZeroU32::MIN))
}

impl From<&BitbucketReadsPace> for BitbucketPace {
    fn from(limits: &BitbucketReadsPace) -> Self {
        Self {
            limits: *limits,
            overall: RateLimiter::direct(quota(limits.overall)),
            per_caller: RateLimiter::keyed(quota(limits.per_caller)),
            recent: Mutex::new(HashMap::new()),
        }
    }
}

impl BitbucketPace {
    /// Admits a request for `target` (what it reads: a unit, a provider,
    /// a URL), or 429 past the caller's or the overall pace.
    pub(crate) fn admit(
        &self,
        req: &Req,
        headers: &HeaderMap,
        target: &str,
    ) -> Result<Admitted, ApiError> {
        {
            let recent = self.recent.lock();
            if recent.get(target).is_some_and(|at| at.elapsed() < COALESCE) {
                return Ok(Admitted::Coalesced);
            }
        }
        self.pace(req, headers)?;
        let mut recent = self.recent.lock();
        if recent.len() >= MAX_REMEMBERED {
            recent.retain(|_, at| at.elapsed() < COALESCE);
            if recent.len() >= MAX_REMEMBERED {
                recent.clear();
            }
        }
        recent.insert(target.to_owned(), Instant::now());
        Ok(Admitted::Go)
    }

    /// Paces a request whose answer depends on more than a target (it is
    /// not coalesced): 429 past the caller's or the overall pace. The
    /// caller is `req.caller`; `_headers` is no longer read (kept so the
    /// handlers did not change with it).
    pub(crate) fn pace(&self, req: &Req, _headers: &HeaderMap) -> Result<(), ApiError> {
        let paced = |scope: &str| {
            req.error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsError",
                format!(
                    "requests that read Bitbucket (refresh, validate-entity, analyze-location) are paced {scope}; try again shortly"
                ),
            )
        };
        if self.per_caller.len() > MAX_REMEMBERED {
            self.per_caller.retain_recent();
        }
        if self.per_caller.check_key(&caller_key(&req.caller)).is_err() {
            return Err(paced(&format!(
                "per caller ({}; backend.apiRateLimit.bitbucketReads.perCaller)",
                self.limits.per_caller
            )));
        }
        if self.overall.check().is_err() {
            return Err(paced(&format!(
                "for all callers together ({}; backend.apiRateLimit.bitbucketReads.overall)",
                self.limits.overall
            )));
        }
        Ok(())
    }
}

/// The caller's key: a hash of who it is (a known token's subject, else
/// its address; see [`super::caller`]). An invented token is no token, so
/// inventing tokens does not buy a client more callers' budgets.
fn caller_key(caller: &Caller) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    caller.hash(&mut hasher);
    hasher.finish()
}
