//! Runs each source on its schedule (tokio-cron-scheduler), never twice at
//! once, cancelled past its timeout. Results are applied as they come, so
//! a cancelled run keeps what it read and the next continues from there;
//! only removals wait for a complete listing and the deletion guard.
//!
//! - [`runner`]: one source's runs; [`guard`]: the deletion guard;
//!   [`recorder`]: each run's report; [`apply`]: catalog + store, batch by batch.
//! - [`sweep`]: a provider's listing sweep (`listingSchedule`, Data Center).
//! - [`events`]: one provider's event queue and its single-repository
//!   reads; [`queue`]: the queue's model; [`resolve`]: what a queued item
//!   comes to against the records.
//!
//! Providers each have their own schedule. Locations (static and
//! registered) share `catalog.locationSchedule`: one job reads them all,
//! each still guarded, timed and recorded on its own. Registered locations
//! join and leave while the daemon runs.

pub(crate) mod apply;
mod events;
mod guard;
mod left;
mod queue;
mod recorder;
mod resolve;
mod runner;
mod sweep;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use uuid::Uuid;

pub use self::apply::Applier;
pub(crate) use self::guard::RemovalTally;
pub(crate) use self::left::{Departure, LeftProviders};
pub(crate) use self::queue::{Work, WorkItem};
pub(crate) use self::runner::{RefreshOutcome, SourceRunner};
use crate::config::{Frequency, Schedule};
use crate::discovery::Trigger;

/// Locations read at once per tick of the location schedule.
const LOCATION_CONCURRENCY: usize = 4;

#[derive(Debug, thiserror::Error)]
#[error("cannot schedule provider {provider}: {source}")]
pub struct SchedulerError {
    provider: String,
    source: JobSchedulerError,
}

type Runners = Arc<RwLock<Vec<Arc<SourceRunner>>>>;

/// Whether scheduled runs go ahead: always on a daemon of its own; among
/// replicas only on the leader (the others' ticks pass without a run).
#[derive(Debug, Clone)]
pub(crate) struct Gate(Arc<AtomicBool>);

impl Gate {
    pub(crate) fn new(open: bool) -> Self {
        Self(Arc::new(AtomicBool::new(open)))
    }

    pub(crate) fn is_open(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub(crate) fn set(&self, open: bool) {
        self.0.store(open, Ordering::Release);
    }
}

/// Owns the cron scheduler and the source runners.
pub(crate) struct Scheduler {
    jobs: JobScheduler,
    runners: Runners,
    /// The repeating job of each provider, for "next run" in the status.
    repeating_jobs: Mutex<HashMap<String, Uuid>>,
    /// The start-up run of each provider (after `initialDelay`), until it fires.
    start_up_jobs: Mutex<HashMap<String, Uuid>>,
    /// The listing sweep of each provider that has one.
    sweep_jobs: Mutex<HashMap<String, Uuid>>,
    /// The repeating job that reads every location.
    locations_job: Option<Uuid>,
    /// The start-up read of every location.
    locations_start_up: Option<Uuid>,
    gate: Gate,
    /// Whether locations are read at start-up (their schedule is not manual).
    locations_scheduled: bool,
    /// Providers that left the config with their removal held.
    left: Arc<LeftProviders>,
}

impl Scheduler {
    /// Registers one job per provider (plus the start-up run), one for all
    /// locations on `location_schedule` (plus theirs), and starts ticking.
    /// Runs go ahead only while `gate` is open.
    pub(crate) async fn start(
        runners: Vec<Arc<SourceRunner>>,
        location_schedule: &Schedule,
        gate: Gate,
        left: Arc<LeftProviders>,
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
        let mut start_up_jobs = HashMap::new();
        let mut sweep_jobs = HashMap::new();
        for runner in runners.iter().filter(|r| !r.is_location()) {
            let (start_up, repeating, sweep) =
                schedule_provider(&jobs, runner, &gate, true).await?;
            if let Some(id) = sweep {
                sweep_jobs.insert(runner.id().to_owned(), id);
            }
            if let Some(id) = start_up {
                start_up_jobs.insert(runner.id().to_owned(), id);
            }
            if let Some(id) = repeating {
                repeating_jobs.insert(runner.id().to_owned(), id);
            }
        }
        let runners: Runners = Arc::new(RwLock::new(runners));
        let err = wrap("catalog.locations");
        let mut locations_start_up = None;
        if location_schedule.frequency != Frequency::Manual {
            let start_up_delay = location_schedule.initial_delay.unwrap_or(Duration::ZERO);
            let job = Job::new_one_shot_async(
                start_up_delay,
                run_locations(Arc::clone(&runners), Trigger::StartUp, gate.clone()),
            );
            locations_start_up = Some(jobs.add(job.map_err(&err)?).await.map_err(&err)?);
        }
        let locations_job = match repeating(
            &location_schedule.frequency,
            run_locations(Arc::clone(&runners), Trigger::Schedule, gate.clone()),
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
            repeating_jobs: Mutex::new(repeating_jobs),
            start_up_jobs: Mutex::new(start_up_jobs),
            sweep_jobs: Mutex::new(sweep_jobs),
            locations_job,
            locations_start_up,
            gate,
            locations_scheduled: location_schedule.frequency != Frequency::Manual,
            left,
        })
    }

