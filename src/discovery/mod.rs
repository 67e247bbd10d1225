//! Discovery: sources list what a Bitbucket has, read catalog files and
//! hand each repository's result to a [`RunSink`] as it comes, with a
//! report of what the run did.
//!
//! - [`provider`]: the one provider pipeline (list → filter → plan → read →
//!   process → apply) over a [`provider::Flavour`]: [`server`] for
//!   `catalog.providers.bitbucketServer`, [`cloud`] for `bitbucketCloud`.
//! - [`plan`]: which repositories a run reads, in which order.
//! - [`progress`]: what a run has done so far, for the status API.
//! - [`location`]: one location given by URL (`catalog.locations` or
//!   registered over HTTP).
//! - [`pipeline`]: what every source does with a catalog file's bytes.
//! - [`report`]: the account of one run.
//! - `hooks`: the webhooks a provider's `webhooks.url` asks for.
//! - [`Source`]: any of them, as the scheduler runs them.

pub(crate) mod cloud;
mod hooks;
pub(crate) mod location;
pub(crate) mod pipeline;
pub(crate) mod plan;
pub(crate) mod progress;
pub(crate) mod provider;
pub(crate) mod report;
pub(crate) mod server;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub(crate) use self::progress::Progress;
pub use self::report::RunReport;
pub(crate) use self::report::{Outcome, Trigger, now_rfc3339};
use crate::bitbucket::RequestStats;
use crate::catalog::Entity;
pub(crate) use crate::catalog::problem::{Problem, ProblemKind};
use crate::config::{DeletionGuard, Schedule};
use crate::integrations::Product;

/// Whether a repository has a catalog file, as its last read said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CatalogFile {
    /// Listed, not read yet.
    Unknown,
    Present,
    /// The file does not exist (404).
    Missing,
    /// The last read failed; what it gave before stays served.
    Unreadable,
}

/// What is kept about one repository of a provider: the unit of state and
/// of change. Its entities are kept under `catalog_url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryRecord {
    pub project: String,
    pub slug: String,
    /// The repository's web URL.
    pub url: String,
    /// Bitbucket's id for it (Server: the numeric id, Cloud: the UUID),
    /// when the listing carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The catalog file's web URL: the entities' location, and the unit
    /// they are kept under.
    pub catalog_url: String,
    /// The branch the file is read from, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub catalog: CatalogFile,
    /// What the file was at when last processed (Cloud: the commit code
    /// search found; Server: a hash of the content), with the settings it
    /// was processed under. `None`: read it again next time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_token: Option<String>,
    /// When the file was last read (RFC 3339); `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
    /// Entities served from it.
    #[serde(default)]
    pub entities: usize,
    /// What the last read of the file found wrong.
    #[serde(default)]
    pub problems: Vec<Problem>,
}

/// A read's result for one unit, to apply: the record to keep and, when
/// the file was processed, the unit's whole new entity set (`None` keeps
/// what is served: unchanged or unreadable).
#[derive(Debug, Clone)]
pub struct UnitUpdate {
    pub unit: String,
    pub record: Option<RepositoryRecord>,
    pub entities: Option<Vec<Entity>>,
}

impl UnitUpdate {
    /// Drops everything `unit` serves.
    pub fn removal(unit: &str) -> Self {
        Self {
            unit: unit.to_owned(),
            record: None,
            entities: Some(Vec::new()),
        }
    }
}

/// The deletion guard held back removals a complete listing asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    pub message: String,
    pub would_remove: usize,
    pub of: usize,
}

/// Where a run's results go as they come: served and persisted batch by
/// batch (the scheduler's), or collected (`run-once`).
pub(crate) trait RunSink: Send + Sync {
    /// Applies read results; returns what applying them found wrong
    /// (entities another unit already serves). Once it returns, the
    /// results are served and kept even if the run is then cancelled.
    fn apply(&self, updates: Vec<UnitUpdate>) -> BoxFuture<'_, Vec<Problem>>;

