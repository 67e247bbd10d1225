//! The event queue's model: what an event or a refresh asks of one
//! provider for one repository, how work for the same repository merges,
//! what became of it, and the last one handled.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;

use crate::bitbucket::webhooks::{BranchMove, Event, PullRequest};
use crate::discovery::RepoRef;
use crate::rfc3339;
use crate::store::StoreError;

/// Repositories waiting per provider; beyond, new ones are dropped (the
/// scheduled listing still reads them), so a flood cannot exhaust memory.
pub(super) const MAX_PENDING: usize = 10_000;
/// Refreshes read per batch while nothing more urgent waits: a push
/// arriving meanwhile waits for at most this many reads, not for every
/// refresh queued before it.
const REFRESH_CHUNK: usize = 2;
/// [`WorkItem::origin`] of work asked for through the API (entity refresh).
pub(crate) const REFRESH_ORIGIN: &str = "refresh";
/// Branches one push may name before it counts as "anything may have
/// moved" (a mirror push names thousands of refs).
const MAX_BRANCH_MOVES: usize = 1000;

/// What an event or a refresh asks of one provider for one repository;
/// its name (metrics, the status) from [`Work::name`].
#[derive(Debug, Clone, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub(crate) enum Work {
    /// Branches moved: read if the provider's branch is among them.
    #[strum(serialize = "push")]
    Pushed(Vec<BranchMove>),
    /// Read now, whatever moved.
    Refresh,
    /// Renamed or moved; `old` says where it was, when the event tells.
    Moved(Option<RepoRef>),
    Deleted,
    /// A pull request to check (its latest state).
    #[strum(serialize = "pullrequest")]
    PullRequest(Box<PullRequest>),
    /// A pull request merged or declined: its preview goes.
    #[strum(serialize = "pullrequest_closed")]
    PullRequestClosed(u64),
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

    pub(super) fn name(&self) -> &'static str {
        self.into()
    }

    /// What `event` asks for, and of which repository (for a move, where
    /// it is now); `None` for the ping and events not acted on.
    pub(crate) fn asked_by(event: Event) -> Option<(RepoRef, Work)> {
        match event {
            Event::Pushed {
                repository,
                branches,
            } => Some((repository, Work::pushed(branches, Vec::new()))),
            Event::Moved { old, new } => Some((new, Work::Moved(old))),
            Event::Deleted { repository } => Some((repository, Work::Deleted)),
            Event::PullRequest {
                repository,
                pull_request,
            } => Some((repository, Work::PullRequest(Box::new(pull_request)))),
            Event::PullRequestClosed { repository, id } => {
                Some((repository, Work::PullRequestClosed(id)))
            }
            Event::Ping | Event::Ignored { .. } => None,
        }
    }

    /// `self` followed by `later`, as one piece of work.
    pub(super) fn then(self, later: Work) -> Work {
        match (self, later) {
            // A pull request's work is queued apart (see `WorkItem::key`):
            // its latest state is all that counts.
            (Work::PullRequest(_) | Work::PullRequestClosed(_), later)
            | (_, later @ (Work::PullRequest(_) | Work::PullRequestClosed(_))) => later,
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
    pub repository: RepoRef,
    pub work: Work,
    /// When the first coalesced event arrived.
    pub received: Instant,
    /// The span of the request that asked (the latest one coalesced), so
    /// its trace continues into the read and apply.
    pub span: tracing::Span,
    /// The integration's host it came through (`refresh` for a refresh),
    /// for metrics.
    pub origin: String,
}

impl WorkItem {
    pub(super) fn key(&self) -> String {
        let repository = self.repository_key();
        match &self.work {
            // Updates of one pull request coalesce, apart from pushes.
            Work::PullRequest(pr) => format!("{repository}#pr{}", pr.id),
            Work::PullRequestClosed(id) => format!("{repository}#pr{id}"),
            _ => repository,
        }
    }

    fn repository_key(&self) -> String {
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

    /// Asked for through the API rather than by Bitbucket: it waits
    /// below webhook work.
    fn is_refresh(&self) -> bool {
        self.origin == REFRESH_ORIGIN
    }

    /// `self` followed by `later` for the same repository.
    fn merge(self, later: WorkItem) -> WorkItem {
        WorkItem {
            work: self.work.then(later.work),
            received: self.received.min(later.received),
            ..later
        }
    }

    /// `PROJECT/slug` (Cloud: the project, else the workspace, then the slug).
    fn repository_name(&self) -> String {
        let repository = &self.repository;
        repository
            .project
            .as_deref()
            .or(repository.workspace.as_deref())
            .map_or_else(
                || repository.slug.clone(),
                |p| format!("{p}/{}", repository.slug),
            )
    }
}

/// The last event or refresh a provider handled, for its status.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LastEvent {
    #[serde(serialize_with = "rfc3339::serialize")]
    pub received_at: DateTime<Utc>,
    /// `push`, `moved`, `deleted` or `refresh`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `PROJECT/slug` (Cloud: the project, else the workspace, then the slug).
    pub repository: String,
    /// `applied`, `ignored: <why>`, `held: <why>` or `failed: <why>`.
    pub outcome: String,
}

impl LastEvent {
    pub(super) fn of(item: &WorkItem, outcome: &Outcome) -> Self {
        Self {
            received_at: Utc::now(),
            kind: item.work.name(),
            repository: item.repository_name(),
            outcome: outcome.to_string(),
        }
    }
}

/// Units event reads applied while a run was in progress (`None`: no run).
/// The run in progress neither applies its (older) reads of these nor
/// removes them for missing from its (older) listing.
pub(crate) type FreshUnits = Arc<Mutex<Option<HashSet<String>>>>;

/// Marks `units` before their event read is applied, so a run's batch
/// applied later (checked under the applier's lock) cannot undo it.
pub(super) fn mark_fresh(fresh: &FreshUnits, units: impl Iterator<Item = String>) {
    if let Some(fresh) = fresh.lock().as_mut() {
        fresh.extend(units);
    }
}

/// The work waiting, by repository, and whether a worker is draining it.
/// Webhook work (pushes, moves, deletions) goes before refreshes asked
/// through the API, so a flood of refreshes cannot delay a push.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// Webhook work, and refreshes merged with it.
    urgent: HashMap<String, WorkItem>,
    refreshes: HashMap<String, WorkItem>,
    draining: bool,
}

