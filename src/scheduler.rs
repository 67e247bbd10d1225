//! Runs each source on its schedule (tokio-cron-scheduler), never twice at
//! once, cancelled past its timeout, and applies successful runs to the
//! store and the catalog. A failed or timed-out run leaves the source's
//! entities as they were.
//!
//! Providers each have their own schedule. Locations (static and
//! registered) share `catalog.locationSchedule`: one job reads them all,
//! each still guarded, timed and recorded on its own. Registered locations
//! join and leave while the daemon runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::catalog::Catalog;
use crate::config::{Frequency, Schedule};
use crate::discovery::{
    Outcome, PreviousEntities, Problem, ProblemKind, RepositoryCatalog, RunReport, RunResult,
    Source, now_rfc3339,
};
use crate::metrics;
use crate::store::CatalogStore;

/// Locations read at once per tick of the location schedule.
const LOCATION_CONCURRENCY: usize = 4;

#[derive(Debug, thiserror::Error)]
#[error("cannot schedule provider {provider}: {source}")]
pub struct SchedulerError {
    provider: String,
    source: JobSchedulerError,
}

/// A source plus the state that keeps its runs orderly.
#[derive(Debug)]
pub struct SourceRunner {
    source: Source,
    catalog: Arc<Catalog>,
    store: Arc<dyn CatalogStore>,
    running: tokio::sync::Mutex<()>,
    last_report: Mutex<Option<RunReport>>,
    /// The last complete listing's repositories (Server providers).
    repositories: Mutex<Option<Arc<Vec<RepositoryCatalog>>>>,
    shutdown: CancellationToken,
    /// Set once the source is removed (a deleted location): no run applies.
    retired: AtomicBool,
    /// The source's last stable size (deletion guard); starts at what is
    /// served after a restart.
    baseline: Mutex<usize>,
}

/// What a refresh request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Started,
    /// A run is already in progress; it serves the request.
    AlreadyRunning,
}