    /// Given every unit a complete listing has, drops the units the source
    /// serves that are not among them, unless the deletion guard holds them.
    fn reconcile(&self, listed: HashSet<String>) -> BoxFuture<'_, Result<(), Held>>;
}

/// What one run works with.
pub(crate) struct RunContext<'a> {
    pub stats: Arc<RequestStats>,
    pub progress: Arc<Progress>,
    /// What earlier runs recorded about each repository, by unit.
    pub known: HashMap<String, RepositoryRecord>,
    pub sink: &'a dyn RunSink,
    /// Cancelled when the run must end (its timeout): no new read starts,
    /// what was read is applied, and the run returns once the reads under
    /// way are done.
    pub stop: CancellationToken,
}

/// Anything that contributes entities on a schedule: a provider, or a
/// location given by URL. The scheduler runs them all the same way. Its
/// name is its `type` in the status ([`Source::kind`]).
#[derive(Debug, Clone, strum::IntoStaticStr)]
#[strum(serialize_all = "camelCase")]
pub(crate) enum Source {
    #[strum(serialize = "bitbucketServer")]
    Server(provider::Provider<server::ServerFlavour>),
    #[strum(serialize = "bitbucketCloud")]
    Cloud(provider::Provider<cloud::CloudFlavour>),
    Location(location::LocationSource),
}

impl Source {
    /// The source id: the provider id, or `location:<location id>`.
    pub(crate) fn id(&self) -> &str {
        match self {
            Source::Server(p) => p.id(),
            Source::Cloud(p) => p.id(),
            Source::Location(l) => l.source_id(),
        }
    }

    /// `type` in the provider status.
    pub(crate) fn kind(&self) -> &'static str {
        self.into()
    }

    /// The Bitbucket a provider reads; `None` for a location.
    pub(crate) fn product(&self) -> Option<Product> {
        match self {
            Source::Server(_) => Some(Product::Server),
            Source::Cloud(_) => Some(Product::Cloud),
            Source::Location(_) => None,
        }
    }

    /// What it reads: the Server host, the Cloud workspace or the location's URL.
    pub(crate) fn target(&self) -> &str {
        match self {
            Source::Server(p) => p.target(),
            Source::Cloud(p) => p.target(),
            Source::Location(l) => l.target(),
        }
    }

    pub(crate) fn schedule(&self) -> &Schedule {
        match self {
            Source::Server(p) => p.schedule(),
            Source::Cloud(p) => p.schedule(),
            Source::Location(l) => l.schedule(),
        }
    }

    pub(crate) fn as_location(&self) -> Option<&location::LocationSource> {
        match self {
            Source::Location(l) => Some(l),
            _ => None,
        }
    }

    /// Whether it keeps per-repository records (providers do).
    pub(crate) fn lists_repositories(&self) -> bool {
        !matches!(self, Source::Location(_))
    }

    /// Runs once, handing results to `ctx.sink` as they come.
    pub(crate) async fn run(&self, ctx: &RunContext<'_>) -> RunReport {
        match self {
            Source::Server(p) => p.run(ctx).await,
            Source::Cloud(p) => p.run(ctx).await,
            Source::Location(l) => l.run(ctx).await,
        }
    }

    /// Single-repository reads, for providers.
    pub(crate) fn repository_reads(&self) -> Option<&dyn provider::RepositoryReads> {
        match self {
            Source::Server(p) => Some(p),
            Source::Cloud(p) => Some(p),
            Source::Location(_) => None,
        }
    }

    /// As [`Self::repository_reads`], to keep beside the source.
    pub(crate) fn shared_reads(&self) -> Option<Arc<dyn provider::RepositoryReads>> {
        match self {
            Source::Server(p) => Some(Arc::new(p.clone())),
            Source::Cloud(p) => Some(Arc::new(p.clone())),
            Source::Location(_) => None,
        }
    }

    /// How much one run may remove before it is held.
    pub(crate) fn deletion_guard(&self) -> DeletionGuard {
        match self {
            Source::Server(p) => p.deletion_guard(),
            Source::Cloud(p) => p.deletion_guard(),
            Source::Location(_) => DeletionGuard::default(),
        }
    }
}
