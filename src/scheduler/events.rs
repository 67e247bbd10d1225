//! Reads of single repositories outside runs: what a webhook reports (a
//! push, a move, a deletion) and per-entity refreshes. Work for one
//! repository that arrives close together becomes one read; reads take the
//! integration's pace and the provider's filters, budgets and processing,
//! exactly as a run's do.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::apply::Applier;
use super::guard::ShrinkGuard;
use super::queue::{
    FreshUnits, LastEvent, MAX_PENDING, Outcome, Pending, QueueFull, Work, WorkItem, mark_fresh,
};
use super::resolve::{BranchCache, Plan, ReadPlan, Resolver};
use crate::bitbucket::RequestStats;
use crate::catalog::Catalog;
use crate::discovery::plan::Listed;
use crate::discovery::provider::RepositoryReads;
use crate::discovery::{
    CatalogFile, Held, Problem, ProblemKind, Progress, RepositoryRecord, RunContext, RunSink,
    UnitUpdate,
};
use crate::metrics;
use crate::store::CatalogStore;

/// How long work waits for more about the same repository.
const COALESCE: Duration = Duration::from_millis(100);

/// One provider's event queue and the reads it makes.
#[derive(Debug)]
pub(super) struct EventReads {
    /// The provider's id.
    pub(super) source: String,
    pub(super) reads: Arc<dyn RepositoryReads>,
    pub(super) catalog: Arc<Catalog>,
    pub(super) store: Arc<dyn CatalogStore>,
    pub(super) applier: Arc<Applier>,
    pub(super) guard: Arc<ShrinkGuard>,
    /// Shared with the provider's runs.
    pub(super) fresh: FreshUnits,
    pub(super) shutdown: CancellationToken,
    pub(super) pending: Mutex<Pending>,
    pub(super) branches: BranchCache,
    pub(super) last: Mutex<Option<LastEvent>>,
}

impl EventReads {
    /// The last event or refresh handled.
    pub(super) fn last_event(&self) -> Option<LastEvent> {
        self.last.lock().clone()
    }

    /// Queues `item`; it is read shortly, together with whatever else
    /// arrives for the same repository meanwhile. `false`: too much is
    /// already waiting, and it was dropped.
    pub(super) fn enqueue(self: &Arc<Self>, item: WorkItem) -> bool {
        let pushed = self.pending.lock().push(item);
        match pushed {
            Ok(start) => {
                if start {
                    let this = Arc::clone(self);
                    self.applier
                        .tracker()
                        .spawn(async move { this.drain().await });
                }
                true
            }
            Err(QueueFull(item)) => {
                tracing::warn!(
                    provider = self.source,
                    repository = item.repository.slug,
                    "{MAX_PENDING} repositories already wait to be read; event dropped (the next scheduled run reads it)"
                );
                metrics::record_event_outcome(&item.origin, item.work.name(), "dropped");
                false
            }
        }
    }

