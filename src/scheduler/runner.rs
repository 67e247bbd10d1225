//! One source's runs: never two at once, cancelled at the timeout or at
//! shutdown, results applied as they come (so a cancelled run keeps what it
//! read), removals only through the deletion guard, every run recorded.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::apply::Applier;
use super::events::EventReads;
use super::guard::ShrinkGuard;
use super::queue::{FreshUnits, LastEvent, REFRESH_ORIGIN, RefreshError, Work, WorkItem};
use super::recorder::{Recorder, RepositoryCounts};
use crate::bitbucket::{self, Lane, RequestStats};
use crate::catalog::Catalog;
use crate::config::Schedule;
use crate::discovery::location::LocationRead;
use crate::discovery::pipeline;
use crate::discovery::progress::ProgressView;
use crate::discovery::{
    Held, Outcome, Problem, Progress, RepositoryRecord, RunContext, RunReport, RunSink, Source,
    Trigger, UnitUpdate,
};
use crate::store::{CatalogStore, RepositoryKey, StoreError};

/// How long a run stopped at its timeout may take to apply what it read.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A source plus the state that keeps its runs orderly.
#[derive(Debug)]
pub(crate) struct SourceRunner {
    pub(super) source: Source,
    pub(super) catalog: Arc<Catalog>,
    pub(super) store: Arc<dyn CatalogStore>,
    pub(super) applier: Arc<Applier>,
    pub(super) running: tokio::sync::Mutex<()>,
    recorder: Recorder,
    pub(super) guard: Arc<ShrinkGuard>,
    /// The run in progress, if any.
    progress: Mutex<Option<Arc<Progress>>>,
    pub(super) shutdown: CancellationToken,
    /// Set once the source is removed (a deleted location): no run applies.
    pub(super) retired: AtomicBool,
    /// Units event reads applied during the run in progress.
    pub(super) fresh: FreshUnits,
    /// Work that events and refreshes ask for (providers).
    events: Option<Arc<EventReads>>,
    /// A listing sweep holds `running` (see `sweep.rs`): a run waits for it.
    pub(super) sweeping: AtomicBool,
    /// Which listing the sweep makes (kept between sweeps).
    pub(super) listing_route: crate::discovery::listing_sweep::ListingRoute,
}

/// What a refresh request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshOutcome {
    Started,
    /// A run is already in progress; it serves the request.
    AlreadyRunning,
}

impl SourceRunner {
    pub(crate) fn applier(&self) -> &Arc<Applier> {
        &self.applier
    }

    pub(crate) fn new(
        source: Source,
        catalog: Arc<Catalog>,
        store: Arc<dyn CatalogStore>,
        applier: Arc<Applier>,
        shutdown: CancellationToken,
    ) -> Self {
        let guard = Arc::new(ShrinkGuard::new(source.deletion_guard()));
        let fresh = FreshUnits::default();
        let events = source.shared_reads().map(|reads| {
            Arc::new(EventReads {
                source: source.id().to_owned(),
                reads,
                catalog: Arc::clone(&catalog),
                store: Arc::clone(&store),
                applier: Arc::clone(&applier),
                guard: Arc::clone(&guard),
                fresh: Arc::clone(&fresh),
                shutdown: shutdown.clone(),
                pending: Default::default(),
                branches: Default::default(),
                last: Default::default(),
            })
        });
        Self {
            guard,
            source,
            catalog,
            store,
            applier,
            running: tokio::sync::Mutex::new(()),
            recorder: Recorder::default(),
            progress: Mutex::new(None),
            shutdown,
            retired: AtomicBool::new(false),
            fresh,
            events,
            sweeping: AtomicBool::new(false),
            listing_route: Default::default(),
        }
    }

    /// The last event or refresh handled (providers).
    pub(crate) fn last_event(&self) -> Option<LastEvent> {
        self.events.as_ref().and_then(|e| e.last_event())
    }

    /// Queues `item` for the provider's event reads (see
    /// [`EventReads::enqueue`]). `false`: dropped (too much waits, or the
    /// source reads no single repository).
    pub(crate) fn enqueue(&self, item: WorkItem) -> bool {
        self.events.as_ref().is_some_and(|e| e.enqueue(item))
    }

    pub(crate) fn id(&self) -> &str {
        self.source.id()
    }

    pub(crate) fn source(&self) -> &Source {
        &self.source
    }

    pub(crate) fn schedule(&self) -> &Schedule {
        self.source.schedule()
    }

