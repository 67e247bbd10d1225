//! Which file URLs a reader may read beyond its integrations' hosts: a
//! provider's `targetScope` keeps Location targets and placeholders within
//! the discovered file's repository or the provider's filters. Why a URL is
//! refused is [`OutOfScope`] (in `refusal.rs`); nothing is requested for it.

use std::sync::Arc;

pub(crate) use super::refusal::{Excluded, OutOfScope};

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
