//! Keeps, logs, persists and counts each run's report.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::discovery::{Outcome, RepositoryRecord, RunReport};
use crate::metrics;
use crate::store::CatalogStore;

/// How a provider's repositories stand, from their records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RepositoryCounts {
    pub total: usize,
    pub with_catalog: usize,
    pub without_catalog: usize,
    pub unknown: usize,
}

impl RepositoryCounts {
    pub(crate) fn of(records: &[RepositoryRecord]) -> Self {
        use crate::discovery::CatalogFile;
        let count = |wanted: CatalogFile| records.iter().filter(|r| r.catalog == wanted).count();
        let with_catalog = count(CatalogFile::Present);
        let without_catalog = count(CatalogFile::Missing);
        Self {
            total: records.len(),
            with_catalog,
            without_catalog,
            unknown: records.len() - with_catalog - without_catalog,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Recorder {
    last_report: Mutex<Option<RunReport>>,
    repositories: Mutex<Option<RepositoryCounts>>,
    /// The problems of the last run (as hashes): a problem is logged at
    /// WARN when it first appears, at DEBUG while it stays.
    problems_seen: Mutex<HashSet<u64>>,
    /// Moves on each report or count kept, so the status page can tell
    /// cheaply whether it needs building again.
    generation: AtomicU64,
}

impl Recorder {
    pub(super) fn last_report(&self) -> Option<RunReport> {
        self.last_report.lock().clone()
    }

    /// The last run recorded before a restart.
    pub(super) fn restore(&self, report: RunReport) {
        if report.succeeded()
            && let Some(finished) = report.finished_at
        {
            metrics::record_last_success(&report.provider, finished.timestamp() as f64);
        }
        *self.last_report.lock() = Some(report);
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Changes whenever a report or the repository counts are kept.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    pub(super) fn repositories(&self) -> Option<RepositoryCounts> {
        *self.repositories.lock()
    }

    pub(super) fn set_repositories(&self, source: &str, counts: RepositoryCounts) {
        metrics::record_repositories(
            source,
            counts.with_catalog,
            counts.without_catalog,
            counts.unknown,
        );
        *self.repositories.lock() = Some(counts);
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps `report` as the source's last run: persisted, logged, counted.
    pub(super) async fn record(&self, store: &dyn CatalogStore, report: RunReport) -> RunReport {
        if let Err(err) = store.save_run(&report.provider, &report).await {
            tracing::error!(provider = report.provider, error = %err, "cannot record the run");
        }
        log(&report);
        self.log_problems(&report);
        let outcome: &'static str = (&report.outcome).into();
        if report.succeeded() {
            metrics::record_last_success(&report.provider, chrono::Utc::now().timestamp() as f64);
        }
        metrics::record_run(
            &report.provider,
            outcome,
            report.duration,
            report.entities,
            report.problems.len(),
        );
        *self.last_report.lock() = Some(report.clone());
        self.generation.fetch_add(1, Ordering::Relaxed);
        report
    }

    /// New problems at WARN, known ones at DEBUG, then one line that says
    /// how many files have problems and where to read them all: a
    /// catalog's standing problems never bury the alerts.
    fn log_problems(&self, report: &RunReport) {
        let provider = report.provider.as_str();
        let current: HashSet<u64> = report.problems.iter().map(problem_hash).collect();
        let mut seen = self.problems_seen.lock();
        let mut new = 0;
        for problem in &report.problems {
            let fresh = !seen.contains(&problem_hash(problem));
            new += usize::from(fresh);
            macro_rules! problem_event {
                ($level:expr) => {
                    tracing::event!($level, provider, url = problem.url, document = problem.document, entity = problem.entity_ref, kind = ?problem.kind, "{}", problem.message)
                };
            }
            if fresh {
                problem_event!(tracing::Level::WARN);
            } else {
                problem_event!(tracing::Level::DEBUG);
            }
        }
        *seen = current;
        drop(seen);
        if report.problems.is_empty() {
            return;
        }
        let files: HashSet<&str> = report.problems.iter().map(|p| p.url.as_str()).collect();
        tracing::info!(
            provider,
            files = files.len(),
            problems = report.problems.len(),
            new,
            "{} file(s) have problems ({new} new this run): GET /api/catalog/providers/{provider}/errors",
            files.len(),
        );
    }
}

fn problem_hash(problem: &crate::discovery::Problem) -> u64 {
    let mut hasher = DefaultHasher::new();
    (
        &problem.url,
        problem.document,
        &problem.entity_ref,
        problem.kind as u8,
        &problem.message,
    )
        .hash(&mut hasher);
    hasher.finish()
}

fn log(report: &RunReport) {
    let provider = report.provider.as_str();
    match &report.outcome {
        Outcome::Succeeded => tracing::info!(
            provider,
            repos = report.repos_matched,
            read = report.repos_read,
            unchanged = report.repos_unchanged,
            files = report.files_found,
            entities = report.entities,
            problems = report.problems.len(),
            requests = report.requests,
            duration_ms = u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
            "discovery run succeeded"
        ),
        Outcome::Failed { error } => tracing::warn!(
            provider,
            error,
            requests = report.requests,
            rate_limited = report.rate_limited,
            "discovery run failed"
        ),
        Outcome::Incomplete { message, .. } => tracing::info!(
            provider,
            requests = report.requests,
            rate_limited = report.rate_limited,
            "{message}"
        ),
        Outcome::Held { message, .. } => tracing::warn!(provider, "{message}"),
    }
}