    /// What the source reads: a host, a workspace or a URL.
    pub(crate) fn target(&self) -> &str {
        self.source.target()
    }

    pub(super) fn is_location(&self) -> bool {
        self.source.as_location().is_some()
    }

    pub(crate) fn in_progress(&self) -> bool {
        self.running.try_lock().is_err() && !self.sweeping.load(Ordering::Acquire)
    }

    /// How the run in progress is doing.
    pub(crate) fn progress(&self) -> Option<ProgressView> {
        self.progress.lock().as_ref().map(|p| p.view())
    }

    /// Moves whenever what the status page shows of this source may have
    /// changed: a report or repository counts kept, a batch written
    /// (records included). Cheap: two counters.
    pub(crate) fn shown_version(&self) -> (u64, u64) {
        (self.recorder.generation(), self.applier.written())
    }

    pub(crate) fn last_report(&self) -> Option<RunReport> {
        self.recorder.last_report()
    }

    /// Restores the last run recorded before a restart.
    pub(crate) fn restore_report(&self, report: RunReport) {
        self.recorder.restore(report);
    }

    /// How the provider's repositories stand (providers only).
    pub(crate) fn repository_counts(&self) -> Option<RepositoryCounts> {
        self.recorder.repositories()
    }

    /// The provider's repositories as last listed and read.
    pub(crate) async fn repositories(&self) -> Result<Vec<RepositoryRecord>, StoreError> {
        let mut records = self.store.repositories(self.id()).await?;
        records.sort_by(|a, b| (&a.project, &a.slug).cmp(&(&b.project, &b.slug)));
        Ok(records)
    }

    /// Counts the stored repository records at start-up.
    pub(crate) async fn count_repositories(&self) {
        self.recount_repositories(false).await;
    }

    /// `listed`: a complete listing just ran, so no records means none.
    async fn recount_repositories(&self, listed: bool) {
        if !self.source.lists_repositories() {
            return;
        }
        match self.store.repositories(self.id()).await {
            // Before any listing there is nothing to count, not zero.
            Ok(records) if records.is_empty() && !listed => {}
            Ok(records) => self
                .recorder
                .set_repositories(self.id(), RepositoryCounts::of(&records)),
            Err(err) => {
                tracing::warn!(provider = self.id(), error = %err, "cannot count repositories")
            }
        }
    }

    /// Starts a run in the background unless one is in progress; `force`
    /// applies removals even past the deletion guard.
    pub(crate) fn refresh(self: &Arc<Self>, force: bool) -> RefreshOutcome {
        self.refresh_as(force, Lane::Sweep)
    }

    fn refresh_as(self: &Arc<Self>, force: bool, lane: Lane) -> RefreshOutcome {
        if self.in_progress() {
            return RefreshOutcome::AlreadyRunning;
        }
        let runner = Arc::clone(self);
        self.applier.tracker().spawn(async move {
            runner.run(force, Trigger::Refresh, lane).await;
        });
        RefreshOutcome::Started
    }

    /// Runs now unless a run is already in progress (then returns `None`).
    pub(crate) async fn run_now(&self, trigger: Trigger) -> Option<RunReport> {
        self.run(false, trigger, Lane::Sweep).await
    }

    #[tracing::instrument(name = "provider.run", level = "debug", skip_all, fields(provider = self.id(), trigger = trigger.label()))]
    async fn run(&self, force: bool, trigger: Trigger, lane: Lane) -> Option<RunReport> {
        let Some(_guard) = self.lock_after_sweep().await else {
            tracing::info!(
                provider = self.id(),
                trigger = trigger.label(),
                "previous run still in progress; not starting another"
            );
            return None;
        };
        if self.retired.load(Ordering::Acquire) {
            return None;
        }
        let started = Instant::now();
        let started_at = chrono::Utc::now();
        tracing::info!(
            provider = self.id(),
            trigger = trigger.label(),
            "discovery run started ({})",
            trigger.label()
        );
        let known = self.known().await;
        // From now on, event reads are remembered for this run.
        *self.fresh.lock() = Some(Default::default());
        let progress = Arc::new(Progress::new());
        *self.progress.lock() = Some(Arc::clone(&progress));
        let sink = RunnerSink {
            runner: self,
            force,
            recorded: known.keys().cloned().collect(),
        };
        let ctx = RunContext {
            stats: Arc::new(RequestStats::default()),
            progress: Arc::clone(&progress),
            known,
            sink: &sink,
            stop: CancellationToken::new(),
        };
        let run = self.source.run(&ctx);
        // A whole run is sweep work: single-repository work on the same
        // integration (pushes, entity refreshes) goes ahead of its requests.
        let run = async {
            match lane {
                Lane::Sweep => bitbucket::sweep(self.id(), run).await,
                Lane::Interactive => run.await,
            }
        };
        let report = self
            .within_timeout(run, &ctx, &progress, (started, started_at))
            .await;
        // The records known at the start are not needed past the run:
        // freed before `finish` counts the records again (issue 29).
        drop(ctx);
        drop(sink);
        self.run_ended();
        Some(self.finish(report?, trigger).await)
    }

