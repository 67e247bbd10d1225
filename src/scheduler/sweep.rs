//! A provider's listing sweep (`listingSchedule`, Data Center): between
//! full runs, list only, and apply what the listing alone shows. Gone
//! repositories are removed through the deletion guard, as a run removes
//! them; moved and new ones are queued as single-repository reads on the
//! provider's event queue, so a move keeps its uids exactly as a
//! `repo:modified` webhook does. A failed or partial listing removes
//! nothing. The sweep takes the provider's run lock: it never overlaps a
//! full run (it skips its tick while one runs; a run due meanwhile waits
//! for the short sweep instead of skipping its turn).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::MutexGuard;

use super::queue::{Work, WorkItem};
use super::runner::SourceRunner;
use crate::bitbucket::RequestStats;
use crate::config::ListingSchedule;
use crate::discovery::listing_sweep::{self, Changes};
use crate::discovery::{RepoRef, RepositoryRecord};
use crate::metrics;

/// Moved and new repositories queued per sweep; the rest wait for the
/// next sweep (or the full run), so a changed `catalogPath` or a run cut
/// short cannot turn a sweep into a full run.
const MAX_SWEEP_READS: usize = 100;
/// [`WorkItem::origin`] of reads a sweep asks for (metrics label).
const SWEEP_ORIGIN: &str = "listing";
/// How often a run due during a sweep looks whether the sweep ended.
const SWEEP_POLL: Duration = Duration::from_millis(50);

/// How a sweep ended: the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
enum SweepOutcome {
    Succeeded,
    /// The listing failed or timed out: nothing removed.
    Failed,
    /// The deletion guard held the removals (moves and new still queued).
    Held,
    /// A full run was in progress, or the daemon is stopping.
    Skipped,
}

/// Holds the run lock for a sweep; gives it back before clearing the flag,
/// so a run waiting on the flag finds the lock free.
struct Sweeping<'a> {
    runner: &'a SourceRunner,
    lock: Option<MutexGuard<'a, ()>>,
}

impl Drop for Sweeping<'_> {
    fn drop(&mut self) {
        *self.runner.fresh.lock() = None;
        drop(self.lock.take());
        self.runner.sweeping.store(false, Ordering::Release);
    }
}

impl SourceRunner {
    /// The run lock for a run: at once, or after the listing sweep holding
    /// it ends; `None` while another run holds it.
    pub(super) async fn lock_after_sweep(&self) -> Option<MutexGuard<'_, ()>> {
        loop {
            if let Ok(guard) = self.running.try_lock() {
                return Some(guard);
            }
            if !self.sweeping.load(Ordering::Acquire) || self.shutdown.is_cancelled() {
                return None;
            }
            tokio::time::sleep(SWEEP_POLL).await;
        }
    }

    /// One listing sweep, unless a run is in progress.
    pub(crate) async fn sweep(&self) {
        let Some(schedule) = listing_sweep::schedule(&self.source).cloned() else {
            return;
        };
        let id = self.id();
        // Set before the lock is taken, so a run failing to take it waits;
        // a tick while a sweep is under way leaves the flag to that sweep.
        let claimed =
            self.sweeping
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire);
        if claimed.is_err() {
            metrics::record_sweep(id, SweepOutcome::Skipped.into());
            return;
        }
        let Ok(lock) = self.running.try_lock() else {
            self.sweeping.store(false, Ordering::Release);
            tracing::debug!(provider = id, "a run is in progress; listing sweep skipped");
            metrics::record_sweep(id, SweepOutcome::Skipped.into());
            return;
        };
        let _sweeping = Sweeping {
            runner: self,
            lock: Some(lock),
        };
        // Before the first full run every listed repository is "new": that
        // run reads them, not the sweep.
        if self.retired.load(Ordering::Acquire) || self.last_report().is_none() {
            return;
        }
        // Units event reads apply from now on are not removed by this listing.
        *self.fresh.lock() = Some(Default::default());
        let outcome = self.sweep_locked(&schedule).await;
        metrics::record_sweep(id, outcome.into());
    }

    async fn sweep_locked(&self, schedule: &ListingSchedule) -> SweepOutcome {
        let id = self.id();
        let started = Instant::now();
        let stats = std::sync::Arc::new(RequestStats::default());
        let listing = tokio::select! {
            // A listing sweep is background work: interactive reads go first.
            listing = crate::bitbucket::sweep(id, listing_sweep::list(&self.source, &stats, &self.listing_route)) => listing,
            () = tokio::time::sleep(schedule.timeout) => {
                tracing::warn!(provider = id, timeout_s = schedule.timeout.as_secs(), "listing sweep timed out; nothing removed (raise listingSchedule.timeout)");
                return SweepOutcome::Failed;
            }
            () = self.shutdown.cancelled() => return SweepOutcome::Skipped,
        };
        let swept = match listing {
            None => return SweepOutcome::Skipped,
            Some(Ok(swept)) => swept,
            Some(Err(err)) => {
                tracing::warn!(provider = id, requests = stats.requests(), error = %err, "listing sweep failed; nothing removed");
                return SweepOutcome::Failed;
            }
        };
        let listed = swept.listed.len();
        let records = match self.store.repositories(id).await {
            Ok(records) => records,
            Err(err) => {
                tracing::error!(provider = id, error = %err, "listing sweep cannot read the repository records; nothing changed");
                return SweepOutcome::Failed;
            }
        };
        let served = self.catalog.units(id);
        let Changes { moved, new, gone } = listing_sweep::compare(swept, &records, &served);
        let gone: Vec<String> = {
            let fresh = self.fresh.lock();
            gone.into_iter()
                .filter(|unit| fresh.as_ref().is_none_or(|f| !f.contains(unit)))
                .collect()
        };
        let mut outcome = SweepOutcome::Succeeded;
        let removed = self.catalog.units_len(id, &gone);
        if !gone.is_empty() {
            let current = self.catalog.source_len(id);
            match self.guard.check(id, current, removed, false) {
                Ok(()) => {
                    for problem in self.applier.remove_units(id, gone.clone()).await {
                        tracing::error!(provider = id, "{}", problem.message);
                    }
                }
                Err(held) => {
                    tracing::warn!(provider = id, "listing sweep: {}", held.message);
                    outcome = SweepOutcome::Held;
                }
            }
        }
        let (moves, news) = (moved.len(), new.len());
        let work = moved
            .into_iter()
            .map(|(listed, old)| (listed.record, Work::Moved(Some(repo_ref(&old)))))
            .chain(new.into_iter().map(|listed| (listed.record, Work::Refresh)));
        let mut queued = 0;
        for (record, work) in work.take(MAX_SWEEP_READS) {
            queued += usize::from(self.enqueue(WorkItem {
                repository: repo_ref(&record),
                work,
                received: Instant::now(),
                origin: SWEEP_ORIGIN.into(),
                span: tracing::Span::current(),
            }));
        }
        tracing::info!(
            provider = id,
            requests = stats.requests(),
            listed,
            gone = gone.len(),
            entities_removed = if outcome == SweepOutcome::Held {
                0
            } else {
                removed
            },
            moved = moves,
            new = news,
            queued,
            ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            outcome = <&str>::from(outcome),
            "listing sweep"
        );
        outcome
    }
}

/// A listed or recorded repository as an event would name it.
fn repo_ref(record: &RepositoryRecord) -> RepoRef {
    RepoRef {
        project: Some(record.project.clone()),
        workspace: None,
        slug: record.slug.clone(),
        id: record.id.clone(),
        web_url: Some(record.url.clone()),
        archived: false,
        main_branch: record.branch.clone(),
    }
}
