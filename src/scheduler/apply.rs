//! Applies results to what is served and what is kept. Each batch is
//! prepared in the catalog (only what it touches), written to the store in
//! one transaction, then published. Batches run one at a time, so changes
//! are persisted in the order of their sequence numbers, and each runs as a
//! tracked task: a run cancelled mid-batch still completes the batch, and
//! shutdown waits for it before the store closes.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio_util::task::TaskTracker;

use super::queue::FreshUnits;
use crate::catalog::{Applied, Catalog, Change, EntityKey, UnitEntities, Withholding};
use crate::discovery::{Problem, ProblemKind, RepositoryRecord, UnitUpdate};
use crate::store::{Batch, CatalogStore, RepositoryKey, StoreError};

#[derive(Debug)]
pub struct Applier {
    catalog: Arc<Catalog>,
    store: Arc<dyn CatalogStore>,
    serial: Arc<tokio::sync::Mutex<()>>,
    tracker: TaskTracker,
    /// Changes served but not yet written (the store failed): written with
    /// the next batch. At most one per entity.
    unwritten: parking_lot::Mutex<Vec<Change>>,
    /// Withheld refs not yet written, per source (in order), likewise.
    unwritten_withheld: parking_lot::Mutex<Vec<(String, Withholding)>>,
    /// Batches written (entities and repository records): the status page
    /// compares it to know whether what it shows may have changed.
    written: AtomicU64,
    /// Open pull requests' previews: shared by every provider's event
    /// reads (which make them) and the API (which serves them).
    previews: Arc<crate::checks::Previews>,
}

impl Applier {
    pub fn new(catalog: Arc<Catalog>, store: Arc<dyn CatalogStore>) -> Arc<Self> {
        let tracker = TaskTracker::new();
        let previews = crate::checks::Previews::stored(Arc::clone(&store), tracker.clone());
        Arc::new(Self {
            catalog,
            store,
            serial: Arc::new(tokio::sync::Mutex::new(())),
            tracker,
            unwritten: parking_lot::Mutex::new(Vec::new()),
            unwritten_withheld: parking_lot::Mutex::new(Vec::new()),
            written: AtomicU64::new(0),
            previews: Arc::new(previews),
        })
    }

    /// The open pull requests' previews.
    pub(crate) fn previews(&self) -> &Arc<crate::checks::Previews> {
        &self.previews
    }