    /// Providers that left the config with their removal held.
    pub(crate) fn left(&self) -> &LeftProviders {
        &self.left
    }

    /// Schedules a provider added while the daemon runs (a reload): on its
    /// schedule, its first run after `initialDelay` when `start_up`.
    pub(crate) async fn add_provider(
        &self,
        runner: Arc<SourceRunner>,
        start_up: bool,
    ) -> Result<(), SchedulerError> {
        let (first, repeating, sweep) =
            schedule_provider(&self.jobs, &runner, &self.gate, start_up).await?;
        let id = runner.id().to_owned();
        if let Some(job) = sweep {
            self.sweep_jobs.lock().insert(id.clone(), job);
        }
        if let Some(job) = first {
            self.start_up_jobs.lock().insert(id.clone(), job);
        }
        if let Some(job) = repeating {
            self.repeating_jobs.lock().insert(id, job);
        }
        // Providers stay ahead of locations, as at start-up.
        let mut runners = self.runners.write();
        let at = runners
            .iter()
            .position(|r| r.is_location())
            .unwrap_or(runners.len());
        runners.insert(at, runner);
        Ok(())
    }

    /// Puts `runner` in the place of the provider with its id (a reload
    /// changed its settings): its jobs are made again, without a start-up
    /// run (the change applies from the next run).
    pub(crate) async fn replace_provider(
        &self,
        runner: Arc<SourceRunner>,
    ) -> Result<(), SchedulerError> {
        let id = runner.id().to_owned();
        self.unschedule(&id).await;
        let (_, repeating, sweep) =
            schedule_provider(&self.jobs, &runner, &self.gate, false).await?;
        if let Some(job) = sweep {
            self.sweep_jobs.lock().insert(id.clone(), job);
        }
        if let Some(job) = repeating {
            self.repeating_jobs.lock().insert(id.clone(), job);
        }
        let mut runners = self.runners.write();
        match runners.iter().position(|r| r.id() == id) {
            Some(at) => runners[at] = runner,
            None => runners.push(runner),
        }
        Ok(())
    }

    /// Whether this daemon runs schedules and changes what is stored.
    pub(crate) fn leading(&self) -> bool {
        self.gate.is_open()
    }

    async fn unschedule(&self, id: &str) {
        let jobs = [
            self.start_up_jobs.lock().remove(id),
            self.repeating_jobs.lock().remove(id),
            self.sweep_jobs.lock().remove(id),
        ];
        for job in jobs.into_iter().flatten() {
            if let Err(err) = self.jobs.remove(&job).await {
                tracing::warn!(provider = id, error = %err, "cannot unschedule a provider's job");
            }
        }
    }

    /// Takes a provider out of the schedule (a reload): its jobs go, its
    /// run in progress, if any, finishes.
    pub(crate) async fn remove_provider(&self, id: &str) -> Option<Arc<SourceRunner>> {
        self.unschedule(id).await;
        self.remove(id)
    }

    /// Opens the gate and starts the runs a daemon makes at start-up (those
    /// skipped while it was closed): a replica that has just become leader.
    /// Each run continues from what is stored (unchanged repositories are
    /// not read again).
    pub(crate) fn lead(&self) {
        self.gate.set(true);
        for runner in self.runners() {
            let scheduled = if runner.is_location() {
                self.locations_scheduled
            } else {
                runner.schedule().frequency != Frequency::Manual
            };
            if scheduled {
                tokio::spawn(async move {
                    runner.run_now(Trigger::Leadership).await;
                });
            }
        }
    }

    /// Every source's runner, providers first.
    pub(crate) fn runners(&self) -> Vec<Arc<SourceRunner>> {
        self.runners.read().clone()
    }

    /// The open pull requests' previews (shared by every runner).
    pub(crate) fn previews(&self) -> Arc<crate::checks::Previews> {
        self.runners
            .read()
            .first()
            .map(|r| Arc::clone(r.applier().previews()))
            .unwrap_or_default()
    }

    pub(crate) fn runner(&self, id: &str) -> Option<Arc<SourceRunner>> {
        self.runners.read().iter().find(|r| r.id() == id).cloned()
    }

    /// Adds a location's runner; the location schedule reads it from now on.
    pub(crate) fn add(&self, runner: Arc<SourceRunner>) {
        self.runners.write().push(runner);
    }

    /// Takes a runner out of the schedule (its run in progress, if any,
    /// finishes; see [`SourceRunner::retire`]).
    pub(crate) fn remove(&self, id: &str) -> Option<Arc<SourceRunner>> {
        let mut runners = self.runners.write();
        let index = runners.iter().position(|r| r.id() == id)?;
        Some(runners.remove(index))
    }