    /// Runs `run` to its end or, past the schedule's timeout, stops its
    /// reads and keeps what was read; `None` when shutdown cancels it.
    async fn within_timeout(
        &self,
        run: impl Future<Output = RunReport>,
        ctx: &RunContext<'_>,
        progress: &Progress,
        (started, started_at): (Instant, chrono::DateTime<chrono::Utc>),
    ) -> Option<RunReport> {
        let timeout = self.schedule().timeout;
        tokio::pin!(run);
        tokio::select! {
            report = &mut run => return Some(report),
            () = tokio::time::sleep(timeout) => {}
            () = self.shutdown.cancelled() => {
                tracing::info!(provider = self.id(), "discovery run cancelled by shutdown");
                return None;
            }
        }
        // Past the timeout: stop reading, apply what was read.
        ctx.stop.cancel();
        let stopped = tokio::select! {
            report = tokio::time::timeout(STOP_GRACE, &mut run) => report.ok(),
            () = self.shutdown.cancelled() => None,
        };
        let mut report = stopped.unwrap_or_else(|| {
            let mut report = RunReport::new(self.id());
            report.started_at = started_at;
            pipeline::finish(&mut report, &ctx.stats, started);
            report
        });
        // A held removal says more than "incomplete": keep it.
        if !matches!(report.outcome, Outcome::Held { .. }) {
            report.outcome = self.timed_out(&report, progress, timeout.as_secs());
        }
        Some(report)
    }

    fn run_ended(&self) {
        *self.progress.lock() = None;
        *self.fresh.lock() = None;
    }

    /// What earlier runs recorded about each repository, by unit.
    async fn known(&self) -> HashMap<String, RepositoryRecord> {
        if !self.source.lists_repositories() {
            return HashMap::new();
        }
        match self.store.repositories(self.id()).await {
            Ok(records) => records
                .into_iter()
                .map(|r| (r.catalog_url.clone(), r))
                .collect(),
            Err(err) => {
                tracing::error!(provider = self.id(), error = %err, "cannot read the repository records; every file is read");
                HashMap::new()
            }
        }
    }

    /// The outcome of a run stopped at its timeout.
    fn timed_out(&self, report: &RunReport, progress: &Progress, timeout_secs: u64) -> Outcome {
        let done = progress.view();
        let key = if self.is_location() {
            "catalog.locationSchedule.timeout"
        } else {
            "schedule.timeout"
        };
        if done.listed == 0 && done.unchanged == 0
            || matches!(report.outcome, Outcome::Failed { .. })
        {
            return Outcome::Failed {
                error: format!(
                    "run exceeded its timeout of {timeout_secs}s before its listing completed and was cancelled; nothing was removed (raise {key})"
                ),
            };
        }
        Outcome::Incomplete {
            message: format!(
                "run reached its timeout of {timeout_secs}s after reading {} of {} files; what it read is served, and the next run starts with the {} files it did not reach (raise {key} to read them all in one run)",
                done.read, done.to_read, done.remaining
            ),
            read: done.read,
            remaining: done.remaining,
        }
    }

    /// Waits for a run in progress to end and keeps new ones from starting
    /// while the guard lives: for runs the API drives and for removal.
    pub(crate) async fn exclusive(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.running.lock().await
    }

    /// Applies a location read done outside a run (registration; hold
    /// [`Self::exclusive`]) and records it.
    pub(crate) async fn apply_location_read(&self, read: LocationRead) -> RunReport {
        let mut report = read.report;
        if let Some(entities) = read.entities {
            let update = UnitUpdate {
                unit: self.target().to_owned(),
                record: None,
                entities: Some(entities),
            };
            report
                .problems
                .extend(self.applier.apply(self.id(), vec![update]).await);
        }
        self.finish(report, Trigger::Registration).await
    }

