//! Runs each provider on its schedule (tokio-cron-scheduler), never twice at
//! once, cancelled past its timeout, and applies successful runs to the
//! store and the catalog. A failed or timed-out run leaves the provider's
//! entities as they were.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::catalog::Catalog;
use crate::config::{Frequency, Schedule};
use crate::discovery::server::ServerProvider;
use crate::discovery::{
    Outcome, PreviousEntities, Problem, ProblemKind, RepositoryCatalog, RunReport, now_rfc3339,
};
use crate::metrics;
use crate::store::CatalogStore;

#[derive(Debug, thiserror::Error)]
#[error("cannot schedule provider {provider}: {source}")]
pub struct SchedulerError {
    provider: String,
    source: JobSchedulerError,
}

/// A provider plus the state that keeps its runs orderly.
#[derive(Debug)]
pub struct ProviderRunner {
    provider: ServerProvider,
    catalog: Arc<Catalog>,
    store: Arc<dyn CatalogStore>,
    running: tokio::sync::Mutex<()>,
    last_report: Mutex<Option<RunReport>>,
    repositories: Mutex<Option<Arc<Vec<RepositoryCatalog>>>>,
    shutdown: CancellationToken,
}

/// What a refresh request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Started,
    /// A run is already in progress; it serves the request.
    AlreadyRunning,
}