/// An item not queued: too much already waits.
pub(super) struct QueueFull(pub(super) Box<WorkItem>);

impl Pending {
    /// Queues `item`, merged with what waits for the same repository (in
    /// the urgent lane when either is webhook work).
    /// `Ok(true)`: no worker drains the queue yet; start one.
    pub(super) fn push(&mut self, item: WorkItem) -> Result<bool, QueueFull> {
        let key = item.key();
        let waiting = self.urgent.contains_key(&key) || self.refreshes.contains_key(&key);
        if self.urgent.len() + self.refreshes.len() >= MAX_PENDING && !waiting {
            return Err(QueueFull(Box::new(item)));
        }
        let urgent = !item.is_refresh() || self.urgent.contains_key(&key);
        let earlier = self
            .urgent
            .remove(&key)
            .or_else(|| self.refreshes.remove(&key));
        let merged = match earlier {
            Some(earlier) => earlier.merge(item),
            None => item,
        };
        let lane = if urgent {
            &mut self.urgent
        } else {
            &mut self.refreshes
        };
        lane.insert(key, merged);
        Ok(!std::mem::replace(&mut self.draining, true))
    }

    /// The next batch: all webhook work waiting, else the oldest few
    /// refreshes; `None` when nothing waits (the worker stops).
    pub(super) fn take(&mut self) -> Option<Vec<WorkItem>> {
        if !self.urgent.is_empty() {
            return Some(self.urgent.drain().map(|(_, item)| item).collect());
        }
        if self.refreshes.is_empty() {
            self.draining = false;
            return None;
        }
        let mut oldest: Vec<(Instant, String)> = self
            .refreshes
            .iter()
            .map(|(key, item)| (item.received, key.clone()))
            .collect();
        oldest.sort_unstable();
        Some(
            oldest
                .into_iter()
                .take(REFRESH_CHUNK)
                .filter_map(|(_, key)| self.refreshes.remove(&key))
                .collect(),
        )
    }

    /// The worker stops (shutdown) with work left.
    pub(super) fn stop(&mut self) {
        self.draining = false;
    }
}

/// What became of one work item.
#[derive(Debug, Clone, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub(super) enum Outcome {
    Applied,
    Ignored(String),
    Held(String),
    Failed(String),
}

impl Outcome {
    /// The metric label; the status shows it with the reason.
    pub(super) fn label(&self) -> &'static str {
        self.into()
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
    fn every_subscribed_event_asks_for_work() {
        use crate::bitbucket::webhooks::{SUBSCRIBED, minimal_body, parse};
        for (product, key, _) in SUBSCRIBED {
            let body = serde_json::to_vec(&minimal_body(*product)).unwrap();
            let event = parse(*product, key, &body).unwrap();
            assert!(Work::asked_by(event).is_some(), "{key}");
        }
    }

    #[test]
    fn names_are_the_metric_and_status_labels() {
        let names = [
            Work::Pushed(Vec::new()),
            Work::Refresh,
            Work::Moved(None),
            Work::Deleted,
        ]
        .map(|w| w.name());
        assert_eq!(names, ["push", "refresh", "moved", "deleted"]);
        let outcomes = [
            Outcome::Applied,
            Outcome::Ignored("why".into()),
            Outcome::Held("why".into()),
            Outcome::Failed("why".into()),
        ]
        .map(|o| o.to_string());
        assert_eq!(
            outcomes,
            ["applied", "ignored: why", "held: why", "failed: why"]
        );
    }

    fn item(slug: &str, work: Work, origin: &str) -> WorkItem {
        WorkItem {
            repository: RepoRef {
                id: None,
                workspace: None,
                project: Some("P".into()),
                slug: slug.into(),
                web_url: None,
                archived: false,
                main_branch: None,
            },
            work,
            received: Instant::now(),
            origin: origin.into(),
            span: tracing::Span::none(),
        }
    }

    #[test]
    fn pushes_go_before_refreshes_which_come_a_few_at_a_time() {
        let mut pending = Pending::default();
        for i in 0..5 {
            let _ = pending.push(item(&format!("r{i}"), Work::Refresh, REFRESH_ORIGIN));
        }
        let _ = pending.push(item("p", Work::Pushed(vec![moved("main", "a")]), "host"));
        // A refresh of a repository a push waits for joins the push.
        let _ = pending.push(item("p", Work::Refresh, REFRESH_ORIGIN));
        let first = pending.take().unwrap_or_default();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].repository.slug, "p");
        let mut refreshed = Vec::new();
        while let Some(batch) = pending.take() {
            assert!(batch.len() <= REFRESH_CHUNK);
            refreshed.extend(batch.into_iter().map(|i| i.repository.slug));
        }
        assert_eq!(refreshed, ["r0", "r1", "r2", "r3", "r4"]);
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
