//! Runs each provider on its schedule (tokio-cron-scheduler), never twice at
//! once, cancelled past its timeout, and applies successful runs to the
//! catalog. A failed or timed-out run leaves the provider's entities as they were.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::config::{Frequency, Schedule};
use crate::discovery::server::ServerProvider;
use crate::discovery::{Outcome, Problem, ProblemKind, RunReport};

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
    running: tokio::sync::Mutex<()>,
    last_report: Mutex<Option<RunReport>>,
    shutdown: CancellationToken,
}

impl ProviderRunner {
    pub fn new(
        provider: ServerProvider,
        catalog: Arc<Catalog>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            provider,
            catalog,
            running: tokio::sync::Mutex::new(()),
            last_report: Mutex::new(None),
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

    /// Runs now unless a run is already in progress (then returns `None`).
    pub async fn run_now(&self) -> Option<RunReport> {
        let Ok(_guard) = self.running.try_lock() else {
            tracing::info!(
                provider = self.id(),
                "previous run still in progress; skipping this tick"
            );
            return None;
        };
        let timeout = self.schedule().timeout;
        tracing::info!(provider = self.id(), "discovery run started");
        let outcome = tokio::select! {
            result = tokio::time::timeout(timeout, self.provider.run()) => result.ok(),
            () = self.shutdown.cancelled() => {
                tracing::info!(provider = self.id(), "discovery run cancelled by shutdown");
                return None;
            }
        };
        let report = match outcome {
            Some(result) => {
                if let Some(entities) = result.entities {
                    let locations: std::collections::HashMap<String, String> = entities
                        .iter()
                        .map(|e| (e.entity_ref(), location_url(e)))
                        .collect();
                    let conflicts = self.catalog.replace_source(self.id(), entities);
                    let mut report = result.report;
                    report.entities -= conflicts.len();
                    report.problems.extend(conflicts.into_iter().map(|c| {
                        Problem::new(
                            locations.get(&c.entity_ref).cloned().unwrap_or_default(),
                            ProblemKind::Conflict,
                            format!(
                                "entity {} is already provided by {}; this copy is ignored",
                                c.entity_ref, c.owner
                            ),
                        )
                        .for_entity(c.entity_ref)
                    }));
                    report
                } else {
                    result.report
                }
            }
            None => {
                let mut report = RunReport::new(self.id());
                report.outcome = Outcome::Failed {
                    error: format!(
                        "run exceeded its timeout of {}s and was cancelled; previous entities are kept (raise schedule.timeout)",
                        timeout.as_secs()
                    ),
                };
                report.duration = timeout;
                report.finished_at = crate::catalog::problem::now_rfc3339();
                report
            }
        };
        match &report.outcome {
            Outcome::Succeeded => tracing::info!(
                provider = self.id(),
                repos = report.repos_matched,
                files = report.files_found,
                entities = report.entities,
                problems = report.problems.len(),
                requests = report.requests,
                duration_ms = report.duration.as_millis() as u64,
                "discovery run succeeded"
            ),
            Outcome::Failed { error } => tracing::warn!(
                provider = self.id(),
                error,
                "discovery run failed; previous entities kept"
            ),
        }
        for problem in &report.problems {
            tracing::warn!(provider = self.id(), url = problem.url, document = problem.document, entity = problem.entity_ref, kind = ?problem.kind, "{}", problem.message);
        }
        *self.last_report.lock() = Some(report.clone());
        Some(report)
    }
}

/// The file an entity was read from (its `managed-by-location`, without `url:`).
fn location_url(entity: &crate::catalog::Entity) -> String {
    entity
        .metadata
        .annotations
        .get(crate::catalog::entity::ANNOTATION_LOCATION)
        .map(|l| l.strip_prefix("url:").unwrap_or(l).to_owned())
        .unwrap_or_default()
}

/// Owns the cron scheduler and the provider runners.
pub struct Scheduler {
    jobs: JobScheduler,
    runners: Vec<Arc<ProviderRunner>>,
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
        for runner in &runners {
            let schedule = runner.schedule().clone();
            let err = wrap(runner.id());
            let start_up_delay = schedule.initial_delay.unwrap_or(Duration::ZERO);
            jobs.add(one_shot(Arc::clone(runner), start_up_delay).map_err(&err)?)
                .await
                .map_err(&err)?;
            if let Some(job) = repeating(Arc::clone(runner), &schedule.frequency).map_err(&err)? {
                jobs.add(job).await.map_err(&err)?;
            }
        }
        jobs.start().await.map_err(wrap("*"))?;
        Ok(Self { jobs, runners })
    }

    pub fn runners(&self) -> &[Arc<ProviderRunner>] {
        &self.runners
    }

    pub async fn shutdown(mut self) {
        if let Err(err) = self.jobs.shutdown().await {
            tracing::warn!(error = %err, "scheduler did not shut down cleanly");
        }
    }
}

fn one_shot(runner: Arc<ProviderRunner>, delay: Duration) -> Result<Job, JobSchedulerError> {
    Job::new_one_shot_async(delay, move |_, _| {
        let runner = Arc::clone(&runner);
        Box::pin(async move {
            runner.run_now().await;
        })
    })
}

fn repeating(
    runner: Arc<ProviderRunner>,
    frequency: &Frequency,
) -> Result<Option<Job>, JobSchedulerError> {
    let run = move |_, _| {
        let runner = Arc::clone(&runner);
        Box::pin(async move {
            runner.run_now().await;
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
    };
    match frequency {
        Frequency::Every(interval) => Job::new_repeated_async(*interval, run).map(Some),
        Frequency::Cron(expr) => {
            Job::new_async(Frequency::six_field_cron(expr).as_str(), run).map(Some)
        }
        Frequency::Manual => Ok(None),
    }
}
