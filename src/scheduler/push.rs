//! Reads of single repositories outside runs: what a webhook reports (a
//! push, a move, a deletion) and per-entity refreshes. Work for one
//! repository that arrives close together becomes one read; reads take the
//! integration's pace and the provider's filters, budgets and processing,
//! exactly as a run's do.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde::Serialize;

use super::runner::SourceRunner;
use crate::bitbucket::RequestStats;
use crate::bitbucket::webhooks::{BranchMove, EventRepository};
use crate::discovery::plan::Listed;
use crate::discovery::provider::RepositoryReads;
use crate::discovery::{
    Held, Problem, ProblemKind, Progress, RepositoryRecord, RunContext, RunSink, UnitUpdate,
    now_rfc3339,
};
use crate::metrics;
use crate::store::RepositoryKey;

/// How long work waits for more about the same repository.
const COALESCE: Duration = Duration::from_millis(100);
/// Repositories waiting per provider; beyond, new ones are dropped (the
/// scheduled listing still reads them), so a flood cannot exhaust memory.
const MAX_PENDING: usize = 10_000;

/// What an event or a refresh asks of one provider for one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Branches moved: read if the provider's branch is among them.
    Pushed(Vec<BranchMove>),
    /// Read now, whatever moved.
    Refresh,
    /// Renamed or moved; `old` says where it was, when the event tells.
    Moved(Option<EventRepository>),
    Deleted,
}

impl Work {
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
            (Work::Pushed(mut branches), Work::Pushed(more)) => {
                for moved in more {
                    branches.retain(|b| b.branch != moved.branch);
                    branches.push(moved);
                }
                Work::Pushed(branches)
            }
            (Work::Deleted, later) => later,
        }
    }
}

/// One repository's pending work.
#[derive(Debug, Clone)]
pub struct WorkItem {
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
pub struct LastEvent {
    pub received_at: String,
    /// `push`, `moved`, `deleted` or `refresh`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `PROJECT/slug` (Cloud: `project/slug`).
    pub repository: String,
    /// `applied`, `ignored: <why>`, `held: <why>` or `failed: <why>`.
    pub outcome: String,
}

/// Pending work of one provider, and whether a worker is draining it.
#[derive(Debug, Default)]
pub struct Pending {
    state: Mutex<PendingState>,
    last: Mutex<Option<LastEvent>>,
    /// Units an event read applied while a run was in progress: the run's
    /// own (older) reads of them are not applied over it.
    fresh: Mutex<Option<std::collections::HashSet<String>>>,
}

#[derive(Debug, Default)]
struct PendingState {
    items: HashMap<String, WorkItem>,
    draining: bool,
}

impl Pending {
    pub fn last_event(&self) -> Option<LastEvent> {
        self.last.lock().clone()
    }

    /// A run starts: from now on, event reads are remembered for it.
    pub fn run_started(&self) {
        *self.fresh.lock() = Some(Default::default());
    }

    pub fn run_ended(&self) {
        *self.fresh.lock() = None;
    }

    /// Whether an event read newer than the run's applied `unit`.
    pub fn is_fresher(&self, unit: &str) -> bool {
        self.fresh.lock().as_ref().is_some_and(|f| f.contains(unit))
    }

