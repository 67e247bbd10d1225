//! Discovery providers: one run lists what a Bitbucket has, reads the
//! catalog files and returns the entities plus a report of what it did.
//!
//! - [`server`]: the `catalog.providers.bitbucketServer` provider.
//! - [`cloud`]: the `catalog.providers.bitbucketCloud` provider.
//! - [`location`]: one location given by URL (`catalog.locations` or
//!   registered over HTTP).
//! - [`Source`]: any of them, as the scheduler runs them.
//! - [`pipeline`]: what every source does with a catalog file's bytes, and
//!   how a run's files become its entities and report.

pub mod cloud;
pub mod location;
pub mod pipeline;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::catalog::problem::{Problem, ProblemKind};
use crate::catalog::{Entity, PreparedEntity};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "status"
)]
pub enum Outcome {
    /// The listing completed; per-file problems may still be listed.
    Succeeded,
    /// The run produced nothing usable; the previous entities stay.
    Failed { error: String },
    /// The listing completed but would have removed more entities than the
    /// provider's `deletionThreshold` allows; the previous entities stay
    /// until a run with `force=true` (or a smaller change) applies.
    Held {
        message: String,
        would_remove: usize,
        of: usize,
    },
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
    /// Files that could not be read this run whose previous entities were kept.
    #[serde(default)]
    pub stale: Vec<String>,
    /// Files read through Location entities' targets.
    pub location_files: usize,
    /// What the operator should know about how the run went, e.g. that code
    /// search is not enabled and the run fell back to listing repositories.
    #[serde(default)]
    pub notices: Vec<String>,
    /// Requests sent, retries and 429s included.
    pub requests: u64,
    /// Requests that were repeats of a failed one.
    #[serde(default)]
    pub retries: u64,
    /// 429 answers (each waited out).
    #[serde(default)]
    pub rate_limited: u64,
    /// Response body bytes read.
    #[serde(default)]
    pub bytes: u64,
    /// Endpoint kind → status (or `error`) → requests.
    #[serde(default)]
    pub requests_by_endpoint:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
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
            stale: Vec::new(),
            location_files: 0,
            notices: Vec::new(),
            requests: 0,
            retries: 0,
            rate_limited: 0,
            bytes: 0,
            requests_by_endpoint: std::collections::BTreeMap::new(),
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
            Outcome::Held { message, .. } => format!("HELD: {message}"),
        };
        let notices: String = self
            .notices
            .iter()
            .map(|n| format!("; note: {n}"))
            .collect();
        format!(
            "provider {}: {outcome}; {} projects, {} repos seen, {} matched filters, {} catalog files, {} entities, {} problems, {} requests, {} files via Location targets, {:.1}s{notices}",
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

/// A source's current entities grouped by the file they came from (their
/// `managed-by-origin-location`), so a file that cannot be read this run can
/// keep what it gave last time.
#[derive(Debug, Default)]
pub struct PreviousEntities {
    /// Rendered, so a run costs nothing here unless a read actually fails.
    by_origin: std::collections::HashMap<String, Vec<Arc<PreparedEntity>>>,
}

impl PreviousEntities {
    pub fn new(served: impl IntoIterator<Item = Arc<PreparedEntity>>) -> Self {
        let mut by_origin: std::collections::HashMap<String, Vec<Arc<PreparedEntity>>> =
            std::collections::HashMap::new();
        for entity in served {
            if let Some(origin) = entity.origin.clone() {
                by_origin.entry(origin).or_default().push(entity);
            }
        }
        Self { by_origin }
    }

    /// The entities last read from `url` (and the files its Locations reached).
    pub fn from_file(&self, url: &str) -> Vec<Entity> {
        self.by_origin
            .get(url)
            .map(|served| {
                served
                    .iter()
                    .filter_map(|e| serde_json::from_str(&e.json).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A finished run: the report, and the entities when the run succeeded.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub report: RunReport,
    pub entities: Option<Vec<Entity>>,
    /// Every repository that passed the filters, when the listing completed.
    pub repositories: Option<Vec<RepositoryCatalog>>,
}

/// A repository that passed the filters, and whether it has a catalog file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryCatalog {
    pub project: String,
    pub slug: String,
    /// The repository's web URL.
    pub url: String,
    /// `Some(true)`: has a catalog file; `Some(false)`: none (404);
    /// `None`: the read failed, so nobody knows.
    #[serde(skip)]
    pub catalog: Option<bool>,
}

/// Anything that contributes entities on a schedule: a provider, or a
/// location given by URL. The scheduler runs them all the same way.
#[derive(Debug, Clone)]
pub enum Source {
    Server(server::ServerProvider),
    Cloud(cloud::CloudProvider),
    Location(location::LocationSource),
}

impl Source {
    /// The source id: the provider id, or `location:<location id>`.
    pub fn id(&self) -> &str {
        match self {
            Source::Server(p) => p.id(),
            Source::Cloud(p) => p.id(),
            Source::Location(l) => l.source_id(),
        }
    }

    /// `type` in the provider status.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Server(_) => "bitbucketServer",
            Source::Cloud(_) => "bitbucketCloud",
            Source::Location(_) => "location",
        }
    }

    /// What it reads: the Server host, the Cloud workspace or the location's URL.
    pub fn target(&self) -> &str {
        match self {
            Source::Server(p) => &p.config().host,
            Source::Cloud(p) => &p.config().workspace,
            Source::Location(l) => l.target(),
        }
    }

    pub fn schedule(&self) -> &crate::config::Schedule {
        match self {
            Source::Server(p) => &p.config().schedule,
            Source::Cloud(p) => &p.config().schedule,
            Source::Location(l) => l.schedule(),
        }
    }

    pub fn as_location(&self) -> Option<&location::LocationSource> {
        match self {
            Source::Location(l) => Some(l),
            _ => None,
        }
    }

    /// `previous`: what the source serves now, so a file that cannot be
    /// read this run keeps its entities (Server providers).
    pub async fn run(&self, previous: &PreviousEntities) -> RunResult {
        match self {
            Source::Server(p) => p.run(previous).await,
            Source::Cloud(p) => p.run(previous).await,
            Source::Location(l) => l.run().await,
        }
    }

    /// How much one run may remove before it is held.
    pub fn deletion_guard(&self) -> crate::config::DeletionGuard {
        match self {
            Source::Server(p) => p.config().deletion_guard,
            Source::Cloud(_) | Source::Location(_) => crate::config::DeletionGuard::default(),
        }
    }
}