    async fn drain(self: Arc<Self>) {
        loop {
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => {
                    self.pending.lock().stop();
                    return;
                }
                () = tokio::time::sleep(COALESCE) => {}
            }
            let Some(batch) = self.pending.lock().take() else {
                return;
            };
            let span = crate::telemetry::joined(
                crate::telemetry::Joined::EventReads,
                batch.iter().map(|i| &i.span),
            );
            tracing::Instrument::instrument(self.process(batch), span).await;
        }
    }

    /// Resolves each item against the records, reads what must be read
    /// (concurrently, under the integration's pace) and applies it all.
    async fn process(&self, batch: Vec<WorkItem>) {
        let stop = self.shutdown.clone();
        let stats = Arc::new(RequestStats::default());
        let resolver = Resolver {
            source: &self.source,
            store: self.store.as_ref(),
            reads: self.reads.as_ref(),
            stats: &stats,
            branches: &self.branches,
        };
        let mut reads = BatchReads::default();
        for item in batch {
            if stop.is_cancelled() {
                return;
            }
            if self.handle_pull_request(&item, &resolver).await {
                continue;
            }
            let plan = match resolver.resolve(&item).await {
                Ok(plan) => plan,
                Err(why) => Plan::Done(Outcome::Failed(why.to_string())),
            };
            match plan {
                Plan::Read(plan) => reads.add(item, *plan),
                Plan::Remove { unit } => self.remove_unit(&item, unit).await,
                Plan::Done(outcome) => self.finish_item(&item, &outcome, false),
            }
        }
        if !reads.listed.is_empty() {
            self.read_and_apply(reads, stats, stop).await;
        }
    }

    /// Handles a pull request's work (a check, or dropping the preview of
    /// a closed one); `false` for other work.
    async fn handle_pull_request(&self, item: &WorkItem, resolver: &Resolver<'_>) -> bool {
        match &item.work {
            Work::PullRequest(pr) => self.check_pull_request(item, pr, resolver).await,
            Work::PullRequestClosed(id) => {
                let key = crate::checks::closed_key(&self.source, &item.repository, *id);
                let dropped = self.applier.previews().remove(&key);
                let outcome = if dropped {
                    Outcome::Applied
                } else {
                    Outcome::Ignored("no preview was kept for it".into())
                };
                self.finish_item(item, &outcome, false);
            }
            _ => return false,
        }
        true
    }

    /// Reads the batch's repositories, applies them and finishes each item
    /// with its read's outcome.
    async fn read_and_apply(
        &self,
        reads: BatchReads,
        stats: Arc<RequestStats>,
        stop: CancellationToken,
    ) {
        let BatchReads {
            listed,
            known,
            replacing,
            reading,
        } = reads;
        let sink = EventSink {
            events: self,
            replacing,
        };
        let ctx = RunContext {
            stats,
            progress: Arc::new(Progress::new()),
            known,
            sink: &sink,
            // Shutdown starts no new read; reads under way finish.
            stop,
        };
        let report = self.reads.read_now(&ctx, listed).await;
        let failed: HashMap<&str, &Problem> = report
            .problems
            .iter()
            .filter(|p| p.kind == ProblemKind::Read)
            .map(|p| (p.url.as_str(), p))
            .collect();
        for (item, unit) in reading {
            let outcome = match failed.get(unit.as_str()) {
                Some(problem) => Outcome::Failed(problem.message.clone()),
                None => Outcome::Applied,
            };
            let served = outcome == Outcome::Applied && matches!(item.work, Work::Pushed(_));
            self.finish_item(&item, &outcome, served);
        }
        tracing::info!(
            provider = self.source,
            read = report.repos_read,
            requests = report.requests,
            "read repositories named by events"
        );
    }

    /// Checks a pull request and posts the result; the branch read comes
    /// from the records when they know it (no request).
    async fn check_pull_request(
        &self,
        item: &WorkItem,
        pr: &crate::bitbucket::webhooks::PullRequest,
        resolver: &Resolver<'_>,
    ) {
        let mut branch = item.repository.main_branch.clone();
        if branch.is_none()
            && let Some(id) = &item.repository.id
        {
            branch = resolver
                .record(crate::store::RepositoryKey::Id(id))
                .await
                .ok()
                .flatten()
                .and_then(|r| r.branch);
        }
        let check = crate::checks::PullRequestCheck {
            source: &self.source,
            reads: self.reads.as_ref(),
            catalog: &self.catalog,
            previews: self.applier.previews(),
            stop: self.shutdown.clone(),
        };
        let outcome = match check.run(item.repository.clone(), branch, pr).await {
            crate::checks::Checked::Posted(_) => Outcome::Applied,
            crate::checks::Checked::Ignored(why) => Outcome::Ignored(why),
            crate::checks::Checked::Failed(why) => Outcome::Failed(why),
        };
        self.finish_item(item, &outcome, false);
    }

    /// Drops a deleted (or moved-away) repository's entities, guarded.
    async fn remove_unit(&self, item: &WorkItem, unit: String) {
        let id = self.source.as_str();
        let removed = self.catalog.units_len(id, std::slice::from_ref(&unit));
        let current = self.catalog.source_len(id);
        if let Err(held) = self.guard_check(current, removed) {
            self.finish_item(item, &Outcome::Held(held.message), false);
            return;
        }
        mark_fresh(&self.fresh, std::iter::once(unit.clone()));
        // With the repository goes what was generated for it.
        let generated = crate::discovery::generated::unit(&unit);
        let problems = self.applier.remove_units(id, vec![unit, generated]).await;
        let outcome = match problems.into_iter().next() {
            Some(problem) => Outcome::Failed(problem.message),
            None => Outcome::Applied,
        };
        self.finish_item(item, &outcome, false);
    }

    /// The deletion guard, for a removal outside a run.
    fn guard_check(&self, current: usize, removed: usize) -> Result<(), Held> {
        self.guard.check(&self.source, current, removed, false)
    }

    fn finish_item(&self, item: &WorkItem, outcome: &Outcome, served: bool) {
        let id = self.source.as_str();
        match outcome {
            Outcome::Applied => tracing::info!(
                provider = id,
                repository = item.repository.slug,
                work = item.work.name(),
                "applied"
            ),
            other => {
                tracing::debug!(provider = id, repository = item.repository.slug, work = item.work.name(), outcome = %other, "not applied")
            }
        }
        metrics::record_event_outcome(&item.origin, item.work.name(), outcome.label());
        if served {
            metrics::record_push_served(id, item.received.elapsed());
        }
        *self.last.lock() = Some(LastEvent::of(item, outcome));
    }
}

