//! Applies results to what is served and what is kept. Each batch is
//! prepared in the catalog (only what it touches), written to the store in
//! one transaction, then published. Batches run one at a time, so changes
//! are persisted in the order of their sequence numbers, and each runs as a
//! tracked task: a run cancelled mid-batch still completes the batch, and
//! shutdown waits for it before the store closes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::task::TaskTracker;

use crate::catalog::{Applied, Catalog, Change, UnitEntities};
use crate::discovery::{Problem, ProblemKind, RepositoryRecord, UnitUpdate};
use crate::store::{Batch, CatalogStore};

#[derive(Debug)]
pub struct Applier {
    catalog: Arc<Catalog>,
    store: Arc<dyn CatalogStore>,
    serial: Arc<tokio::sync::Mutex<()>>,
    tracker: TaskTracker,
}

impl Applier {
    pub fn new(catalog: Arc<Catalog>, store: Arc<dyn CatalogStore>) -> Arc<Self> {
        Arc::new(Self {
            catalog,
            store,
            serial: Arc::new(tokio::sync::Mutex::new(())),
            tracker: TaskTracker::new(),
        })
    }

    /// Work that must finish before the store closes.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Builds the relation index of the restored catalog and re-renders
    /// what moved on while it was stored, in the background; every batch
    /// waits for it. Call once, right after the catalog is restored.
    pub fn settle(self: &Arc<Self>) {
        let Ok(serial) = Arc::clone(&self.serial).try_lock_owned() else {
            return;
        };
        let this = Arc::clone(self);
        self.tracker.spawn(async move {
            let _serial = serial;
            let started = Instant::now();
            let catalog = Arc::clone(&this.catalog);
            let applied = match tokio::task::spawn_blocking(move || catalog.settle()).await {
                Ok(applied) => applied,
                Err(err) => {
                    tracing::error!(error = %err, "settling relations failed; they are settled by the next change");
                    return;
                }
            };
            let changed = applied.changes.len();
            let mut by_source: BTreeMap<String, Vec<Change>> = BTreeMap::new();
            for change in applied.changes {
                by_source
                    .entry(change_source(&change).to_owned())
                    .or_default()
                    .push(change);
            }
            for (source, changes) in &by_source {
                this.persist(source, changes, &[], &[]).await;
            }
            this.catalog.publish();
            tracing::info!(
                changed,
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "relations settled"
            );
        });
    }

    /// Serves and persists `updates` of `source`; returns the conflicts.
    pub async fn apply(self: &Arc<Self>, source: &str, updates: Vec<UnitUpdate>) -> Vec<Problem> {
        self.spawn(source, updates, Vec::new()).await
    }

    /// Drops `units` of `source`: their entities and repository records.
    pub async fn remove_units(self: &Arc<Self>, source: &str, units: Vec<String>) -> Vec<Problem> {
        let updates = units
            .iter()
            .map(|unit| UnitUpdate {
                unit: unit.clone(),
                record: None,
                entities: Some(Vec::new()),
            })
            .collect();
        self.spawn(source, updates, units).await
    }

    /// Drops everything `source` serves (a removed location).
    pub async fn remove_source(self: &Arc<Self>, source: &str) -> Vec<Problem> {
        let units = self.catalog.units(source);
        self.remove_units(source, units).await
    }

    /// Waits for every batch and tracked task to finish; nothing new starts.
    pub async fn close(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    async fn spawn(
        self: &Arc<Self>,
        source: &str,
        updates: Vec<UnitUpdate>,
        forgotten: Vec<String>,
    ) -> Vec<Problem> {
        let this = Arc::clone(self);
        let owned = source.to_owned();
        let task = self
            .tracker
            .spawn(async move { this.apply_now(&owned, updates, forgotten).await });
        task.await.unwrap_or_else(|err| {
            vec![Problem::new(
                String::new(),
                ProblemKind::Store,
                format!("applying results failed: {err}"),
            )]
        })
    }

    async fn apply_now(
        &self,
        source: &str,
        updates: Vec<UnitUpdate>,
        forgotten: Vec<String>,
    ) -> Vec<Problem> {
        let _serial = self.serial.lock().await;
        let mut units = Vec::new();
        let mut records = Vec::new();
        for update in updates {
            if let Some(entities) = update.entities {
                units.push(UnitEntities {
                    unit: update.unit,
                    entities,
                });
            }
            records.extend(update.record);
        }
        let catalog = Arc::clone(&self.catalog);
        let owned = source.to_owned();
        // Rendering is CPU work: keep it off the async workers.
        let Applied { changes, conflicts } =
            match tokio::task::spawn_blocking(move || catalog.prepare(&owned, units)).await {
                Ok(applied) => applied,
                Err(err) => {
                    return vec![Problem::new(
                        String::new(),
                        ProblemKind::Store,
                        format!("applying results failed: {err}"),
                    )];
                }
            };
        for record in &mut records {
            record.entities = self
                .catalog
                .units_len(source, std::slice::from_ref(&record.catalog_url));
        }
        let mut problems = Vec::new();
        for conflict in conflicts {
            let unit = conflict.unit.clone();
            let problem = conflict.into_problem();
            // Read again next time: the owner may have let go by then.
            if let Some(record) = records.iter_mut().find(|r| r.catalog_url == unit) {
                record.change_token = None;
                record.problems.push(problem.clone());
            }
            problems.push(problem);
        }
        problems.extend(self.persist(source, &changes, &records, &forgotten).await);
        self.catalog.publish();
        problems
    }

    async fn persist(
        &self,
        source: &str,
        changes: &[Change],
        repositories: &[RepositoryRecord],
        forgotten: &[String],
    ) -> Option<Problem> {
        let batch = Batch {
            source,
            changes,
            repositories,
            forgotten,
        };
        let err = self.store.apply(batch).await.err()?;
        // Still served; only a restart would lose them.
        tracing::error!(provider = source, error = %err, "cannot persist results");
        Some(Problem::new(
            String::new(),
            ProblemKind::Store,
            format!("results are served but not persisted: {err}"),
        ))
    }
}

fn change_source(change: &Change) -> &str {
    match change {
        Change::Upsert { owner, .. } => &owner.source,
        Change::Remove { source, .. } => source,
    }
}
