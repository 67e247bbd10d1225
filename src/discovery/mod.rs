//! Discovery providers: one run lists what a Bitbucket has, reads the
//! catalog files and returns the entities plus a report of what it did.
//!
//! - [`server`]: the `catalog.providers.bitbucketServer` provider.
//! - [`pipeline`]: what every source does with a catalog file's bytes, and
//!   how a run's files become its entities and report.

pub mod pipeline;
pub mod server;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::Entity;
pub use crate::catalog::problem::{Problem, ProblemKind};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum Outcome {
    /// The listing completed; per-file problems may still be listed.
    Succeeded,
    /// The run produced nothing usable; the previous entities stay.
    Failed { error: String },
}

/// The account of one provider run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub provider: String,
    pub outcome: Outcome,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// RFC 3339, UTC; empty while running.
    #[serde(default)]
    pub finished_at: String,
    pub projects_seen: usize,
    pub repos_seen: usize,
    /// Repositories that passed the filters.
    pub repos_matched: usize,
    pub files_found: usize,
    pub entities: usize,
    pub problems: Vec<Problem>,
    /// Files read through Location entities' targets.
    pub location_files: usize,
    pub requests: u64,
    #[serde(rename = "durationMs", with = "millis")]
    pub duration: Duration,
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

pub use crate::catalog::problem::now_rfc3339;

impl RunReport {
    pub fn new(provider: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            outcome: Outcome::Succeeded,
            started_at: now_rfc3339(),
            finished_at: String::new(),
            projects_seen: 0,
            repos_seen: 0,
            repos_matched: 0,
            files_found: 0,
            entities: 0,
            problems: Vec::new(),
            location_files: 0,
            requests: 0,
            duration: Duration::ZERO,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.outcome == Outcome::Succeeded
    }

    /// One line for humans, e.g. the `run-once` summary.
    pub fn summary(&self) -> String {
        let outcome = match &self.outcome {
            Outcome::Succeeded => "ok".to_owned(),
            Outcome::Failed { error } => format!("FAILED: {error}"),
        };
        format!(
            "provider {}: {outcome}; {} projects, {} repos seen, {} matched filters, {} catalog files, {} entities, {} problems, {} requests, {} files via Location targets, {:.1}s",
            self.provider,
            self.projects_seen,
            self.repos_seen,
            self.repos_matched,
            self.files_found,
            self.entities,
            self.problems.len(),
            self.requests,
            self.location_files,
            self.duration.as_secs_f64()
        )
    }
}

/// A finished run: the report, and the entities when the run succeeded.
#[derive(Debug)]
pub struct RunResult {
    pub report: RunReport,
    pub entities: Option<Vec<Entity>>,
}
