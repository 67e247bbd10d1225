//! The deletion guard: a complete listing may remove at most a share of a
//! source's entities unless forced. Removals are measured against the
//! entities served now and, added up, against the source's last stable
//! size, so runs that each remove a little cannot add up past the threshold.

use parking_lot::Mutex;

use crate::config::DeletionGuard;
use crate::discovery::Held;
use crate::metrics;

#[derive(Debug)]
pub(super) struct ShrinkGuard {
    limits: DeletionGuard,
    since: Mutex<RemovalTally>,
}

/// Removals let through since a size was last stable. For a source, only
/// listing removals count: a file that now yields fewer entities is a
/// change of that repository, not a removal to guard.
#[derive(Debug, Default)]
pub(crate) struct RemovalTally {
    /// The size then: it follows growth (and forced runs); starts at what
    /// is served after a restart.
    pub size: usize,
    pub removed: usize,
}

impl RemovalTally {
    /// Starts over from `current` when it has grown back to the stable size.
    pub(crate) fn follow(&mut self, current: usize) {
        if current >= self.size {
            *self = Self {
                size: current,
                removed: 0,
            };
        }
    }
}

impl ShrinkGuard {
    pub(super) fn new(limits: DeletionGuard) -> Self {
        Self {
            limits,
            since: Mutex::new(RemovalTally::default()),
        }
    }

    /// Whether `source`, serving `current` entities, may drop `removed` of
    /// them with the repositories a listing no longer has.
    pub(super) fn check(
        &self,
        source: &str,
        current: usize,
        removed: usize,
        force: bool,
    ) -> Result<(), Held> {
        let mut since = self.since.lock();
        since.follow(current);
        let (would_remove, of) = if self.limits.holds(current, removed) {
            (removed, current)
        } else {
            (since.removed + removed, since.size)
        };
        if self.limits.holds(of, would_remove) {
            if !force {
                metrics::record_held(source);
                return Err(Held {
                    message: format!(
                        "held: would remove {would_remove} of {of} entities, more than the deletionThreshold of {:.0} %; the previous entities stay. If the removal is intended, POST /api/catalog/providers/{source}/refresh?force=true",
                        self.limits.threshold * 100.0
                    ),
                    would_remove,
                    of,
                });
            }
            tracing::warn!(
                provider = source,
                would_remove,
                of,
                "deletion guard overridden with force=true"
            );
            *since = RemovalTally {
                size: current.saturating_sub(removed),
                removed: 0,
            };
            return Ok(());
        }
        since.removed += removed;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_removals_cannot_add_up_past_the_threshold() {
        let guard = ShrinkGuard::new(DeletionGuard::default());
        assert!(guard.check("p", 20, 6, false).is_ok(), "30 % of 20");
        let held = guard.check("p", 14, 6, false).unwrap_err();
        assert_eq!(
            (held.would_remove, held.of),
            (12, 20),
            "60 % of the stable 20"
        );
        assert!(guard.check("p", 14, 6, true).is_ok(), "forced");
        assert!(guard.check("p", 8, 3, false).is_ok(), "measured from 8 on");
    }

    /// Files that yield fewer entities shrink the source without a listing
    /// removal; that must not make the next small removal look large.
    #[test]
    fn shrinking_through_reads_does_not_count_as_removals() {
        let guard = ShrinkGuard::new(DeletionGuard::default());
        assert!(guard.check("p", 1000, 0, false).is_ok());
        assert!(guard.check("p", 400, 1, false).is_ok());
        assert!(
            guard.check("p", 399, 150, false).is_ok(),
            "151 of 1000 so far"
        );
        let held = guard.check("p", 249, 360, false).unwrap_err();
        assert_eq!((held.would_remove, held.of), (360, 249));
    }

    #[test]
    fn small_sources_and_growth_are_not_held() {
        let guard = ShrinkGuard::new(DeletionGuard::default());
        assert!(guard.check("p", 9, 9, false).is_ok());
        assert!(guard.check("p", 100, 0, false).is_ok());
        assert!(guard.check("p", 100, 51, false).is_err());
    }
}