impl SourceRunner {
    pub fn new(
        source: Source,
        catalog: Arc<Catalog>,
        store: Arc<dyn CatalogStore>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            source,
            catalog,
            store,
            running: tokio::sync::Mutex::new(()),
            last_report: Mutex::new(None),
            repositories: Mutex::new(None),
            shutdown,
            retired: AtomicBool::new(false),
            baseline: Mutex::new(0),
        }
    }

    pub fn id(&self) -> &str {
        self.source.id()
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    pub fn schedule(&self) -> &Schedule {
        self.source.schedule()
    }

    /// What the source reads: a host, a workspace or a URL.
    pub fn target(&self) -> &str {
        self.source.target()
    }

    fn is_location(&self) -> bool {
        self.source.as_location().is_some()
    }

    pub fn in_progress(&self) -> bool {
        self.running.try_lock().is_err()
    }

    pub fn last_report(&self) -> Option<RunReport> {
        self.last_report.lock().clone()
    }

    /// Restores the last run recorded before a restart.
    pub fn restore_report(&self, report: RunReport) {
        *self.last_report.lock() = Some(report);
    }

    /// Starts a run in the background unless one is in progress; `force`
    /// applies its result even past the deletion guard.
    pub fn refresh(self: &Arc<Self>, force: bool) -> RefreshOutcome {
        if self.in_progress() {
            return RefreshOutcome::AlreadyRunning;
        }
        let runner = Arc::clone(self);
        tokio::spawn(async move {
            runner.run(force).await;
        });
        RefreshOutcome::Started
    }

    /// The repositories that passed the filters in the last complete
    /// listing, with whether each has a catalog file.
    pub fn repositories(&self) -> Option<Arc<Vec<RepositoryCatalog>>> {
        self.repositories.lock().clone()
    }

    /// Runs now unless a run is already in progress (then returns `None`).
    pub async fn run_now(&self) -> Option<RunReport> {
        self.run(false).await
    }

    async fn run(&self, force: bool) -> Option<RunReport> {
        let Ok(_guard) = self.running.try_lock() else {
            tracing::info!(
                provider = self.id(),
                "previous run still in progress; skipping this tick"
            );
            return None;
        };
        if self.retired.load(Ordering::Acquire) {
            return None;
        }
        let timeout = self.schedule().timeout;
        let started = Instant::now();
        let started_at = now_rfc3339();
        tracing::info!(provider = self.id(), "discovery run started");
        let previous = PreviousEntities::new(self.catalog.source_served(self.id()));
        let outcome = tokio::select! {
            result = tokio::time::timeout(timeout, self.source.run(&previous)) => result.ok(),
            () = self.shutdown.cancelled() => {
                tracing::info!(provider = self.id(), "discovery run cancelled by shutdown");
                return None;
            }
        };
        let result = outcome.unwrap_or_else(|| {
            let mut report = RunReport::new(self.id());
            report.started_at = started_at;
            report.finished_at = now_rfc3339();
            report.duration = started.elapsed();
            report.outcome = Outcome::Failed {
                error: format!(
                    "run exceeded its timeout of {}s and was cancelled; previous entities are kept (raise {})",
                    timeout.as_secs(),
                    if self.is_location() {
                        "catalog.locationSchedule.timeout"
                    } else {
                        "schedule.timeout"
                    }
                ),
            };
            RunResult {
                report,
                entities: None,
                repositories: None,
            }
        });
        Some(self.record(result, force).await)
    }

    /// Waits for a run in progress to end and keeps new ones from starting
    /// while the guard lives: for runs the API drives and for removal.
    pub async fn exclusive(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.running.lock().await
    }

    /// Applies a finished run (hold [`Self::exclusive`] or be `run_now`):
    /// a successful run's entities are persisted and served; any run is
    /// recorded, logged and counted.
    pub async fn record(&self, result: RunResult, force: bool) -> RunReport {
        if let Some(repositories) = result.repositories {
            metrics::record_repositories(self.id(), &repositories);
            *self.repositories.lock() = Some(Arc::new(repositories));
        }
        let report = match result.entities {
            Some(entities) => self.apply(entities, result.report, force).await,
            None => result.report,
        };
        if !report.succeeded()
            && let Err(err) = self.store.save_run(self.id(), &report).await
        {
            tracing::error!(provider = self.id(), error = %err, "cannot record the run");
        }
        self.log(&report);
        metrics::record_run(&report, self.catalog.source_len(self.id()));
        *self.last_report.lock() = Some(report.clone());
        report
    }

    /// Marks the source removed: later ticks and refreshes do nothing. Call
    /// it while holding [`Self::exclusive`], so no run is half-way.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Serves a successful run's entities, then persists them — unless the
    /// run would remove more than the deletion guard allows and is not forced.
    async fn apply(
        &self,
        entities: Vec<crate::catalog::Entity>,
        mut report: RunReport,
        force: bool,
    ) -> RunReport {
        let current = self.catalog.source_keys(self.id());
        let incoming: std::collections::HashSet<_> = entities.iter().map(|e| e.key()).collect();
        let removed = current.iter().filter(|k| !incoming.contains(*k)).count();
        let guard = self.source.deletion_guard();
        // Against the last stable size too, so runs that each remove a little
        // less than the threshold cannot add up to more without `force`.
        let baseline = (*self.baseline.lock()).max(current.len());
        let shrunk_since_baseline = baseline.saturating_sub(incoming.len());
        let (removed, of) = if guard.holds(current.len(), removed) {
            (removed, current.len())
        } else {
            (shrunk_since_baseline, baseline)
        };
        if guard.holds(of, removed) {
            if force {
                tracing::warn!(
                    provider = self.id(),
                    removed,
                    of = current.len(),
                    "deletion guard overridden with force=true"
                );
            } else {
                let message = format!(
                    "held: would remove {removed} of {of} entities, more than the deletionThreshold of {:.0} %; the previous entities stay. If the removal is intended, POST /api/catalog/providers/{}/refresh?force=true",
                    guard.threshold * 100.0,
                    self.id()
                );
                metrics::record_held(self.id());
                report.outcome = Outcome::Held {
                    message,
                    would_remove: removed,
                    of,
                };
                return report;
            }
        }
        // The size the guard measures shrinking against: it follows growth,
        // and a forced run resets it; an allowed shrink leaves it where it was.
        {
            let mut baseline = self.baseline.lock();
            if force || incoming.len() >= *baseline {
                *baseline = incoming.len();
            }
        }
        // Stitching and rendering are CPU work: keep them off the async workers.
        let catalog = Arc::clone(&self.catalog);
        let id = self.id().to_owned();
        let conflicts = match tokio::task::spawn_blocking(move || {
            catalog.replace_source(&id, entities)
        })
        .await
        {
            Ok(conflicts) => conflicts,
            Err(err) => {
                report.outcome = Outcome::Failed {
                    error: format!("applying the run failed: {err}"),
                };
                return report;
            }
        };
        // Persist what is now served, so a restart serves it without work.
        let served = self.catalog.source_served(self.id());
        if let Err(err) = self.store.save_source(self.id(), &served, &report).await {
            // Still served; only a restart would lose them.
            tracing::error!(provider = self.id(), error = %err, "cannot persist the run's entities");
            report.problems.push(Problem::new(
                String::new(),
                ProblemKind::Store,
                format!("entities are served but not persisted: {err}"),
            ));
        }
        report.entities = report.entities.saturating_sub(conflicts.len());
        report.problems.extend(conflicts.into_iter().map(|c| {
            let message = format!(
                "entity {} is already provided by {}; this copy is ignored",
                c.entity_ref, c.owner
            );
            Problem::new(c.location, ProblemKind::Conflict, message).for_entity(c.entity_ref)
        }));
        report
    }

    fn log(&self, report: &RunReport) {
        match &report.outcome {
            Outcome::Succeeded => tracing::info!(
                provider = self.id(),
                repos = report.repos_matched,
                files = report.files_found,
                entities = report.entities,
                problems = report.problems.len(),
                requests = report.requests,
                duration_ms = u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
                "discovery run succeeded"
            ),
            Outcome::Failed { error } => tracing::warn!(
                provider = self.id(),
                error,
                "discovery run failed; previous entities kept"
            ),
            Outcome::Held { message, .. } => tracing::warn!(provider = self.id(), "{message}"),
        }
        for problem in &report.problems {
            tracing::warn!(provider = self.id(), url = problem.url, document = problem.document, entity = problem.entity_ref, kind = ?problem.kind, "{}", problem.message);
        }
    }
}

