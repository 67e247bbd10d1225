//! `catalog`: the settings every provider shares (`catalog.rules`, see
//! [`super::rules`], and `catalog.processing`, see [`super::processing`])
//! and `catalog.changes`.

use std::sync::Arc;

use super::loose::Bounded;
use super::{ConfigError, Ctx};
use crate::catalog::process::ProcessingConfig;
use crate::catalog::rules::CatalogRules;

/// How discovered files are processed; shared by every provider.
#[derive(Debug, Clone, Default)]
pub struct CatalogSettings {
    pub rules: Arc<CatalogRules>,
    pub processing: Arc<ProcessingConfig>,
}

/// `catalog.changes.retainedRemovals`: how many removals the change feed
/// keeps; a follower whose cursor is older resynchronises (`410`).
pub(crate) const DEFAULT_RETAINED_REMOVALS: usize = 100_000;

impl Ctx<'_> {
    pub(super) fn catalog_settings(&mut self) -> Result<CatalogSettings, ConfigError> {
        let rules = match self.source.get("catalog.rules").filter(|v| !v.is_null()) {
            None => CatalogRules::default(),
            Some(value) => self.catalog_rules(value)?,
        };
        let processing = self.processing()?;
        Ok(CatalogSettings {
            rules: Arc::new(rules),
            processing: Arc::new(processing),
        })
    }

    /// `catalog.changes.retainedRemovals`.
    pub(super) fn retained_removals(&mut self) -> Result<usize, ConfigError> {
        let key = "catalog.changes.retainedRemovals";
        match self.source.get(key).filter(|v| !v.is_null()) {
            Some(value) => Ok(self.section::<Bounded<1, 100_000_000>>(key, value)?.0),
            None => Ok(DEFAULT_RETAINED_REMOVALS),
        }
    }
}
