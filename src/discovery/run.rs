//! What a run works with and where its results go.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::{Problem, Progress, RepositoryRecord, UnitUpdate};
use crate::bitbucket::RequestStats;
use crate::catalog::ProcessedEntity;

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

    /// The entities `unit` serves now, to apply it again with only some of
    /// its files read; `None` when not known (then every file is read).
    fn unit_entities(&self, _unit: &str) -> Option<Vec<ProcessedEntity>> {
        None
    }
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