type Runners = Arc<RwLock<Vec<Arc<SourceRunner>>>>;

/// Owns the cron scheduler and the source runners.
pub struct Scheduler {
    jobs: JobScheduler,
    runners: Runners,
    /// The repeating job of each provider, for "next run" in the status.
    repeating_jobs: HashMap<String, Uuid>,
    /// The repeating job that reads every location.
    locations_job: Option<Uuid>,
}

impl Scheduler {
    /// Registers one job per provider (plus the start-up run), one for all
    /// locations on `location_schedule` (plus theirs), and starts ticking.
    pub async fn start(
        runners: Vec<Arc<SourceRunner>>,
        location_schedule: &Schedule,
    ) -> Result<Self, SchedulerError> {
        let wrap = |provider: &str| {
            let provider = provider.to_owned();
            move |source| SchedulerError {
                provider: provider.clone(),
                source,
            }
        };
        let jobs = JobScheduler::new().await.map_err(wrap("*"))?;
        let mut repeating_jobs = HashMap::new();
        for runner in runners.iter().filter(|r| !r.is_location()) {
            let schedule = runner.schedule().clone();
            let err = wrap(runner.id());
            let start_up_delay = schedule.initial_delay.unwrap_or(Duration::ZERO);
            let job = Job::new_one_shot_async(start_up_delay, run_job(Arc::clone(runner)));
            jobs.add(job.map_err(&err)?).await.map_err(&err)?;
            if let Some(job) =
                repeating(&schedule.frequency, run_job(Arc::clone(runner))).map_err(&err)?
            {
                let id = jobs.add(job).await.map_err(&err)?;
                repeating_jobs.insert(runner.id().to_owned(), id);
            }
        }
        let runners: Runners = Arc::new(RwLock::new(runners));
        let err = wrap("catalog.locations");
        let start_up_delay = location_schedule.initial_delay.unwrap_or(Duration::ZERO);
        let job = Job::new_one_shot_async(start_up_delay, run_locations(Arc::clone(&runners)));
        jobs.add(job.map_err(&err)?).await.map_err(&err)?;
        let locations_job = match repeating(
            &location_schedule.frequency,
            run_locations(Arc::clone(&runners)),
        )
        .map_err(&err)?
        {
            Some(job) => Some(jobs.add(job).await.map_err(&err)?),
            None => None,
        };
        jobs.start().await.map_err(wrap("*"))?;
        Ok(Self {
            jobs,
            runners,
            repeating_jobs,
            locations_job,
        })
    }

