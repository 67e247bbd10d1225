//! Which file URLs a reader may read beyond its integrations' hosts: a
//! provider's `targetScope` keeps Location targets and placeholders within
//! the discovered file's repository or the provider's filters. Why a URL is
//! refused is [`OutOfScope`] (in `refusal.rs`); nothing is requested for it.

use std::sync::Arc;

use super::file_url::FileUrl;
pub(crate) use super::refusal::{Excluded, OutOfScope};

/// Which file URLs a reader may read beyond its sites: `Err` says why not.
/// Providers use it to keep targets within their filters.
#[derive(Clone)]
pub(crate) struct Scope(Check);

#[derive(Clone)]
enum Check {
    /// Decides on the URL's text (and parses it itself).
    Url(Arc<UrlCheck>),
    /// Decides on the repository (owner, slug) the parsed URL names.
    Repository(Arc<RepositoryCheck>),
}

/// A URL → "why not" check.
type UrlCheck = dyn Fn(&str) -> Result<(), OutOfScope> + Send + Sync;
/// An (owner, slug) → "why not" check.
type RepositoryCheck = dyn Fn(&str, &str) -> Result<(), OutOfScope> + Send + Sync;

impl Scope {
    pub(crate) fn new(
        check: impl Fn(&str) -> Result<(), OutOfScope> + Send + Sync + 'static,
    ) -> Self {
        Self(Check::Url(Arc::new(check)))
    }

    /// A scope that decides by the file's repository: its owner (Server
    /// project key, `~USER` for a personal repository; Cloud workspace) and
    /// slug, taken from the URL the reader parsed already.
    #[expect(
        dead_code,
        reason = "discovery::pipeline::target_scope switches to it at merge"
    )]
    pub(crate) fn by_repository(
        check: impl Fn(&str, &str) -> Result<(), OutOfScope> + Send + Sync + 'static,
    ) -> Self {
        Self(Check::Repository(Arc::new(check)))
    }

    /// Whether `file` may be read.
    pub(crate) fn check(&self, file: &FileUrl) -> Result<(), OutOfScope> {
        match &self.0 {
            Check::Url(check) => check(file.as_str()),
            Check::Repository(check) => {
                let (owner, slug) = file.repository();
                check(owner, slug)
            }
        }
    }
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scope")
    }
}