/// The reads one batch makes, gathered as its items are resolved.
#[derive(Default)]
struct BatchReads {
    listed: Vec<Listed>,
    known: HashMap<String, RepositoryRecord>,
    /// New unit → the unit the repository's entities were under.
    replacing: HashMap<String, String>,
    /// Each item read, with its unit.
    reading: Vec<(WorkItem, String)>,
}

impl BatchReads {
    fn add(&mut self, item: WorkItem, plan: ReadPlan) {
        let ReadPlan {
            listed,
            known,
            replaces,
        } = plan;
        let unit = listed.record.catalog_url.clone();
        if let Some(old) = replaces.filter(|old| *old != unit) {
            self.replacing.insert(unit.clone(), old);
        }
        if let Some(record) = known {
            self.known.insert(unit.clone(), record);
        }
        self.listed.push(listed);
        self.reading.push((item, unit));
    }
}

/// Applies event reads. A moved repository's old place is dropped in the
/// same batch as a read of its new place that did not fail, so uids stay
/// and nothing is lost when Bitbucket is down.
struct EventSink<'a> {
    events: &'a EventReads,
    /// New unit → the unit the repository's entities were under.
    replacing: HashMap<String, String>,
}

impl RunSink for EventSink<'_> {
    fn unit_entities(&self, unit: &str) -> Option<Vec<crate::catalog::ProcessedEntity>> {
        Some(self.events.catalog.unit_entities(&self.events.source, unit))
    }

    fn apply(&self, mut updates: Vec<UnitUpdate>) -> BoxFuture<'_, Vec<Problem>> {
        let forgotten: Vec<String> = updates
            .iter()
            .filter(|u| {
                u.record
                    .as_ref()
                    .is_some_and(|r| r.catalog != CatalogFile::Unreadable)
            })
            .filter_map(|u| self.replacing.get(&u.unit).cloned())
            .collect();
        updates.extend(forgotten.iter().flat_map(|old| {
            [
                UnitUpdate::removal(old),
                UnitUpdate::removal(&crate::discovery::generated::unit(old)),
            ]
        }));
        mark_fresh(&self.events.fresh, updates.iter().map(|u| u.unit.clone()));
        Box::pin(
            self.events
                .applier
                .apply_forgetting(&self.events.source, updates, forgotten),
        )
    }

    fn reconcile(&self, _listed: HashSet<String>) -> BoxFuture<'_, Result<(), Held>> {
        // Event reads never list, so they never remove by listing.
        Box::pin(async { Ok(()) })
    }
}