    /// Every source's runner, providers first.
    pub fn runners(&self) -> Vec<Arc<SourceRunner>> {
        self.runners.read().clone()
    }

    pub fn runner(&self, id: &str) -> Option<Arc<SourceRunner>> {
        self.runners.read().iter().find(|r| r.id() == id).cloned()
    }

    /// Adds a location's runner; the location schedule reads it from now on.
    pub fn add(&self, runner: Arc<SourceRunner>) {
        self.runners.write().push(runner);
    }

    /// Takes a runner out of the schedule (its run in progress, if any,
    /// finishes; see [`SourceRunner::retire`]).
    pub fn remove(&self, id: &str) -> Option<Arc<SourceRunner>> {
        let mut runners = self.runners.write();
        let index = runners.iter().position(|r| r.id() == id)?;
        Some(runners.remove(index))
    }

    /// When the source's schedule fires next (RFC 3339), if it repeats.
    pub async fn next_run(&self, source: &str) -> Option<String> {
        let id = match self.repeating_jobs.get(source) {
            Some(id) => *id,
            None if self.runner(source).is_some_and(|r| r.is_location()) => self.locations_job?,
            None => return None,
        };
        let mut jobs = self.jobs.clone();
        jobs.next_tick_for_job(id)
            .await
            .ok()
            .flatten()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }

    pub async fn shutdown(&self) {
        let mut jobs = self.jobs.clone();
        if let Err(err) = jobs.shutdown().await {
            tracing::warn!(error = %err, "scheduler did not shut down cleanly");
        }
    }
}

type JobFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn run_job(
    runner: Arc<SourceRunner>,
) -> impl FnMut(Uuid, JobScheduler) -> JobFuture + Send + Sync + 'static {
    move |_, _| {
        let runner = Arc::clone(&runner);
        Box::pin(async move {
            runner.run_now().await;
        })
    }
}

/// Reads every location registered at the time of the tick.
fn run_locations(
    runners: Runners,
) -> impl FnMut(Uuid, JobScheduler) -> JobFuture + Send + Sync + 'static {
    move |_, _| {
        let locations: Vec<Arc<SourceRunner>> = runners
            .read()
            .iter()
            .filter(|r| r.is_location())
            .cloned()
            .collect();
        Box::pin(async move {
            futures::stream::iter(locations)
                .for_each_concurrent(LOCATION_CONCURRENCY, |runner| async move {
                    runner.run_now().await;
                })
                .await;
        })
    }
}

fn repeating(
    frequency: &Frequency,
    run: impl FnMut(Uuid, JobScheduler) -> JobFuture + Send + Sync + 'static,
) -> Result<Option<Job>, JobSchedulerError> {
    match frequency {
        Frequency::Every(interval) => Job::new_repeated_async(*interval, run).map(Some),
        Frequency::Cron(expr) => {
            Job::new_async(Frequency::six_field_cron(expr).as_str(), run).map(Some)
        }
        Frequency::Manual => Ok(None),
    }
}
