//! Which file URLs a reader may read beyond its integrations' hosts: a
//! provider's `targetScope` keeps Location targets and placeholders within
//! the discovered file's repository or the provider's filters. Why a URL is
//! refused is [`OutOfScope`] (in `refusal.rs`); nothing is requested for it.

use std::sync::Arc;

use super::file_url::FileUrl;
use super::refusal::OutOfScope;

/// Which file URLs a reader may read beyond its sites: `Err` says why not.
/// Providers use it to keep targets within their filters. It decides by the
/// file's repository: its owner (Server project key, `~USER` for a personal
/// repository; Cloud workspace) and slug, taken from the URL the reader
/// parsed already.
#[derive(Clone)]
pub(crate) struct Scope(Arc<RepositoryCheck>);

/// An (owner, slug) → "why not" check.
type RepositoryCheck = dyn Fn(&str, &str) -> Result<(), OutOfScope> + Send + Sync;

impl Scope {
    pub(crate) fn by_repository(
        check: impl Fn(&str, &str) -> Result<(), OutOfScope> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(check))
    }

    /// Whether `file` may be read.
    pub(crate) fn check(&self, file: &FileUrl) -> Result<(), OutOfScope> {
        let (owner, slug) = file.repository();
        (self.0)(owner, slug)
    }
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scope")
    }
}