    /// Completes `report` with what only the runner knows (what started
    /// it, what the source serves now) and records it.
    async fn finish(&self, mut report: RunReport, trigger: Trigger) -> RunReport {
        report.trigger = Some(trigger);
        report.entities = self.catalog.source_len(self.id());
        let listed = !matches!(report.outcome, Outcome::Failed { .. });
        self.recount_repositories(listed).await;
        self.recorder.record(self.store.as_ref(), report).await
    }

    /// Stops serving the entity `key` of `unit` (`DELETE
    /// /entities/by-uid`); the unit's other entities stay. Like an orphan
    /// deleted in Backstage, it comes back when the unit is next read: its
    /// change token is dropped so that read applies even if the file did
    /// not change. Until then its ref is withheld, still the unit's.
    pub(crate) async fn remove_entity(
        &self,
        unit: &str,
        key: &crate::catalog::EntityKey,
    ) -> Result<Vec<Problem>, RefreshError> {
        // The ref stays the unit's: no contesting file takes it meanwhile.
        self.catalog.withhold(self.id(), unit, key);
        // Read in the applier's turn, not here: see Applier::remove_entity.
        self.applier
            .remove_entity(self.id(), unit, key)
            .await
            .map_err(RefreshError::Records)
    }

    /// Re-reads the unit `unit` (a per-entity refresh): a provider's
    /// repository alone, through the same path as a push; a location's one
    /// file and its targets. `Err` says why it cannot be scheduled now.
    pub(crate) async fn refresh_unit(self: &Arc<Self>, unit: &str) -> Result<(), RefreshError> {
        let Some(events) = &self.events else {
            // A location: its one file (and targets) is single-entity work.
            self.refresh_as(false, Lane::Interactive);
            return Ok(());
        };
        let Some(record) = self.record(unit).await? else {
            tracing::warn!(
                provider = self.id(),
                unit,
                "no repository record for a refreshed entity; refreshing the provider"
            );
            self.refresh(false);
            return Ok(());
        };
        let queued = events.enqueue(WorkItem {
            repository: record.into(),
            work: Work::Refresh,
            received: Instant::now(),
            origin: REFRESH_ORIGIN.into(),
            span: tracing::Span::current(),
        });
        if queued {
            Ok(())
        } else {
            Err(RefreshError::Full)
        }
    }

    async fn record(&self, unit: &str) -> Result<Option<RepositoryRecord>, RefreshError> {
        self.store
            .repository(self.id(), RepositoryKey::Unit(unit))
            .await
            .map_err(RefreshError::Records)
    }

    /// Marks the source removed: later ticks and refreshes do nothing. Call
    /// it while holding [`Self::exclusive`], so no run is half-way.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }
}

/// Where a scheduled run's results go: the applier, through the guard.
struct RunnerSink<'a> {
    runner: &'a SourceRunner,
    force: bool,
    /// Units with a repository record when the run started.
    recorded: HashSet<String>,
}

impl RunSink for RunnerSink<'_> {
    fn unit_entities(&self, unit: &str) -> Option<Vec<crate::catalog::ProcessedEntity>> {
        Some(self.runner.catalog.unit_entities(self.runner.id(), unit))
    }

    fn apply(&self, updates: Vec<UnitUpdate>) -> BoxFuture<'_, Vec<Problem>> {
        // A push read since this run started is newer than the run's read.
        Box::pin(self.runner.applier.apply_skipping(
            self.runner.id(),
            updates,
            Arc::clone(&self.runner.fresh),
        ))
    }

    fn reconcile(&self, listed: HashSet<String>) -> BoxFuture<'_, Result<(), Held>> {
        Box::pin(async move {
            let runner = self.runner;
            let id = runner.id();
            let gone: Vec<String> = {
                let fresh = runner.fresh.lock();
                runner
                    .catalog
                    .units(id)
                    .into_iter()
                    .chain(self.recorded.iter().cloned())
                    .filter(|unit| !listed.contains(unit))
                    // Applied from an event after this (older) listing was made.
                    .filter(|unit| fresh.as_ref().is_none_or(|f| !f.contains(unit)))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            };
            let removed = runner.catalog.units_len(id, &gone);
            let current = runner.catalog.source_len(id);
            runner.guard.check(id, current, removed, self.force)?;
            if !gone.is_empty() {
                for problem in runner.applier.remove_units(id, gone).await {
                    tracing::error!(provider = id, "{}", problem.message);
                }
            }
            Ok(())
        })
    }
}