    /// When the source runs next by itself (RFC 3339): its start-up run
    /// while that waits for `initialDelay`, else its schedule's next tick.
    pub(crate) async fn next_run(&self, source: &str) -> Option<String> {
        let location = self.runner(source).is_some_and(|r| r.is_location());
        let (start_up, repeating) = if location {
            (self.locations_start_up, self.locations_job)
        } else {
            (
                self.start_up_jobs.lock().get(source).copied(),
                self.repeating_jobs.lock().get(source).copied(),
            )
        };
        let mut jobs = self.jobs.clone();
        let mut next = None;
        for id in [start_up, repeating].into_iter().flatten() {
            // A one-shot job that has fired has no next tick (or a past one).
            if let Ok(Some(tick)) = jobs.next_tick_for_job(id).await
                && tick >= chrono::Utc::now() - chrono::Duration::seconds(1)
            {
                next = Some(next.map_or(tick, |n: chrono::DateTime<chrono::Utc>| n.min(tick)));
            }
        }
        next.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }

    pub(crate) async fn shutdown(&self) {
        let mut jobs = self.jobs.clone();
        if let Err(err) = jobs.shutdown().await {
            tracing::warn!(error = %err, "scheduler did not shut down cleanly");
        }
    }
}

/// Adds `runner`'s jobs: its first run after `initialDelay` (when
/// `start_up`, unless manual), its repeating one and its listing sweep.
async fn schedule_provider(
    jobs: &JobScheduler,
    runner: &Arc<SourceRunner>,
    gate: &Gate,
    start_up: bool,
) -> Result<(Option<Uuid>, Option<Uuid>, Option<Uuid>), SchedulerError> {
    let schedule = runner.schedule().clone();
    let err = |source| SchedulerError {
        provider: runner.id().to_owned(),
        source,
    };
    let mut first = None;
    // `{trigger: manual}` runs only when asked, as in Backstage.
    if start_up && schedule.frequency != Frequency::Manual {
        let start_up_delay = schedule.initial_delay.unwrap_or(Duration::ZERO);
        let job = Job::new_one_shot_async(
            start_up_delay,
            run_job(
                Arc::clone(runner),
                ProviderJob::Run(Trigger::StartUp),
                gate.clone(),
            ),
        );
        first = Some(jobs.add(job.map_err(err)?).await.map_err(err)?);
    }
    let repeating = add_repeating(
        jobs,
        runner,
        gate,
        &schedule.frequency,
        ProviderJob::Run(Trigger::Schedule),
    )
    .await
    .map_err(err)?;
    let sweep = match crate::discovery::listing_sweep::schedule(runner.source()) {
        Some(listing) => add_repeating(jobs, runner, gate, &listing.frequency, ProviderJob::Sweep)
            .await
            .map_err(err)?,
        None => None,
    };
    Ok((first, repeating, sweep))
}

/// Adds `job` for `runner`, repeating at `frequency` (none when manual).
async fn add_repeating(
    jobs: &JobScheduler,
    runner: &Arc<SourceRunner>,
    gate: &Gate,
    frequency: &Frequency,
    job: ProviderJob,
) -> Result<Option<Uuid>, JobSchedulerError> {
    match repeating(frequency, run_job(Arc::clone(runner), job, gate.clone()))? {
        Some(job) => jobs.add(job).await.map(Some),
        None => Ok(None),
    }
}

/// What one of a provider's jobs does when it fires.
#[derive(Debug, Clone, Copy)]
enum ProviderJob {
    Run(Trigger),
    /// A listing sweep.
    Sweep,
}

type JobFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// `job` for `runner`, on the leader only.
fn run_job(
    runner: Arc<SourceRunner>,
    job: ProviderJob,
    gate: Gate,
) -> impl FnMut(Uuid, JobScheduler) -> JobFuture + Send + Sync + 'static {
    move |_, _| {
        let runner = Arc::clone(&runner);
        let open = gate.is_open();
        Box::pin(async move {
            if !open {
                return;
            }
            match job {
                ProviderJob::Run(trigger) => {
                    runner.run_now(trigger).await;
                }
                ProviderJob::Sweep => runner.sweep().await,
            }
        })
    }
}

/// Reads every location registered at the time of the tick.
fn run_locations(
    runners: Runners,
    trigger: Trigger,
    gate: Gate,
) -> impl FnMut(Uuid, JobScheduler) -> JobFuture + Send + Sync + 'static {
    move |_, _| {
        let open = gate.is_open();
        let locations: Vec<Arc<SourceRunner>> = runners
            .read()
            .iter()
            .filter(|r| open && r.is_location())
            .cloned()
            .collect();
        Box::pin(async move {
            futures::stream::iter(locations)
                .for_each_concurrent(LOCATION_CONCURRENCY, |runner| async move {
                    runner.run_now(trigger).await;
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
