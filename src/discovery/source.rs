//! Any source of entities, as the scheduler runs it.

use std::sync::Arc;

use super::{RunContext, RunReport, cloud, location, provider, server};
use crate::config::{DeletionGuard, Schedule};
use crate::integrations::Product;

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
