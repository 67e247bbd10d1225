//! Reads of single repositories outside runs: what a webhook reports (a
//! push, a move, a deletion) and per-entity refreshes. Work for one
//! repository that arrives close together becomes one read; reads take the
//! integration's pace and the provider's filters, budgets and processing,
//! exactly as a run's do.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde::Serialize;

use super::runner::SourceRunner;
use crate::bitbucket::RequestStats;
use crate::bitbucket::webhooks::{BranchMove, EventRepository};
use crate::discovery::{
    CatalogFile, Held, Problem, ProblemKind, Progress, RepositoryRecord, RunContext, RunSink,
    UnitUpdate, now_rfc3339,
};
use crate::metrics;
use crate::store::{RepositoryKey, StoreError};
use plan::{Plan, ReadPlan};

mod plan;

/// How long work waits for more about the same repository.
const COALESCE: Duration = Duration::from_millis(100);
/// Repositories waiting per provider; beyond, new ones are dropped (the
/// scheduled listing still reads them), so a flood cannot exhaust memory.
const MAX_PENDING: usize = 10_000;
/// Branches one push may name before it counts as "anything may have
/// moved" (a mirror push names thousands of refs).
const MAX_BRANCH_MOVES: usize = 1000;

/// What an event or a refresh asks of one provider for one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Work {
    /// Branches moved: read if the provider's branch is among them.
    Pushed(Vec<BranchMove>),
    /// Read now, whatever moved.
    Refresh,
    /// Renamed or moved; `old` says where it was, when the event tells.
    Moved(Option<EventRepository>),
    Deleted,
}

impl Work {
    /// A push of `branches` (then `more`), the latest head per branch; past
    /// [`MAX_BRANCH_MOVES`] branches, a read whatever moved.
    pub(crate) fn pushed(branches: Vec<BranchMove>, more: Vec<BranchMove>) -> Work {
        let mut by_branch: HashMap<String, BranchMove> = HashMap::new();
        for moved in branches.into_iter().chain(more) {
            by_branch.insert(moved.branch.clone(), moved);
        }
        if by_branch.len() > MAX_BRANCH_MOVES {
            return Work::Refresh;
        }
        let mut branches: Vec<BranchMove> = by_branch.into_values().collect();
        branches.sort_by(|a, b| a.branch.cmp(&b.branch));
        Work::Pushed(branches)
    }

    fn name(&self) -> &'static str {
        match self {
            Work::Pushed(_) => "push",
            Work::Refresh => "refresh",
            Work::Moved(_) => "moved",
            Work::Deleted => "deleted",
        }
    }

    /// `self` followed by `later`, as one piece of work.
    fn then(self, later: Work) -> Work {
        match (self, later) {
            (_, Work::Deleted) => Work::Deleted,
            (Work::Moved(old), Work::Moved(newer)) => Work::Moved(old.or(newer)),
            (_, Work::Moved(old)) => Work::Moved(old),
            // A move or refresh reads the repository anyway.
            (Work::Moved(old), _) => Work::Moved(old),
            (Work::Refresh, _) | (_, Work::Refresh) => Work::Refresh,
            (Work::Pushed(branches), Work::Pushed(more)) => Work::pushed(branches, more),
            (Work::Deleted, later) => later,
        }
    }
}

/// One repository's pending work.
#[derive(Debug, Clone)]
pub(crate) struct WorkItem {
    pub repository: EventRepository,
    pub work: Work,
    /// When the first coalesced event arrived.
    pub received: Instant,
    /// The integration's host it came through (`refresh` for a refresh),
    /// for metrics.
    pub origin: String,
}

impl WorkItem {
    fn key(&self) -> String {
        match &self.repository.id {
            Some(id) => format!("id:{id}"),
            None => format!(
                "{}/{}/{}",
                self.repository.workspace.as_deref().unwrap_or_default(),
                self.repository.project.as_deref().unwrap_or_default(),
                self.repository.slug
            )
            .to_lowercase(),
        }
    }
}

/// The last event or refresh a provider handled, for its status.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LastEvent {
    pub received_at: String,
    /// `push`, `moved`, `deleted` or `refresh`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `PROJECT/slug` (Cloud: the project, else the workspace, then the slug).
    pub repository: String,
    /// `applied`, `ignored: <why>`, `held: <why>` or `failed: <why>`.
    pub outcome: String,
}

