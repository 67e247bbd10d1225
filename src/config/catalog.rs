//! `catalog`: the settings every provider shares (`catalog.rules`, see
//! [`super::rules`], and `catalog.processing`, see [`super::processing`])
//! and `catalog.changes`.

use std::sync::Arc;

use super::loose::Bounded;
use super::{ConfigError, Ctx};
use super::{processing, rules};
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

pub(super) fn catalog_settings(ctx: &mut Ctx<'_>) -> Result<CatalogSettings, ConfigError> {
    let rules = match ctx.set("catalog.rules") {
        None => CatalogRules::default(),
        Some(value) => rules::catalog_rules(ctx, value)?,
    };
    let processing = processing::processing(ctx)?;
    Ok(CatalogSettings {
        rules: Arc::new(rules),
        processing: Arc::new(processing),
    })
}

/// `catalog.changes.retainedRemovals`.
pub(super) fn retained_removals(ctx: &mut Ctx<'_>) -> Result<usize, ConfigError> {
    let key = "catalog.changes.retainedRemovals";
    let retained = ctx.optional::<Bounded<1, 100_000_000>>(key)?;
    Ok(retained.map_or(DEFAULT_RETAINED_REMOVALS, |n| n.0))
}
