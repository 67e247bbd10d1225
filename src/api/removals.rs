//! Removals through the API (`DELETE /entities/by-uid`, `DELETE
//! /locations/{id}`) are paced and counted against a deletion guard over
//! the whole catalog, like a listing's removals: no client can empty the
//! catalog one request at a time.

use axum::http::StatusCode;
use governor::{DefaultDirectRateLimiter, RateLimiter};
use parking_lot::Mutex;

use super::error::ApiError;
use super::request::Req;
use crate::config::{DeletionGuard, Pace};
use crate::scheduler::RemovalTally;

#[derive(Debug)]
pub(crate) struct ApiRemovals {
    /// `backend.apiRateLimit.deletions`, all callers together.
    limit: Pace,
    pace: DefaultDirectRateLimiter,
    limits: DeletionGuard,
    /// Since the catalog was last at a stable size (it follows growth, so
    /// reads that return entities make room again).
    since: Mutex<RemovalTally>,
}

impl From<Pace> for ApiRemovals {
    fn from(limit: Pace) -> Self {
        Self {
            limit,
            pace: RateLimiter::direct(super::pace::quota(limit)),
            limits: DeletionGuard::default(),
            since: Mutex::new(RemovalTally::default()),
        }
    }
}

impl ApiRemovals {
    /// Admits a request that removes `removing` of the `served` entities:
    /// 429 past the pace, 409 when removals through the API since the
    /// catalog's last stable size would pass the deletion threshold.
    pub(crate) fn admit(&self, req: &Req, served: usize, removing: usize) -> Result<(), ApiError> {
        if self.pace.check().is_err() {
            return Err(req.error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsError",
                format!(
                    "removals through the API are paced ({}; backend.apiRateLimit.deletions); try again shortly",
                    self.limit
                ),
            ));
        }
        let mut since = self.since.lock();
        since.follow(served);
        let would_remove = since.removed + removing;
        if self.limits.holds(since.size, would_remove) {
            return Err(req.error(
                StatusCode::CONFLICT,
                "ConflictError",
                format!(
                    "held: removals through the API would take {would_remove} of {} entities, more than the deletion threshold of {:.0} %; the entities stay. They make room again as repositories are read",
                    since.size,
                    self.limits.threshold * 100.0
                ),
            ));
        }
        since.removed = would_remove;
        Ok(())
    }
}
