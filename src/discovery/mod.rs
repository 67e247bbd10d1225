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
//! - `record`: what is kept per repository ([`RepositoryRecord`]) and
//!   what a read hands over ([`UnitUpdate`]); `run`: what a run works with
//!   ([`RunContext`]) and where its results go ([`RunSink`]).
//! - [`Source`]: any of them, as the scheduler runs them.

pub(crate) mod cloud;
mod hooks;
pub(crate) mod location;
pub(crate) mod pipeline;
pub(crate) mod plan;
pub(crate) mod progress;
pub(crate) mod provider;
mod record;
pub(crate) mod report;
pub(crate) mod rfc3339;
mod run;
pub(crate) mod server;

use std::sync::Arc;

pub(crate) use self::progress::Progress;
pub use self::record::UnitUpdate;
pub(crate) use self::record::{CatalogFile, RepositoryRecord};
pub use self::report::RunReport;
pub(crate) use self::report::{Outcome, Trigger};
pub(crate) use self::rfc3339::now_rfc3339;
pub(crate) use self::run::{Held, RunContext, RunSink};
pub(crate) use crate::catalog::problem::{Problem, ProblemKind};
use crate::config::{DeletionGuard, Schedule};
use crate::integrations::Product;
pub(crate) use crate::integrations::RepoRef;

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