    /// How many batches have been written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
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
            // One transaction across sources: no repository record changes.
            this.persist("", applied.changes, Vec::new(), &[], &[])
                .await;
            this.catalog.publish();
            tracing::info!(
                changed,
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "relations settled"
            );
        });
    }

    /// Serves and persists `updates` of `source`; resolves to the
    /// conflicts. The batch is under way once this returns, whether or not
    /// the future is awaited.
    pub fn apply(
        self: &Arc<Self>,
        source: &str,
        updates: Vec<UnitUpdate>,
    ) -> impl Future<Output = Vec<Problem>> + Send + 'static {
        self.spawn(source, updates, Vec::new(), None)
    }

    /// As [`Self::apply`], leaving out the units in `skip` as it stands
    /// when the batch's turn comes (a run's reads older than a push's).
    pub fn apply_skipping(
        self: &Arc<Self>,
        source: &str,
        updates: Vec<UnitUpdate>,
        skip: FreshUnits,
    ) -> impl Future<Output = Vec<Problem>> + Send + 'static {
        self.spawn(source, updates, Vec::new(), Some(skip))
    }

    /// As [`Self::apply`], and forgets the records of `forgotten` units in
    /// the same transaction (a repository that moved).
    pub fn apply_forgetting(
        self: &Arc<Self>,
        source: &str,
        updates: Vec<UnitUpdate>,
        forgotten: Vec<String>,
    ) -> impl Future<Output = Vec<Problem>> + Send + 'static {
        self.spawn(source, updates, forgotten, None)
    }

    /// Drops `units` of `source`: their entities and repository records.
    pub async fn remove_units(self: &Arc<Self>, source: &str, units: Vec<String>) -> Vec<Problem> {
        let updates = units.iter().map(|unit| UnitUpdate::removal(unit)).collect();
        self.spawn(source, updates, units, None).await
    }

    /// Drops everything `source` serves (a removed location).
    pub async fn remove_source(self: &Arc<Self>, source: &str) -> Vec<Problem> {
        let units = self.catalog.units(source);
        self.remove_units(source, units).await
    }

    /// Stops serving entity `key` of `unit` (`DELETE /entities/by-uid`) and
    /// drops the unit's change token, so its next read applies it again.
    /// The unit's other entities and its record are read when the batch's
    /// turn comes: a batch for the same unit that lands in between is kept,
    /// not undone by a stale copy.
    pub async fn remove_entity(
        self: &Arc<Self>,
        source: &str,
        unit: &str,
        key: &EntityKey,
    ) -> Result<Vec<Problem>, StoreError> {
        let this = Arc::clone(self);
        let (source, unit, key) = (source.to_owned(), unit.to_owned(), key.clone());
        let task = self.tracker.spawn(async move {
            let serial = this.serial.lock().await;
            let record = this
                .store
                .repository(&source, RepositoryKey::Unit(&unit))
                .await?
                .map(|record| RepositoryRecord {
                    change_token: None,
                    ..record
                });
            let rest = (this.catalog.unit_entities(&source, &unit).into_iter())
                .filter(|e| e.entity.key() != key)
                .collect();
            let update = UnitUpdate {
                unit,
                record,
                entities: Some(rest),
            };
            Ok(this
                .apply_locked(&serial, &source, vec![update], Vec::new(), None)
                .await)
        });
        task.await.unwrap_or_else(|err| {
            Ok(vec![Problem::new(
                String::new(),
                ProblemKind::Store,
                format!("applying results failed: {err}"),
            )])
        })
    }

    /// Waits for every batch and tracked task to finish; nothing new starts.
    pub async fn close(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    fn spawn(
        self: &Arc<Self>,
        source: &str,
        updates: Vec<UnitUpdate>,
        forgotten: Vec<String>,
        skip: Option<FreshUnits>,
    ) -> impl Future<Output = Vec<Problem>> + Send + 'static {
        let this = Arc::clone(self);
        let owned = source.to_owned();
        let task = self
            .tracker
            .spawn(tracing::Instrument::in_current_span(async move {
                this.apply_now(&owned, updates, forgotten, skip).await
            }));
        async move {
            task.await.unwrap_or_else(|err| {
                vec![Problem::new(
                    String::new(),
                    ProblemKind::Store,
                    format!("applying results failed: {err}"),
                )]
            })
        }
    }

    #[tracing::instrument(name = "catalog.apply", level = "debug", skip_all, fields(provider = source, units = updates.len()))]
    async fn apply_now(
        &self,
        source: &str,
        updates: Vec<UnitUpdate>,
        forgotten: Vec<String>,
        skip: Option<FreshUnits>,
    ) -> Vec<Problem> {
        let serial = self.serial.lock().await;
        self.apply_locked(&serial, source, updates, forgotten, skip)
            .await
    }

    /// [`Self::apply_now`] with the batches' turn (`_serial`) taken.
    async fn apply_locked(
        &self,
        _serial: &tokio::sync::MutexGuard<'_, ()>,
        source: &str,
        mut updates: Vec<UnitUpdate>,
        forgotten: Vec<String>,
        skip: Option<FreshUnits>,
    ) -> Vec<Problem> {
        if let Some(skip) = skip {
            if let Some(fresh) = skip.lock().as_ref() {
                updates.retain(|u| !fresh.contains(&u.unit));
            }
        }
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
        let Applied {
            changes,
            conflicts,
            withheld,
        } = match tokio::task::spawn_blocking(move || catalog.prepare(&owned, units)).await {
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
            // Another unit's: read again next time, it may have let go by then.
            let elsewhere = *conflict.owner.unit != *unit;
            let problem = conflict.into_problem();
            if let Some(record) = records.iter_mut().find(|r| r.catalog_url == unit) {
                if elsewhere {
                    record.change_token = None;
                }
                record.problems.push(problem.clone());
            }
            problems.push(problem);
        }
        problems.extend(
            self.persist(source, changes, withheld, &records, &forgotten)
                .await,
        );
        self.catalog.publish();
        problems
    }

    /// Writes `changes` (after any an earlier failure left unwritten) and
    /// `source`'s records in one transaction. On failure the changes are
    /// kept for the next batch: memory has them, so a re-read that finds
    /// nothing new would otherwise never write them.
    async fn persist(
        &self,
        source: &str,
        changes: Vec<Change>,
        withheld: Vec<Withholding>,
        repositories: &[RepositoryRecord],
        forgotten: &[String],
    ) -> Option<Problem> {
        // An earlier failure's withheld refs, each source's in a batch of its own.
        let earlier = std::mem::take(&mut *self.unwritten_withheld.lock());
        for pending in earlier.chunk_by(|a, b| a.0 == b.0) {
            let Some((of, _)) = pending.first() else {
                continue;
            };
            let withheld: Vec<Withholding> = pending.iter().map(|(_, w)| w.clone()).collect();
            let batch = Batch {
                source: of,
                changes: &[],
                repositories: &[],
                forgotten: &[],
                withheld: &withheld,
            };
            if let Err(err) = self.store.apply(batch).await {
                tracing::error!(provider = %of, error = %err, "cannot persist withheld refs");
                self.unwritten_withheld.lock().extend_from_slice(pending);
            }
        }
        let mut changes = changes;
        {
            let mut unwritten = self.unwritten.lock();
            if !unwritten.is_empty() {
                // The latest change of each entity is all the store needs.
                let later: HashSet<EntityKey> =
                    changes.iter().map(|c| change_key(c).clone()).collect();
                unwritten.retain(|c| !later.contains(change_key(c)));
                unwritten.append(&mut changes);
                changes = std::mem::take(&mut *unwritten);
            }
        }
        let batch = Batch {
            source,
            changes: &changes,
            repositories,
            forgotten,
            withheld: &withheld,
        };
        let result = self.store.apply(batch).await;
        let err = match result {
            Ok(()) => {
                self.written.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Err(err) => err,
        };
        *self.unwritten.lock() = changes;
        self.unwritten_withheld
            .lock()
            .extend(withheld.into_iter().map(|w| (source.to_owned(), w)));
        // Still served; only a restart would lose them.
        tracing::error!(provider = source, error = %err, "cannot persist results");
        Some(Problem::new(
            String::new(),
            ProblemKind::Store,
            format!("results are served but not persisted: {err}"),
        ))
    }
}

fn change_key(change: &Change) -> &EntityKey {
    match change {
        Change::Upsert { entity, .. } => &entity.key,
        Change::Remove { key, .. } => key,
    }
}