/// Units event reads applied while a run was in progress (`None`: no run).
pub(super) type FreshUnits = Arc<Mutex<Option<HashSet<String>>>>;

/// Pending work of one provider, and whether a worker is draining it.
#[derive(Debug, Default)]
pub(super) struct Pending {
    state: Mutex<PendingState>,
    last: Mutex<Option<LastEvent>>,
    /// The run in progress neither applies its (older) reads of these nor
    /// removes them for missing from its (older) listing.
    fresh: FreshUnits,
    /// Default branches Bitbucket told, by repository, for an hour: a
    /// listing without `defaultBranch` (older Data Center) or a payload
    /// without `mainbranch` (Cloud) does not cost a request per push.
    default_branches: Mutex<HashMap<String, (String, Instant)>>,
}

/// How long a default branch Bitbucket told is trusted.
const BRANCH_TTL: Duration = Duration::from_secs(3600);
/// Default branches remembered per provider.
const MAX_BRANCHES: usize = 10_000;

#[derive(Debug, Default)]
struct PendingState {
    items: HashMap<String, WorkItem>,
    draining: bool,
}

impl Pending {
    pub(super) fn last_event(&self) -> Option<LastEvent> {
        self.last.lock().clone()
    }

    /// A run starts: from now on, event reads are remembered for it.
    pub(super) fn run_started(&self) {
        *self.fresh.lock() = Some(Default::default());
    }

    pub(super) fn run_ended(&self) {
        *self.fresh.lock() = None;
    }

    /// The units the run in progress must leave to event reads.
    pub(super) fn fresh(&self) -> FreshUnits {
        Arc::clone(&self.fresh)
    }

    /// Marks `units` before their event read is applied, so a run's batch
    /// applied later (checked under the applier's lock) cannot undo it.
    fn applying(&self, units: impl Iterator<Item = String>) {
        if let Some(fresh) = self.fresh.lock().as_mut() {
            fresh.extend(units);
        }
    }

    fn cached_branch(&self, key: &str) -> Option<String> {
        let cache = self.default_branches.lock();
        cache
            .get(key)
            .filter(|(_, at)| at.elapsed() < BRANCH_TTL)
            .map(|(branch, _)| branch.clone())
    }

    fn cache_branch(&self, key: String, branch: String) {
        let mut cache = self.default_branches.lock();
        if cache.len() >= MAX_BRANCHES {
            cache.clear();
        }
        cache.insert(key, (branch, Instant::now()));
    }

    fn finished(&self, item: &WorkItem, outcome: &Outcome) {
        let repository = item
            .repository
            .project
            .as_deref()
            .or(item.repository.workspace.as_deref())
            .map_or_else(
                || item.repository.slug.clone(),
                |p| format!("{p}/{}", item.repository.slug),
            );
        *self.last.lock() = Some(LastEvent {
            received_at: now_rfc3339(),
            kind: item.work.name(),
            repository,
            outcome: outcome.to_string(),
        });
    }
}

/// What became of one work item.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Applied,
    Ignored(String),
    Held(String),
    Failed(String),
}

impl Outcome {
    /// The metric label; the status shows it with the reason.
    fn label(&self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Ignored(_) => "ignored",
            Outcome::Held(_) => "held",
            Outcome::Failed(_) => "failed",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Applied => f.write_str(self.label()),
            Outcome::Ignored(why) | Outcome::Held(why) | Outcome::Failed(why) => {
                write!(f, "{}: {why}", self.label())
            }
        }
    }
}

/// Why a refresh, an entity's removal or an event cannot be planned now.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RefreshError {
    #[error("the repository records cannot be read: {0}")]
    Records(#[source] StoreError),
    #[error(
        "{} repositories already wait to be read; try again shortly",
        MAX_PENDING
    )]
    Full,
}

impl SourceRunner {
    /// Stops serving the entity `key` of `unit` (`DELETE
    /// /entities/by-uid`); the unit's other entities stay. Like an orphan
    /// deleted in Backstage, it comes back when the unit is next read: its
    /// change token is dropped so that read applies even if the file did
    /// not change.
    pub(crate) async fn remove_entity(
        self: &Arc<Self>,
        unit: &str,
        key: &crate::catalog::EntityKey,
    ) -> Result<Vec<Problem>, RefreshError> {
        let record = self
            .record(RepositoryKey::Unit(unit))
            .await?
            .map(|record| RepositoryRecord {
                change_token: None,
                ..record
            });
        let rest = self
            .catalog()
            .unit_entities(self.id(), unit)
            .into_iter()
            .filter(|e| e.key() != *key)
            .collect();
        let update = UnitUpdate {
            unit: unit.to_owned(),
            record,
            entities: Some(rest),
        };
        Ok(self.applier().apply(self.id(), vec![update]).await)
    }