impl ProviderRunner {
    pub fn new(
        provider: ServerProvider,
        catalog: Arc<Catalog>,
        store: Arc<dyn CatalogStore>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            provider,
            catalog,
            store,
            running: tokio::sync::Mutex::new(()),
            last_report: Mutex::new(None),
            repositories: Mutex::new(None),
            shutdown,
        }
    }

    pub fn id(&self) -> &str {
        self.provider.id()
    }

    pub fn schedule(&self) -> &Schedule {
        &self.provider.config().schedule
    }

    /// The Bitbucket host this provider reads.
    pub fn target(&self) -> &str {
        &self.provider.config().host
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

    /// Starts a run in the background unless one is in progress.
    /// `force` applies the run's result even past the deletion guard.
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

    /// Runs now unless a run is already in progress (then returns `None`).
    pub async fn run_now(&self) -> Option<RunReport> {
        self.run(false).await
    }

    /// The repositories that passed the filters in the last complete
    /// listing, with whether each has a catalog file.
    pub fn repositories(&self) -> Option<Arc<Vec<RepositoryCatalog>>> {
        self.repositories.lock().clone()
    }

    async fn run(&self, force: bool) -> Option<RunReport> {
        let Ok(_guard) = self.running.try_lock() else {
            tracing::info!(
                provider = self.id(),
                "previous run still in progress; skipping this tick"
            );
            return None;
        };
        let timeout = self.schedule().timeout;
        let started = Instant::now();
        let started_at = now_rfc3339();
        tracing::info!(provider = self.id(), "discovery run started");
        let previous = PreviousEntities::new(self.catalog.source_entities(self.id()));
        let outcome = tokio::select! {
            result = tokio::time::timeout(timeout, self.provider.run(&previous)) => result.ok(),
            () = self.shutdown.cancelled() => {
                tracing::info!(provider = self.id(), "discovery run cancelled by shutdown");
                return None;
            }
        };
        let report = match outcome {
            Some(result) => {
                if let Some(repositories) = result.repositories {
                    metrics::record_repositories(self.id(), &repositories);
                    *self.repositories.lock() = Some(Arc::new(repositories));
                }
                match result.entities {
                    Some(entities) => self.apply(entities, result.report, force).await,
                    None => result.report,
                }
            }
            None => {
                let mut report = RunReport::new(self.id());
                report.started_at = started_at;
                report.finished_at = now_rfc3339();
                report.duration = started.elapsed();
                report.outcome = Outcome::Failed {
                    error: format!(
                        "run exceeded its timeout of {}s and was cancelled; previous entities are kept (raise schedule.timeout)",
                        timeout.as_secs()
                    ),
                };
                report
            }
        };
        if !report.succeeded()
            && let Err(err) = self.store.save_run(self.id(), &report).await
        {
            tracing::error!(provider = self.id(), error = %err, "cannot record the run");
        }
        self.log(&report);
        metrics::record_run(&report, self.catalog.source_len(self.id()));
        *self.last_report.lock() = Some(report.clone());
        Some(report)
    }

    /// Persists a successful run's entities, then serves them — unless the
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
        let guard = self.provider.config().deletion_guard;
        if guard.holds(current.len(), removed) {
            if force {
                tracing::warn!(
                    provider = self.id(),
                    removed,
                    of = current.len(),
                    "deletion guard overridden with force=true"
                );
            } else {
                let message = format!(
                    "held: would remove {removed} of {} entities, more than the deletionThreshold of {:.0} %; the previous entities stay. If the removal is intended, POST /api/catalog/providers/{}/refresh?force=true",
                    current.len(),
                    guard.threshold * 100.0,
                    self.id()
                );
                metrics::record_held(self.id());
                report.outcome = Outcome::Held {
                    message,
                    would_remove: removed,
                    of: current.len(),
                };
                return report;
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
        let served = self.catalog.source_prepared(self.id());
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

/// Owns the cron scheduler and the provider runners.
pub struct Scheduler {
    jobs: JobScheduler,
    runners: Vec<Arc<ProviderRunner>>,
    /// The repeating job of each provider, for "next run" in the status.
    repeating_jobs: HashMap<String, Uuid>,
}

impl Scheduler {
    /// Registers one job per provider (plus the start-up run) and starts ticking.
    pub async fn start(runners: Vec<Arc<ProviderRunner>>) -> Result<Self, SchedulerError> {
        let wrap = |provider: &str| {
            let provider = provider.to_owned();
            move |source| SchedulerError {
                provider: provider.clone(),
                source,
            }
        };
        let jobs = JobScheduler::new().await.map_err(wrap("*"))?;
        let mut repeating_jobs = HashMap::new();
        for runner in &runners {
            let schedule = runner.schedule().clone();
            let err = wrap(runner.id());
            let start_up_delay = schedule.initial_delay.unwrap_or(Duration::ZERO);
            jobs.add(one_shot(Arc::clone(runner), start_up_delay).map_err(&err)?)
                .await
                .map_err(&err)?;
            if let Some(job) = repeating(Arc::clone(runner), &schedule.frequency).map_err(&err)? {
                let id = jobs.add(job).await.map_err(&err)?;
                repeating_jobs.insert(runner.id().to_owned(), id);
            }
        }
        jobs.start().await.map_err(wrap("*"))?;
        Ok(Self {
            jobs,
            runners,
            repeating_jobs,
        })
    }

    pub fn runners(&self) -> &[Arc<ProviderRunner>] {
        &self.runners
    }

    pub fn runner(&self, id: &str) -> Option<&Arc<ProviderRunner>> {
        self.runners.iter().find(|r| r.id() == id)
    }

    /// When the provider's schedule fires next (RFC 3339), if it repeats.
    pub async fn next_run(&self, provider: &str) -> Option<String> {
        let id = *self.repeating_jobs.get(provider)?;
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
    runner: Arc<ProviderRunner>,
) -> impl FnMut(Uuid, JobScheduler) -> JobFuture + Send + Sync + 'static {
    move |_, _| {
        let runner = Arc::clone(&runner);
        Box::pin(async move {
            runner.run_now().await;
        })
    }
}

fn one_shot(runner: Arc<ProviderRunner>, delay: Duration) -> Result<Job, JobSchedulerError> {
    Job::new_one_shot_async(delay, run_job(runner))
}

fn repeating(
    runner: Arc<ProviderRunner>,
    frequency: &Frequency,
) -> Result<Option<Job>, JobSchedulerError> {
    match frequency {
        Frequency::Every(interval) => Job::new_repeated_async(*interval, run_job(runner)).map(Some),
        Frequency::Cron(expr) => {
            Job::new_async(Frequency::six_field_cron(expr).as_str(), run_job(runner)).map(Some)
        }
        Frequency::Manual => Ok(None),
    }
}
