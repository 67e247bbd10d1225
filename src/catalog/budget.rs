//! What one query may take to evaluate: CPU time of the pool thread that
//! evaluates it (`backend.queryBudget.cpu`), checked as the evaluation
//! walks the catalog, so a costly predicate is stopped instead of holding
//! a core (and every caller queued behind it) for seconds. CPU time, not
//! wall-clock time: a query slowed by a busy machine is not the query's
//! fault. A wall-clock backstop (`backend.queryBudget.wallClock`) still
//! bounds how long a turn is held whatever the clock says.

use std::cell::Cell;
use std::time::{Duration, Instant};

use serde::Serialize;

/// `backend.queryBudget`: per query over the whole catalog, the CPU time
/// of the thread evaluating it, and a wall-clock backstop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryBudget {
    pub cpu: Duration,
    pub wall_clock: Duration,
}

impl Default for QueryBudget {
    fn default() -> Self {
        Self {
            // Sorted pages and facets take ~100 ms at 100,000 entities:
            // only a pathological query reaches it.
            cpu: Duration::from_secs(2),
            // A busy machine may stretch a query: half as long again as
            // its CPU budget, so a turn is not held much longer than when
            // the budget was wall-clock time (fairness under load).
            wall_clock: Duration::from_secs(3),
        }
    }
}

impl std::fmt::Display for QueryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ms of CPU time, {} ms wall-clock",
            self.cpu.as_millis(),
            self.wall_clock.as_millis()
        )
    }
}

/// How often (wall-clock) the thread's CPU clock is read: a syscall, so
/// not per entity; the overshoot past the budget is at most about this.
const CPU_PROBE_EVERY: Duration = Duration::from_millis(1);

/// A query's budget, started when its evaluation starts (not while it
/// waits for a turn), on the thread that evaluates it. Not `Sync`: CPU
/// time is the starting thread's, so the budget stays on that thread.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    limits: QueryBudget,
    /// The thread's CPU clock at the start; `None`: unlimited (tests).
    cpu_start: Option<Duration>,
    deadline: Option<Instant>,
    /// When the CPU clock was last read.
    probed: Cell<Instant>,
}

/// The evaluation went past its budget and was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OverBudget {
    #[error(
        "the query was stopped after its evaluation budget of {} ms of CPU time (backend.queryBudget.cpu): narrow the filter (fewer terms, no $hasPrefix over many values) or split it",
        limit.as_millis()
    )]
    Cpu { limit: Duration },
    #[error(
        "the query was stopped after {} ms of wall-clock time (backend.queryBudget.wallClock), before it spent its evaluation budget of {} ms of CPU time: the daemon is busy; retry shortly",
        limit.as_millis(),
        cpu.as_millis()
    )]
    WallClock { limit: Duration, cpu: Duration },
}

impl Budget {
    /// A budget of `limits`, starting now on this thread.
    pub(crate) fn starting_now(limits: QueryBudget) -> Self {
        let now = Instant::now();
        Self {
            limits,
            // Without a thread CPU clock, only the wall clock bounds it.
            cpu_start: thread_cpu_time(),
            deadline: now.checked_add(limits.wall_clock),
            probed: Cell::new(now),
        }
    }

    /// No limit (unit tests).
    #[cfg(test)]
    pub(crate) fn unlimited() -> Self {
        Self {
            limits: QueryBudget {
                cpu: Duration::MAX,
                wall_clock: Duration::MAX,
            },
            cpu_start: None,
            deadline: None,
            probed: Cell::new(Instant::now()),
        }
    }

    /// `Err` once the CPU budget or the wall-clock backstop is spent;
    /// cheap enough to call per entity (the CPU clock is read at most
    /// every [`CPU_PROBE_EVERY`]).
    pub(crate) fn check(&self) -> Result<(), OverBudget> {
        let now = Instant::now();
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            return Err(OverBudget::WallClock {
                limit: self.limits.wall_clock,
                cpu: self.limits.cpu,
            });
        }
        let Some(start) = self.cpu_start else {
            return Ok(());
        };
        if now.saturating_duration_since(self.probed.get()) < CPU_PROBE_EVERY
            && !self.limits.cpu.is_zero()
        {
            return Ok(());
        }
        self.probed.set(now);
        match thread_cpu_time() {
            Some(spent) if spent.saturating_sub(start) >= self.limits.cpu => Err(OverBudget::Cpu {
                limit: self.limits.cpu,
            }),
            _ => Ok(()),
        }
    }
}

/// The CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`), `None`
/// where the clock is not available.
fn thread_cpu_time() -> Option<Duration> {
    let mut spec = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `spec` is a valid, exclusively borrowed timespec for the call.
    let done = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut spec) };
    if done != 0 {
        return None;
    }
    let secs = u64::try_from(spec.tv_sec).ok()?;
    let nanos = u32::try_from(spec.tv_nsec).ok()?;
    Some(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(cpu_ms: u64, wall_ms: u64) -> QueryBudget {
        QueryBudget {
            cpu: Duration::from_millis(cpu_ms),
            wall_clock: Duration::from_millis(wall_ms),
        }
    }

    #[test]
    fn a_spent_budget_says_so_and_names_its_limit() {
        let spent = Budget::starting_now(limits(0, 60_000));
        let err = spent.check().unwrap_err();
        assert!(err.to_string().contains("budget of 0 ms"), "{err}");
        assert!(err.to_string().contains("backend.queryBudget.cpu"), "{err}");
        assert!(Budget::unlimited().check().is_ok());
        assert!(Budget::starting_now(limits(60_000, 60_000)).check().is_ok());
        let late = Budget::starting_now(limits(60_000, 0)).check().unwrap_err();
        assert!(late.to_string().contains("wallClock"), "{late}");
    }

    /// Waiting (a busy machine, a descheduled thread) spends no CPU time:
    /// only work on the evaluating thread counts against the budget.
    #[test]
    fn only_cpu_time_on_the_evaluating_thread_counts() {
        let budget = Budget::starting_now(limits(40, 60_000));
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(budget.check(), Ok(()), "sleeping is not CPU time");
        let started = Instant::now();
        let mut spins = 0_u64;
        let stopped = loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
            if let Err(err) = budget.check() {
                break err;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "never stopped");
        };
        assert_eq!(
            stopped,
            OverBudget::Cpu {
                limit: Duration::from_millis(40)
            }
        );
    }
}