    /// Re-reads the unit `unit` (a per-entity refresh): a provider's
    /// repository alone, through the same path as a push; a location's one
    /// file and its targets. `Err` says why it cannot be scheduled now.
    pub(crate) async fn refresh_unit(self: &Arc<Self>, unit: &str) -> Result<(), RefreshError> {
        if self.source().repository_reads().is_none() {
            self.refresh(false);
            return Ok(());
        }
        let Some(record) = self.record(RepositoryKey::Unit(unit)).await? else {
            tracing::warn!(
                provider = self.id(),
                unit,
                "no repository record for a refreshed entity; refreshing the provider"
            );
            self.refresh(false);
            return Ok(());
        };
        let queued = self.enqueue(WorkItem {
            repository: EventRepository {
                project: Some(record.project),
                workspace: None,
                slug: record.slug,
                id: record.id,
                web_url: Some(record.url),
                archived: false,
                main_branch: record.branch,
            },
            work: Work::Refresh,
            received: Instant::now(),
            origin: "refresh".into(),
        });
        if queued {
            Ok(())
        } else {
            Err(RefreshError::Full)
        }
    }

    /// Queues `item`; it is read shortly, together with whatever else
    /// arrives for the same repository meanwhile. `false`: too much is
    /// already waiting, and it was dropped.
    pub(crate) fn enqueue(self: &Arc<Self>, item: WorkItem) -> bool {
        let pending = self.pending();
        let start = {
            let mut state = pending.state.lock();
            let key = item.key();
            if state.items.len() >= MAX_PENDING && !state.items.contains_key(&key) {
                drop(state);
                tracing::warn!(
                    provider = self.id(),
                    repository = item.repository.slug,
                    "{MAX_PENDING} repositories already wait to be read; event dropped (the next scheduled run reads it)"
                );
                metrics::record_event_outcome(&item.origin, item.work.name(), "dropped");
                return false;
            }
            let merged = match state.items.remove(&key) {
                Some(earlier) => WorkItem {
                    work: earlier.work.then(item.work),
                    received: earlier.received.min(item.received),
                    ..item
                },
                None => item,
            };
            state.items.insert(key, merged);
            !std::mem::replace(&mut state.draining, true)
        };
        if start {
            let runner = Arc::clone(self);
            self.tracker().spawn(async move { runner.drain().await });
        }
        true
    }

