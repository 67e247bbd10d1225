//! Which file URLs a reader may read beyond its integrations' hosts: a
//! provider's `targetScope` keeps Location targets and placeholders within
//! the discovered file's repository or the provider's filters. [`OutOfScope`]
//! says why a URL is refused; nothing is requested for it.

use std::sync::Arc;

use super::urls::UrlError;

/// Why a file URL is outside a reader's [`Scope`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OutOfScope {
    /// Not a file URL of the provider's kind, so its repository is unknown.
    #[error(transparent)]
    NotAFile(Box<UrlError>),
    #[error(
        "it is in repository {owner}/{slug}, not the discovered file's; set {key}.targetScope: filters to follow targets into repositories this provider's filters match (or any, for any repository)"
    )]
    OtherRepository {
        owner: String,
        slug: String,
        key: String,
    },
    #[error("repository {owner}/{slug} is outside {key}: {why}")]
    Excluded {
        owner: String,
        slug: String,
        key: String,
        why: Excluded,
    },
}

impl From<UrlError> for OutOfScope {
    fn from(err: UrlError) -> Self {
        Self::NotAFile(Box::new(err))
    }
}

/// Why a provider's filters leave a target's repository out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Excluded {
    #[error("its filters exclude it")]
    Filters,
    #[error("it is not in workspace {0}")]
    OtherWorkspace(String),
    /// A Cloud file URL does not say the repository's project.
    #[error(
        "its projectKey filter cannot be checked from a file URL, so only the discovered file's repository is followed"
    )]
    ProjectUnknown,
    #[error("its repoSlug filter excludes it")]
    RepoSlug,
}

/// Which file URLs a reader may read beyond its sites: `Err` says why not.
/// Providers use it to keep targets within their filters.
#[derive(Clone)]
pub(crate) struct Scope(Arc<ScopeCheck>);

/// A URL → "why not" check.
type ScopeCheck = dyn Fn(&str) -> Result<(), OutOfScope> + Send + Sync;

impl Scope {
    pub(crate) fn new(
        check: impl Fn(&str) -> Result<(), OutOfScope> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(check))
    }

    /// Whether `url` may be read.
    pub(crate) fn check(&self, url: &str) -> Result<(), OutOfScope> {
        (self.0)(url)
    }
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scope")
    }
}
