//! Providers that left the config (a missing `--config` layer, an edit
//! picked up by a reload). Dropping a whole provider's entities is a
//! removal like any other: the deletion guard decides, and a held one
//! keeps serving until an operator confirms it with
//! `POST /api/catalog/providers/{id}/refresh?force=true` (or puts the
//! provider back).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::apply::Applier;
use crate::catalog::Catalog;
use crate::config::DeletionGuard;
use crate::metrics;

/// The providers whose removal is held, with the entities they served.
#[derive(Debug)]
pub(crate) struct LeftProviders {
    catalog: Arc<Catalog>,
    applier: Arc<Applier>,
    held: Mutex<BTreeMap<String, usize>>,
}

/// What became of a provider that left the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Departure {
    /// Small enough for the guard: its entities go now.
    Removed,
    /// Its entities stay served until confirmed.
    Held,
}

impl LeftProviders {
    pub(crate) fn new(catalog: Arc<Catalog>, applier: Arc<Applier>) -> Self {
        Self {
            catalog,
            applier,
            held: Mutex::default(),
        }
    }

    /// Decides (and says, loudly) what becomes of `provider`, which serves
    /// `entities` and is no longer configured. The caller removes a
    /// [`Departure::Removed`] one.
    pub(crate) fn leave(
        &self,
        provider: &str,
        entities: usize,
        limits: DeletionGuard,
    ) -> Departure {
        if limits.holds(entities, entities) {
            metrics::record_held(provider);
            self.held.lock().insert(provider.to_owned(), entities);
            tracing::warn!(
                provider,
                entities,
                "provider {provider} is no longer configured: the deletion guard holds the removal of its {entities} entities, which stay served (with its repository records); if the removal is intended, POST /api/catalog/providers/{provider}/refresh?force=true, else put the provider back in the config"
            );
            return Departure::Held;
        }
        tracing::warn!(
            provider,
            entities,
            "provider {provider} is no longer configured: removing its {entities} entities (fewer than the deletion guard's minimum of {})",
            limits.min_entities
        );
        Departure::Removed
    }

    /// The provider is configured again: nothing is held for it.
    pub(crate) fn returned(&self, provider: &str) {
        if self.held.lock().remove(provider).is_some() {
            tracing::info!(
                provider,
                "provider {provider} is configured again; its held removal is dropped"
            );
        }
    }

    pub(crate) fn is_held(&self, provider: &str) -> bool {
        self.held.lock().contains_key(provider)
    }

    /// Removes what `provider` serves (entities and repository records)
    /// through the applier, so the change feed reports each removal.
    pub(crate) async fn remove(&self, provider: &str) -> usize {
        let removed = self.catalog.source_len(provider);
        for problem in self.applier.remove_source(provider).await {
            tracing::error!(provider, "{}", problem.message);
        }
        removed
    }

    /// The operator confirmed the held removal of `provider`: its entities
    /// go. `None`: nothing is held for it.
    pub(crate) async fn confirm(&self, provider: &str) -> Option<usize> {
        self.held.lock().remove(provider)?;
        let removed = self.remove(provider).await;
        tracing::warn!(
            provider,
            removed,
            "held removal of provider {provider} confirmed (force=true): {removed} entities removed"
        );
        Some(removed)
    }
}