    async fn drain(self: Arc<Self>) {
        let stop = self.shutdown_token();
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => {
                    self.pending().state.lock().draining = false;
                    return;
                }
                () = tokio::time::sleep(COALESCE) => {}
            }
            let batch: Vec<WorkItem> = {
                let mut state = self.pending().state.lock();
                if state.items.is_empty() {
                    state.draining = false;
                    return;
                }
                state.items.drain().map(|(_, item)| item).collect()
            };
            self.process(batch).await;
        }
    }

    /// Resolves each item against the records, reads what must be read
    /// (concurrently, under the integration's pace) and applies it all.
    async fn process(&self, batch: Vec<WorkItem>) {
        let Some(reads) = self.source().repository_reads() else {
            return;
        };
        let stop = self.shutdown_token();
        let stats = Arc::new(RequestStats::default());
        let mut listed = Vec::new();
        let mut known = HashMap::new();
        let mut replacing = HashMap::new();
        let mut reading = Vec::new();
        for item in batch {
            if stop.is_cancelled() {
                return;
            }
            let plan = match self.resolve(reads, &stats, &item).await {
                Ok(plan) => plan,
                Err(why) => Plan::Done(Outcome::Failed(why.to_string())),
            };
            match plan {
                Plan::Read(plan) => {
                    let ReadPlan {
                        listed: one,
                        known: record,
                        replaces,
                    } = *plan;
                    let unit = one.record.catalog_url.clone();
                    if let Some(old) = replaces.filter(|old| *old != unit) {
                        replacing.insert(unit.clone(), old);
                    }
                    if let Some(record) = record {
                        known.insert(unit.clone(), record);
                    }
                    listed.push(one);
                    reading.push((item, unit));
                }
                Plan::Remove { unit } => self.remove_unit(&item, unit).await,
                Plan::Done(outcome) => self.finish_item(&item, &outcome, false),
            }
        }
        if listed.is_empty() {
            return;
        }
        let sink = EventSink {
            runner: self,
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
        let report = reads.read_now(&ctx, listed).await;
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
            provider = self.id(),
            read = report.repos_read,
            requests = report.requests,
            "read repositories named by events"
        );
    }

    /// Drops a deleted (or moved-away) repository's entities, guarded.
    async fn remove_unit(&self, item: &WorkItem, unit: String) {
        let removed = self
            .catalog()
            .units_len(self.id(), std::slice::from_ref(&unit));
        let current = self.catalog().source_len(self.id());
        if let Err(held) = self.guard_check(current, removed) {
            self.finish_item(item, &Outcome::Held(held.message), false);
            return;
        }
        self.pending().applying(std::iter::once(unit.clone()));
        let problems = self.applier().remove_units(self.id(), vec![unit]).await;
        let outcome = match problems.into_iter().next() {
            Some(problem) => Outcome::Failed(problem.message),
            None => Outcome::Applied,
        };
        self.finish_item(item, &outcome, false);
    }

    async fn record(
        &self,
        key: RepositoryKey<'_>,
    ) -> Result<Option<RepositoryRecord>, RefreshError> {
        self.store()
            .repository(self.id(), key)
            .await
            .map_err(RefreshError::Records)
    }

    fn finish_item(&self, item: &WorkItem, outcome: &Outcome, served: bool) {
        match outcome {
            Outcome::Applied => tracing::info!(
                provider = self.id(),
                repository = item.repository.slug,
                work = item.work.name(),
                "applied"
            ),
            other => {
                tracing::debug!(provider = self.id(), repository = item.repository.slug, work = item.work.name(), outcome = %other, "not applied")
            }
        }
        metrics::record_event_outcome(&item.origin, item.work.name(), outcome.label());
        if served {
            metrics::record_push_served(self.id(), item.received.elapsed());
        }
        self.pending().finished(item, outcome);
    }
}

/// Applies event reads. A moved repository's old place is dropped in the
/// same batch as a read of its new place that did not fail, so uids stay
/// and nothing is lost when Bitbucket is down.
struct EventSink<'a> {
    runner: &'a SourceRunner,
    /// New unit → the unit the repository's entities were under.
    replacing: HashMap<String, String>,
}

impl RunSink for EventSink<'_> {
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
        updates.extend(forgotten.iter().map(|old| UnitUpdate::removal(old)));
        self.runner
            .pending()
            .applying(updates.iter().map(|u| u.unit.clone()));
        Box::pin(
            self.runner
                .applier()
                .apply_forgetting(self.runner.id(), updates, forgotten),
        )
    }

    fn reconcile(&self, _listed: HashSet<String>) -> BoxFuture<'_, Result<(), Held>> {
        // Event reads never list, so they never remove by listing.
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(branch: &str, to: &str) -> BranchMove {
        BranchMove {
            branch: branch.into(),
            to: Some(to.into()),
        }
    }

    #[test]
    fn pushes_coalesce_into_the_latest_head_per_branch() {
        let work = Work::Pushed(vec![moved("main", "a"), moved("dev", "b")])
            .then(Work::Pushed(vec![moved("main", "c")]));
        assert_eq!(
            work,
            Work::Pushed(vec![moved("dev", "b"), moved("main", "c")])
        );
        let many: Vec<BranchMove> = (0..=MAX_BRANCH_MOVES)
            .map(|i| moved(&format!("b{i}"), "x"))
            .collect();
        assert_eq!(Work::pushed(many, Vec::new()), Work::Refresh);
    }

    #[test]
    fn moves_refreshes_and_deletions_win_over_pushes() {
        let push = || Work::Pushed(vec![moved("main", "a")]);
        assert_eq!(push().then(Work::Refresh), Work::Refresh);
        assert_eq!(Work::Refresh.then(push()), Work::Refresh);
        assert_eq!(push().then(Work::Moved(None)), Work::Moved(None));
        assert_eq!(Work::Moved(None).then(push()), Work::Moved(None));
        assert_eq!(push().then(Work::Deleted), Work::Deleted);
        assert_eq!(Work::Deleted.then(push()), push());
    }
}
