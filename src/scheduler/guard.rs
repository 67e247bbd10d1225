//! The deletion guard: a complete listing may remove at most a share of a
//! source's entities unless forced. Shrinking is measured against the
//! entities served now and against the source's last stable size, so runs
//! that each remove a little cannot add up past the threshold.

use parking_lot::Mutex;

use crate::config::DeletionGuard;
use crate::discovery::Held;
use crate::metrics;

#[derive(Debug)]
pub struct ShrinkGuard {
    limits: DeletionGuard,
    /// The last stable size: follows growth and forced runs; an allowed
    /// shrink leaves it where it was. Starts at what is served after a restart.
    baseline: Mutex<usize>,
}

impl ShrinkGuard {
    pub fn new(limits: DeletionGuard) -> Self {
        Self {
            limits,
            baseline: Mutex::new(0),
        }
    }

    /// Whether `source` may go from `current` entities to `current - removed`.
    pub fn check(
        &self,
        source: &str,
        current: usize,
        removed: usize,
        force: bool,
    ) -> Result<(), Held> {
        let mut baseline = self.baseline.lock();
        *baseline = (*baseline).max(current);
        let remaining = current.saturating_sub(removed);
        let (removed, of) = if self.limits.holds(current, removed) {
            (removed, current)
        } else {
            (baseline.saturating_sub(remaining), *baseline)
        };
        if self.limits.holds(of, removed) {
            if !force {
                metrics::record_held(source);
                return Err(Held {
                    message: format!(
                        "held: would remove {removed} of {of} entities, more than the deletionThreshold of {:.0} %; the previous entities stay. If the removal is intended, POST /api/catalog/providers/{source}/refresh?force=true",
                        self.limits.threshold * 100.0
                    ),
                    would_remove: removed,
                    of,
                });
            }
            tracing::warn!(
                provider = source,
                removed,
                of,
                "deletion guard overridden with force=true"
            );
        }
        if force || remaining >= *baseline {
            *baseline = remaining;
        }
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

    #[test]
    fn small_sources_and_growth_are_not_held() {
        let guard = ShrinkGuard::new(DeletionGuard::default());
        assert!(guard.check("p", 9, 9, false).is_ok());
        assert!(guard.check("p", 100, 0, false).is_ok());
        assert!(guard.check("p", 100, 51, false).is_err());
    }
}
