//! The time one query may take to evaluate: a deadline checked as the
//! evaluation walks the catalog, so a costly predicate is stopped instead
//! of holding a core (and every caller queued behind it) for seconds.

use std::time::{Duration, Instant};

/// What one query may take by default: sorted pages and facets take
/// ~100 ms at 100,000 entities, so only a pathological query reaches it.
pub(crate) const QUERY_BUDGET: Duration = Duration::from_secs(2);

/// A query's deadline, started when its evaluation starts (not while it
/// waits for a turn).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    deadline: Option<Instant>,
    limit: Duration,
}

/// The evaluation went past its budget and was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the query was stopped after its evaluation budget of {} ms: narrow the filter (fewer terms, no $hasPrefix over many values) or split it",
    limit.as_millis()
)]
pub(crate) struct OverBudget {
    pub limit: Duration,
}

impl Budget {
    /// A budget of `limit`, starting now.
    pub(crate) fn starting_now(limit: Duration) -> Self {
        Self {
            deadline: Instant::now().checked_add(limit),
            limit,
        }
    }

    /// No limit (unit tests).
    #[cfg(test)]
    pub(crate) fn unlimited() -> Self {
        Self {
            deadline: None,
            limit: Duration::MAX,
        }
    }

    /// `Err` once the deadline has passed; cheap enough to call per entity.
    pub(crate) fn check(&self) -> Result<(), OverBudget> {
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => Err(OverBudget { limit: self.limit }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_says_so_and_names_its_limit() {
        let spent = Budget::starting_now(Duration::ZERO);
        let err = spent.check().unwrap_err();
        assert!(err.to_string().contains("budget of 0 ms"), "{err}");
        assert!(Budget::unlimited().check().is_ok());
        assert!(
            Budget::starting_now(Duration::from_secs(60))
                .check()
                .is_ok()
        );
    }
}