    fn applied(&self, units: impl Iterator<Item = String>) {
        if let Some(fresh) = self.fresh.lock().as_mut() {
            fresh.extend(units);
        }
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
            Outcome::Applied => f.write_str("applied"),
            Outcome::Ignored(why) => write!(f, "ignored: {why}"),
            Outcome::Held(why) => write!(f, "held: {why}"),
            Outcome::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// A read to make.
struct ReadPlan {
    listed: Listed,
    known: Option<RepositoryRecord>,
    /// A move: the unit it was under, dropped in the same batch.
    replaces: Option<String>,
}

/// What one work item comes to once resolved against the records.
enum Plan {
    Read(Box<ReadPlan>),
    Remove { unit: String },
    Done(Outcome),
}

impl SourceRunner {
    /// Re-reads the unit `unit` (a per-entity refresh): a provider's
    /// repository alone, through the same path as a push; a location's one
    /// file and its targets.
    pub async fn refresh_unit(self: &Arc<Self>, unit: &str) {
        if self.source().repository_reads().is_none() {
            self.refresh(false);
            return;
        }
        let Some(record) = self.record(RepositoryKey::Unit(unit)).await else {
            tracing::warn!(
                provider = self.id(),
                unit,
                "no repository record for a refreshed entity; refreshing the provider"
            );
            self.refresh(false);
            return;
        };
        let _queued = self.enqueue(WorkItem {
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
    }

    /// Queues `item`; it is read shortly, together with whatever else
    /// arrives for the same repository meanwhile. `false`: too much is
    /// already waiting, and it was dropped.
    pub fn enqueue(self: &Arc<Self>, item: WorkItem) -> bool {
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
                () = tokio::time::sleep(COALESCE) => {}
                () = stop.cancelled() => {
                    self.pending().state.lock().draining = false;
                    return;
                }
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
        let stats = Arc::new(RequestStats::default());
        let mut listed = Vec::new();
        let mut known = HashMap::new();
        let mut removals = Vec::new();
        let mut forgotten = Vec::new();
        let mut reading = Vec::new();
        for item in batch {
            match self.resolve(reads, &stats, &item).await {
                Plan::Read(plan) => {
                    let ReadPlan {
                        listed: one,
                        known: record,
                        replaces,
                    } = *plan;
                    let unit = one.record.catalog_url.clone();
                    if let Some(old) = replaces.filter(|old| *old != unit) {
                        removals.push(remove(&old));
                        forgotten.push(old);
                    }
                    if let Some(record) = record {
                        known.insert(unit.clone(), record);
                    }
                    listed.push(one);
                    reading.push((item, unit));
                }
                Plan::Remove { unit } => {
                    let removed = self
                        .catalog()
                        .units_len(self.id(), std::slice::from_ref(&unit));
                    let current = self.catalog().source_len(self.id());
                    match self.guard_check(current, removed) {
                        Ok(()) => {
                            removals.push(remove(&unit));
                            forgotten.push(unit);
                            self.finish_item(&item, &Outcome::Applied, false);
                        }
                        Err(held) => {
                            metrics::record_held(self.id());
                            self.finish_item(&item, &Outcome::Held(held.message), false);
                        }
                    }
                }
                Plan::Done(outcome) => self.finish_item(&item, &outcome, false),
            }
        }
        if listed.is_empty() && removals.is_empty() {
            return;
        }
        let sink = EventSink {
            runner: self,
            first: Mutex::new(Some((removals, forgotten))),
        };
        let ctx = RunContext {
            stats,
            progress: Arc::new(Progress::new()),
            known,
            sink: &sink,
            // Shutdown starts no new read; reads under way finish.
            stop: self.shutdown_token(),
        };
        if listed.is_empty() {
            sink.apply(Vec::new()).await;
            return;
        }
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

    async fn resolve(
        &self,
        reads: &dyn RepositoryReads,
        stats: &Arc<RequestStats>,
        item: &WorkItem,
    ) -> Plan {
        let mut repository = item.repository.clone();
        if let Some(host) = repository.host() {
            if !host.eq_ignore_ascii_case(reads.host()) {
                return Plan::Done(Outcome::Ignored(format!(
                    "it is on {host}, not {}",
                    reads.host()
                )));
            }
        }
        let old = match &item.work {
            Work::Deleted => {
                return match self.record_of(reads, stats, &repository).await {
                    Ok(Some(record)) => Plan::Remove {
                        unit: record.catalog_url,
                    },
                    Ok(None) => Plan::Done(Outcome::Ignored("no entities come from it".into())),
                    Err(err) => Plan::Done(Outcome::Failed(err)),
                };
            }
            Work::Moved(old) => {
                let by_id = self.record_of(reads, stats, &repository).await;
                match (by_id, old) {
                    (Ok(Some(record)), _) => Some(record),
                    (_, Some(old)) => self.record_of(reads, stats, old).await.ok().flatten(),
                    _ => None,
                }
            }
            Work::Pushed(_) | Work::Refresh => None,
        };
        // Where the file is now, and what is known of it.
        let first = match reads.listed_one(stats, &repository, None) {
            Ok(listed) => Some(listed),
            // Cloud names the file by branch: learn it below.
            Err(_) if repository.main_branch.is_none() => None,
            Err(why) => return self.left_out(old, why),
        };
        let known = match &first {
            Some(listed) => {
                self.record(RepositoryKey::Unit(&listed.record.catalog_url))
                    .await
            }
            None => None,
        };
        let branch = reads
            .pinned_branch()
            .map(str::to_owned)
            .or_else(|| known.as_ref().and_then(|k| k.branch.clone()))
            .or_else(|| repository.main_branch.clone());
        // A push must be matched against the branch read, and Cloud names
        // files by branch; otherwise the default branch is read unnamed.
        let needs_branch = matches!(item.work, Work::Pushed(_)) || first.is_none();
        let branch = match branch {
            Some(branch) => branch,
            None if !needs_branch => String::new(),
            None => match reads.default_branch(stats, &repository).await {
                Ok(Some(branch)) => branch,
                Ok(None) => {
                    return self.left_out(old, "it has no default branch (empty)".into());
                }
                Err(err) => return Plan::Done(Outcome::Failed(err.to_string())),
            },
        };
        let at = match &item.work {
            Work::Pushed(branches) => match branches.iter().find(|b| b.branch == branch) {
                Some(moved) => moved.to.clone(),
                None => {
                    let pushed: Vec<&str> = branches.iter().map(|b| b.branch.as_str()).collect();
                    return Plan::Done(Outcome::Ignored(format!(
                        "pushed to {}, the provider reads {branch}",
                        if pushed.is_empty() {
                            "no branch".to_owned()
                        } else {
                            pushed.join(", ")
                        }
                    )));
                }
            },
            _ => None,
        };
        repository.main_branch = Some(branch).filter(|b| !b.is_empty());
        let listed = match reads.listed_one(stats, &repository, at.as_deref()) {
            Ok(listed) => listed,
            Err(why) => return self.left_out(old, why),
        };
        let known = match known {
            Some(known) if known.catalog_url == listed.record.catalog_url => Some(known),
            _ => {
                self.record(RepositoryKey::Unit(&listed.record.catalog_url))
                    .await
            }
        };
        Plan::Read(Box::new(ReadPlan {
            listed,
            known,
            replaces: old.map(|o| o.catalog_url),
        }))
    }

    /// The filters leave the repository out: a move out of them removes
    /// what it served (guarded); otherwise there is nothing to do.
    fn left_out(&self, old: Option<RepositoryRecord>, why: String) -> Plan {
        match old {
            Some(record) => Plan::Remove {
                unit: record.catalog_url,
            },
            None => Plan::Done(Outcome::Ignored(why)),
        }
    }

    /// The record of `repository`: by Bitbucket's id, else by where its
    /// catalog file would be.
    async fn record_of(
        &self,
        reads: &dyn RepositoryReads,
        stats: &Arc<RequestStats>,
        repository: &EventRepository,
    ) -> Result<Option<RepositoryRecord>, String> {
        if let Some(id) = &repository.id {
            if let Some(record) = self.record(RepositoryKey::Id(id)).await {
                return Ok(Some(record));
            }
        }
        match reads.listed_one(stats, repository, None) {
            Ok(listed) => Ok(self
                .record(RepositoryKey::Unit(&listed.record.catalog_url))
                .await),
            Err(_) => Ok(None),
        }
    }

    async fn record(&self, key: RepositoryKey<'_>) -> Option<RepositoryRecord> {
        match self.store().repository(self.id(), key).await {
            Ok(record) => record,
            Err(err) => {
                tracing::warn!(provider = self.id(), error = %err, "cannot read a repository record; reading it as new");
                None
            }
        }
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

fn remove(unit: &str) -> UnitUpdate {
    UnitUpdate {
        unit: unit.to_owned(),
        record: None,
        entities: Some(Vec::new()),
    }
}

/// Applies event reads, with the removals their moves imply in the first
/// batch, and remembers them against a run in progress.
struct EventSink<'a> {
    runner: &'a SourceRunner,
    first: Mutex<Option<(Vec<UnitUpdate>, Vec<String>)>>,
}

impl RunSink for EventSink<'_> {
    fn apply(&self, updates: Vec<UnitUpdate>) -> BoxFuture<'_, Vec<Problem>> {
        let (mut all, forgotten) = self.first.lock().take().unwrap_or_default();
        all.extend(updates);
        let units: Vec<String> = all.iter().map(|u| u.unit.clone()).collect();
        let applying = self
            .runner
            .applier()
            .apply_forgetting(self.runner.id(), all, forgotten);
        Box::pin(async move {
            let problems = applying.await;
            self.runner.pending().applied(units.into_iter());
            problems
        })
    }

    fn reconcile(
        &self,
        _listed: std::collections::HashSet<String>,
    ) -> BoxFuture<'_, Result<(), Held>> {
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
