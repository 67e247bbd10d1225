//! The in-memory catalog the API serves, and the map of catalog modules.
//!
//! - [`entity`]: the Backstage entity envelope and entity references.
//! - [`parse`]: untrusted `catalog-info.yaml` → entities, with budgets.
//! - [`process`]: one discovered file → the entities Backstage would accept
//!   and a problem for everything else (Location targets, placeholders);
//!   [`validate`] and [`rules`] are its checks.
//! - [`disk`]: catalog files on disk checked offline (`validate`).
//! - [`ancestry`], [`facets`]: what `ancestry` and `entity-facets` answer.
//! - [`Catalog`]: what is served, owned unit by unit (a repository's catalog
//!   file, or a location's target). A unit's new entity set changes exactly
//!   its entities and the relations that touch them; every change gets a
//!   catalog-wide sequence number; readers see published snapshots only.
//!   [`Change`]s and [`Conflict`]s are what [`Catalog::prepare`] returns;
//!   [`PreparedEntity`] is an entity as served; [`ProcessedEntity`] one as
//!   processing hands it over, with the references it derived.

pub(crate) mod ancestry;
pub(crate) mod budget;
pub(crate) mod changes;
pub(crate) mod disk;
pub(crate) mod entity;
pub(crate) mod facets;
mod follow;
pub(crate) mod generated;
pub(crate) mod index;
pub(crate) mod paging;
pub(crate) mod parse;
mod prepared;
pub(crate) mod problem;
pub(crate) mod process;
pub(crate) mod query;
pub(crate) mod refs;
pub(crate) mod relations;
pub(crate) mod rules;
pub(crate) mod search;
pub(crate) mod sorted;
pub(crate) mod stitch;
mod unit;
pub(crate) mod validate;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use changes::ChangeLog;
use entity::Relation;
pub use entity::{Entity, EntityKey};
pub(crate) use follow::Followed;
use index::RelationIndex;
pub(crate) use prepared::PreparedEntity;
pub(crate) use prepared::shared as shared_location;
use relations::Reference;
pub(crate) use unit::{Applied, Change, Conflict, Owner, Withholding};
pub use unit::{ProcessedEntity, UnitEntities};

/// An immutable view of the whole catalog, ordered by entity key. Readers
/// take one and never block writers for longer than an `Arc` clone; a new
/// one shares all but what changed with the last (persistent maps).
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    entities: imbl::OrdMap<EntityKey, Arc<PreparedEntity>>,
    /// Keyed by the 16-byte uuid, not its text.
    by_uid: imbl::HashMap<uuid::Uuid, EntityKey>,
    /// Entities per source.
    counts: HashMap<Arc<str>, usize>,
    /// The sequence number of the latest change in this view.
    last_seq: u64,
    /// Each entity's latest change and the retained removals.
    changes: ChangeLog,
    /// Sorted fields and facet counts, kept as entities change.
    indexes: sorted::Indexes,
}

impl Snapshot {
    /// Every entity, by entity key.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<PreparedEntity>> {
        self.entities.values()
    }

    pub fn len(&self) -> usize {
        self.entities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    pub fn get(&self, key: &EntityKey) -> Option<&Arc<PreparedEntity>> {
        self.entities.get(key)
    }

    pub fn source_len(&self, source: &str) -> usize {
        self.counts.get(source).copied().unwrap_or(0)
    }

    /// The entity whose uid is exactly `uid` as served (lowercase, hyphenated).
    pub fn by_uid(&self, uid: &str) -> Option<&Arc<PreparedEntity>> {
        let parsed = uuid::Uuid::try_parse(uid).ok()?;
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        if parsed.hyphenated().encode_lower(&mut text) != uid {
            return None;
        }
        self.by_uid
            .get(&parsed)
            .and_then(|key| self.entities.get(key))
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The change feed as of this view.
    pub fn changes(&self) -> &ChangeLog {
        &self.changes
    }

    /// The sorted and facet indexes of this view.
    pub(crate) fn indexes(&self) -> &sorted::Indexes {
        &self.indexes
    }

    /// Serves `entity`, changed at `seq`.
    fn insert(&mut self, entity: Arc<PreparedEntity>, source: &Arc<str>, seq: u64) {
        self.changes.upserted(&entity.key, seq);
        self.by_uid.insert(entity.uid, entity.key.clone());
        let old = self
            .entities
            .insert(entity.key.clone(), Arc::clone(&entity));
        self.indexes.update(old.as_deref(), Some(&*entity));
        if old.is_none() {
            *self.counts.entry(Arc::clone(source)).or_default() += 1;
        }
    }

    /// Serves restored entities, each changed at its sequence number, in
    /// bulk: the maps are filled in key (and sequence) order, which touches
    /// each tree node once per run of inserts rather than at random; the
    /// sorted and facet indexes are left unbuilt ([`Catalog::build_indexes`]).
    fn extend_restored(&mut self, mut restored: Vec<Restoring>) {
        if restored.is_empty() {
            return;
        }
        self.indexes = sorted::Indexes::unbuilt();
        restored.sort_unstable_by(|a, b| a.entity.key.cmp(&b.entity.key));
        for Restoring { entity, source, .. } in &restored {
            self.by_uid.insert(entity.uid, entity.key.clone());
            if self
                .entities
                .insert(entity.key.clone(), Arc::clone(entity))
                .is_none()
            {
                *self.counts.entry(Arc::clone(source)).or_default() += 1;
            }
        }
        restored.sort_unstable_by_key(|r| r.seq);
        for Restoring { entity, seq, .. } in &restored {
            self.changes.upserted(&entity.key, *seq);
        }
    }

    fn remove(&mut self, key: &EntityKey, source: &str) -> Option<Arc<PreparedEntity>> {
        let removed = self.entities.remove(key)?;
        self.indexes.update(Some(&*removed), None);
        self.by_uid.remove(&removed.uid);
        if let Some(count) = self.counts.get_mut(source) {
            *count = count.saturating_sub(1);
        }
        Some(removed)
    }
}

#[derive(Debug, Default)]
struct State {
    /// What the next [`Catalog::publish`] serves.
    working: Snapshot,
    owners: HashMap<EntityKey, Owner>,
    /// Each source's units and the entity keys each one serves.
    units: HashMap<Arc<str>, HashMap<Arc<str>, Vec<EntityKey>>>,
    index: RelationIndex,
    /// The references each served entity put into `index` (none kept for an
    /// entity that makes none), so dropping or replacing it takes them back
    /// without parsing its served JSON. Built by [`Catalog::settle`] for
    /// restored or followed entities.
    emits: HashMap<EntityKey, Box<[Reference]>>,
    /// Restored entities stored without their references:
    /// [`Catalog::settle`] derives them from the served JSON.
    unparsed: Vec<EntityKey>,
    /// Entities [`Catalog::restore_entities`] took, served in bulk by
    /// [`Catalog::restored`].
    restoring: Vec<Restoring>,
    /// The sequence number [`Catalog::restored`] served up to: entities
    /// followed in after it carry no stored references.
    restored_through: u64,
    /// How many removals the change feed keeps.
    retained_removals: usize,
    /// Restored from a store that complete applies wrote, as of this
    /// sequence number: [`Catalog::settle`] builds the index and re-renders
    /// nothing, unless changes were followed in since.
    stitched_at: Option<u64>,
    /// Refs removed through the API (`DELETE /entities/by-uid`): no longer
    /// served, but still their unit's, so a contesting file cannot take
    /// them; the unit's next read serves them again or lets them go.
    withheld: HashMap<EntityKey, Withheld>,
}

/// A restored entity waiting to be served, with its source and the
/// sequence number of its latest change.
#[derive(Debug)]
struct Restoring {
    entity: Arc<PreparedEntity>,
    source: Arc<str>,
    seq: u64,
}

/// A ref [`Catalog::withhold`] keeps for its owner.
#[derive(Debug)]
struct Withheld {
    owner: Owner,
    /// Set by the apply that stops serving it; the unit's next apply after
    /// that is a read, which decides.
    armed: bool,
}

impl State {
    fn next_seq(&mut self) -> u64 {
        self.working.last_seq += 1;
        self.working.last_seq
    }

    /// Re-renders `keys` against the index; records each entity whose
    /// served form changed. `fresh` holds newly read entities (unstitched).
    /// `moved`: entities now owned by another unit, stored anew even when
    /// their served form is the same.
    fn restitch(
        &mut self,
        keys: BTreeSet<EntityKey>,
        mut fresh: HashMap<EntityKey, ProcessedEntity>,
        moved: &HashSet<EntityKey>,
        changes: &mut Vec<Change>,
    ) {
        for key in keys {
            let current = self.working.get(&key).cloned();
            let own = self.emits.get(&key).map(|own| &**own).unwrap_or_default();
            let relations = self.index.relations_of(key.as_str(), own);
            let typed = match (fresh.remove(&key), &current) {
                (Some(fresh), _) => fresh.entity,
                (None, Some(current)) => {
                    // What is served renders to itself: only new relations change it.
                    match current.served_relations() {
                        Ok(served) if served != relations => {}
                        _ => continue,
                    }
                    let Ok(typed) = current.typed() else {
                        continue;
                    };
                    typed
                }
                (None, None) => continue,
            };
            let Some(mut rendered) = rendered(typed, relations) else {
                continue;
            };
            if current.is_some_and(|c| c.json == rendered.json) && !moved.contains(&key) {
                continue;
            }
            let Some(owner) = self.owners.get(&key).cloned() else {
                continue;
            };
            rendered.share_location(&owner.unit);
            let seq = self.next_seq();
            let entity = Arc::new(rendered);
            self.working.insert(Arc::clone(&entity), &owner.source, seq);
            let references = self.references_to_store(&key);
            changes.push(Change::Upsert {
                entity,
                owner,
                seq,
                references,
            });
        }
    }

    /// Takes each unit's keys from it; the keys it no longer yields lose
    /// their owner and are returned as released.
    fn release_units(
        &mut self,
        source: &Arc<str>,
        units: Vec<UnitEntities>,
        withholdings: &mut Vec<Withholding>,
    ) -> (Vec<Claim>, Vec<EntityKey>) {
        let mut released = Vec::new();
        let mut claims = Vec::with_capacity(units.len());
        for update in units {
            let owner = Owner {
                source: Arc::clone(source),
                unit: Arc::from(update.unit.as_str()),
            };
            let old_keys: HashSet<EntityKey> = self
                .units
                .get_mut(source)
                .and_then(|units| units.remove(&owner.unit))
                .unwrap_or_default()
                .into_iter()
                .collect();
            let yields: HashSet<EntityKey> =
                update.entities.iter().map(|e| e.entity.key()).collect();
            let mut withheld = Vec::new();
            for key in old_keys.iter().filter(|k| !yields.contains(*k)) {
                match self.withheld.get_mut(key) {
                    // Leaves what is served, stays the unit's.
                    Some(w) if w.owner == owner && !w.armed => {
                        w.armed = true;
                        withheld.push(key.clone());
                        withholdings.push(Withholding {
                            key: key.clone(),
                            unit: Some(Arc::clone(&owner.unit)),
                        });
                    }
                    _ => {
                        if self.withheld.remove(key).is_some() {
                            withholdings.push(Withholding {
                                key: key.clone(),
                                unit: None,
                            });
                        }
                        self.owners.remove(key);
                    }
                }
                released.push(key.clone());
            }
            claims.push(Claim {
                owner,
                old_keys,
                update,
                withheld,
            });
        }
        (claims, released)
    }

    /// Each unit claims its entities' keys; a key another unit holds (or
    /// one twice in a unit) is a conflict. Returns the claimed entities and
    /// the keys that moved in from another unit.
    fn claim(
        &mut self,
        source: &Arc<str>,
        claims: Vec<Claim>,
        applied: &mut Applied,
    ) -> (HashMap<EntityKey, ProcessedEntity>, HashSet<EntityKey>) {
        let mut fresh = HashMap::new();
        let mut moved = HashSet::new();
        for Claim {
            owner,
            old_keys,
            update,
            withheld,
        } in claims
        {
            let mut keys = Vec::new();
            let mut claimed = HashSet::new();
            for processed in update.entities {
                let key = processed.entity.key();
                let mut held_by = self.owners.get(&key).filter(|o| **o != owner);
                if held_by.is_some_and(|holder| generated::takes_over(&holder.unit, &owner.unit)) {
                    self.release_generated(&key, &owner.source);
                    held_by = None;
                }
                // A key twice in one file: the first document keeps it.
                if let Some(holder) = held_by.or((!claimed.insert(key.clone())).then_some(&owner)) {
                    applied.conflicts.push(Conflict {
                        entity_ref: processed.entity.entity_ref(),
                        owner: holder.clone(),
                        unit: update.unit.clone(),
                    });
                    continue;
                }
                if !old_keys.contains(&key) && self.working.get(&key).is_some() {
                    moved.insert(key.clone());
                }
                if self.withheld.remove(&key).is_some() {
                    applied.withheld.push(Withholding {
                        key: key.clone(),
                        unit: None,
                    });
                }
                self.owners.insert(key.clone(), owner.clone());
                keys.push(key.clone());
                fresh.insert(key, processed);
            }
            // Listed with the unit (not served), so its next read decides.
            keys.extend(withheld);
            if !keys.is_empty() {
                self.units
                    .entry(Arc::clone(source))
                    .or_default()
                    .insert(owner.unit, keys);
            }
        }
        (fresh, moved)
    }

    /// Takes `key` from the generated unit holding it. Served for another
    /// source, it stops being served there, so `source` serves (and counts)
    /// it anew.
    fn release_generated(&mut self, key: &EntityKey, source: &Arc<str>) {
        let Some(holder) = self.owners.remove(key) else {
            return;
        };
        if let Some(keys) = self
            .units
            .get_mut(&holder.source)
            .and_then(|units| units.get_mut(&holder.unit))
        {
            keys.retain(|k| k != key);
        }
        if holder.source != *source {
            self.working.remove(key, &holder.source);
        }
    }

    /// Stops serving the released keys no unit claimed again; the other
    /// ends of their relations become `dirty`.
    fn remove_released(
        &mut self,
        source: &Arc<str>,
        released: Vec<EntityKey>,
        fresh: &HashMap<EntityKey, ProcessedEntity>,
        dirty: &mut BTreeSet<EntityKey>,
        changes: &mut Vec<Change>,
    ) {
        for key in released {
            if fresh.contains_key(&key) {
                continue;
            }
            let Some(old) = self.working.remove(&key, source) else {
                continue;
            };
            let emitted = self.take_emits(&old.key);
            self.index.remove(&emitted);
            endpoints(&emitted, dirty);
            let seq = self.next_seq();
            let retained = self.retained_removals;
            self.working.changes.removed(&key, seq, retained);
            changes.push(Change::Remove {
                key,
                source: Arc::clone(source),
                seq,
            });
        }
    }

    /// Indexes the relations the claimed entities emit, taking the
    /// references processing derived; each claimed entity, and both ends of
    /// a relation added or dropped, become `dirty`.
    fn reindex(
        &mut self,
        fresh: &mut HashMap<EntityKey, ProcessedEntity>,
        dirty: &mut BTreeSet<EntityKey>,
    ) {
        for (key, processed) in fresh {
            let references = std::mem::take(&mut processed.references);
            let unchanged = self
                .emits
                .get(key)
                .map_or(references.is_empty(), |old| *old == references);
            if !unchanged {
                let old = self.take_emits(key);
                let new = relations::expand(key.as_str(), &references);
                self.index.remove(&old);
                self.index.add(&new);
                endpoints(&old, dirty);
                endpoints(&new, dirty);
                let mut references = references;
                self.index.share(&mut references);
                if !references.is_empty() {
                    self.emits.insert(key.clone(), references);
                }
            }
            dirty.insert(key.clone());
        }
    }

    /// What `key` emits, as the store keeps it (an entity emitting none
    /// has no entry: stored as none).
    fn references_to_store(&self, key: &EntityKey) -> Option<String> {
        stitch::references_to_store(self.emits.get(key).map_or(&[], |r| &r[..]))
    }

    /// Forgets what `key` emits; returns it, both directions.
    fn take_emits(&mut self, key: &EntityKey) -> Vec<relations::Emitted> {
        self.emits
            .remove(key)
            .map(|references| relations::expand(key.as_str(), &references))
            .unwrap_or_default()
    }
}

/// `entity` rendered with `relations`; `None` (logged) when it cannot be,
/// and then its previous form stays served.
fn rendered(entity: Entity, relations: Vec<Relation>) -> Option<PreparedEntity> {
    PreparedEntity::render(entity, relations)
        .inspect_err(|err| tracing::error!(%err, "an entity is not re-rendered"))
        .ok()
}

/// A unit's new entity set, with the keys it served before.
struct Claim {
    owner: Owner,
    old_keys: HashSet<EntityKey>,
    update: UnitEntities,
    /// Keys withheld by this apply: kept for the unit, not served.
    withheld: Vec<EntityKey>,
}

/// A unit given twice in one batch: its last set counts.
fn last_set_per_unit(units: Vec<UnitEntities>) -> Vec<UnitEntities> {
    let mut seen = HashSet::new();
    let mut units: Vec<UnitEntities> = units
        .into_iter()
        .rev()
        .filter(|u| seen.insert(u.unit.clone()))
        .collect();
    units.reverse();
    units
}

/// Both ends of every relation in `emitted`: the entities whose served
/// relations it touches.
fn endpoints(emitted: &[relations::Emitted], into: &mut BTreeSet<EntityKey>) {
    for relation in emitted {
        into.insert(EntityKey::from_stored(&relation.source));
        into.insert(EntityKey::from_stored(&relation.target));
    }
}

/// `built`, the indexes of `from`, changed into those of `to`: every entity
/// that differs between the two changed after the older one's last
/// sequence number, so the change logs name it. Should either log have
/// forgotten removals since then, `to` is indexed anew.
fn caught_up(mut built: sorted::Indexes, from: &Snapshot, to: &Snapshot) -> sorted::Indexes {
    let since = from.last_seq.min(to.last_seq);
    if from.changes.horizon().max(to.changes.horizon()) > since {
        return sorted::Indexes::build(to.iter().map(|e| &**e));
    }
    let changed: BTreeSet<&EntityKey> = (from.changes.after(since))
        .chain(to.changes.after(since))
        .map(|(_, entry)| match entry {
            changes::Entry::Upsert(key) | changes::Entry::Removed(key) => key,
        })
        .collect();
    for key in changed {
        built.update(from.get(key).map(|e| &**e), to.get(key).map(|e| &**e));
    }
    built
}

/// The entities currently served, keyed by case-insensitive entity ref.
#[derive(Debug)]
pub struct Catalog {
    state: Mutex<State>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// The last sequence number published, for followers waiting on it.
    published: tokio::sync::watch::Sender<u64>,
}

impl Default for Catalog {
    fn default() -> Self {
        Self::new()
    }
}

impl Catalog {
    /// A catalog whose change feed keeps every removal.
    pub fn new() -> Self {
        Self::with_retained_removals(usize::MAX)
    }

    /// A catalog whose change feed keeps the latest `retained` removals
    /// (about 100 bytes each).
    pub fn with_retained_removals(retained: usize) -> Self {
        Self {
            state: Mutex::new(State {
                retained_removals: retained,
                ..State::default()
            }),
            snapshot: RwLock::default(),
            published: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Changes whenever a change is published: the new last sequence number.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Serves entities exactly as they were rendered before (start-up from
    /// the store): no parsing, so a large catalog is ready at once. The
    /// relation index is built by [`Catalog::settle`], which callers run
    /// right after, before any change.
    /// `entities` carry the sequence number of their latest change;
    /// `removals` are the retained ones, and those at or below `horizon`
    /// were not kept.
    pub fn restore(
        &self,
        entities: impl IntoIterator<Item = (Owner, PreparedEntity, u64)>,
        removals: impl IntoIterator<Item = (EntityKey, u64)>,
        last_seq: u64,
        horizon: u64,
    ) {
        self.restore_removals(removals, horizon);
        self.restore_entities(entities.into_iter().map(|(o, e, s)| (o, e, s, None)));
        self.restored(last_seq);
        self.build_indexes();
    }

    /// The first step of a restore in parts (start-up streams the store
    /// through these): the retained removals, and the horizon at or below
    /// which they were not kept.
    pub(crate) fn restore_removals(
        &self,
        removals: impl IntoIterator<Item = (EntityKey, u64)>,
        horizon: u64,
    ) {
        let mut state = self.state.lock();
        let retained = state.retained_removals;
        for (key, seq) in removals {
            state.working.changes.removed(&key, seq, retained);
        }
        state.working.changes.forgotten_through(horizon);
    }

    /// Adds stored entities to what [`Catalog::restored`] serves, one batch
    /// at a time (nothing is published yet). Each may carry the references
    /// it was stored with; [`Catalog::settle`] derives those of the others
    /// from their JSON.
    pub(crate) fn restore_entities(
        &self,
        entities: impl IntoIterator<Item = (Owner, PreparedEntity, u64, Option<Box<[Reference]>>)>,
    ) {
        let mut state = self.state.lock();
        let state = &mut *state;
        for (owner, mut entity, seq, references) in entities {
            if state.owners.contains_key(&entity.key) {
                continue;
            }
            // One shared string per source and per unit, not one per entity.
            let source = match state.units.get_key_value(owner.source.as_ref()) {
                Some((source, _)) => Arc::clone(source),
                None => owner.source,
            };
            let units = state.units.entry(Arc::clone(&source)).or_default();
            let unit = match units.get_key_value(owner.unit.as_ref()) {
                Some((unit, _)) => Arc::clone(unit),
                None => owner.unit,
            };
            units
                .entry(Arc::clone(&unit))
                .or_default()
                .push(entity.key.clone());
            entity.share_location(&unit);
            let key = entity.key.clone();
            match references {
                Some(mut references) => {
                    // Targets shared from the start: settle indexes these as they are.
                    state.index.share(&mut references);
                    if !references.is_empty() {
                        state.emits.insert(key.clone(), references);
                    }
                }
                None => state.unparsed.push(key.clone()),
            }
            state.restoring.push(Restoring {
                entity: Arc::new(entity),
                source: Arc::clone(&source),
                seq,
            });
            state.owners.insert(key, Owner { source, unit });
        }
    }

    /// Serves what was restored, as of `last_seq`. The sorted and facet
    /// indexes are not built yet (queries scan): [`Catalog::build_indexes`]
    /// builds them off the start-up path.
    pub(crate) fn restored(&self, last_seq: u64) {
        let mut state = self.state.lock();
        let restoring = std::mem::take(&mut state.restoring);
        state.working.extend_restored(restoring);
        state.working.last_seq = state.working.last_seq.max(last_seq);
        state.restored_through = state.working.last_seq;
        *self.snapshot.write() = Arc::new(state.working.clone());
        self.published.send_replace(state.working.last_seq);
    }

    /// How many entities each source serves once what is prepared is
    /// published (start-up compares them with the configured sources).
    pub fn working_sources(&self) -> Vec<(String, usize)> {
        let state = self.state.lock();
        let mut sources: Vec<(String, usize)> = state
            .units
            .keys()
            .map(|source| (source.to_string(), state.working.source_len(source)))
            .filter(|(_, served)| *served > 0)
            .collect();
        sources.sort();
        sources
    }

    /// What [`Catalog::restore`] served was stored stitched (see
    /// `StoredCatalog::stitched`): [`Catalog::settle`] need not re-render.
    pub fn restored_stitched(&self) {
        let mut state = self.state.lock();
        state.stitched_at = Some(state.working.last_seq);
    }

    /// Builds the sorted and facet indexes of a restored catalog, in bulk,
    /// from the published snapshot and without holding the state; then
    /// catches them up with whatever changed meanwhile and installs them in
    /// what is prepared and what is published. Until then queries scan, so
    /// answers are the same before and after. Nothing when they are built.
    pub fn build_indexes(&self) {
        let base = self.snapshot();
        if base.indexes.is_built() && self.state.lock().working.indexes.is_built() {
            return;
        }
        let built = sorted::Indexes::build(base.iter().map(|e| &**e));
        let mut state = self.state.lock();
        if !state.working.indexes.is_built() {
            state.working.indexes = caught_up(built.clone(), &base, &state.working);
        }
        // Publishing holds the state too: the published snapshot stays put.
        let published = self.snapshot();
        if !published.indexes.is_built() {
            let mut next = (*published).clone();
            next.indexes = caught_up(built, &base, &published);
            *self.snapshot.write() = Arc::new(next);
        }
    }

    /// Builds the relation index from every served entity and re-renders
    /// those whose relations moved on while they were stored (e.g. a
    /// source dropped from the config). Call it once after
    /// [`Catalog::restore`] and before any [`Catalog::prepare`], which must
    /// not run meanwhile: the work is done on a snapshot, so readers of the
    /// state (a run's reconcile) wait only for the result to be installed.
    /// References restored with their entity are indexed as they are; only
    /// the others (stored before references were, or followed in from
    /// another replica) are parsed from their JSON.
    pub fn settle(&self) -> Applied {
        self.build_indexes();
        let (working, stitched, mut emits, mut unparsed) = {
            let mut state = self.state.lock();
            let stitched = state.stitched_at.take() == Some(state.working.last_seq);
            let mut unparsed = std::mem::take(&mut state.unparsed);
            for (_, entry) in state.working.changes.after(state.restored_through) {
                if let changes::Entry::Upsert(key) = entry {
                    unparsed.push(key.clone());
                }
            }
            (
                state.working.clone(),
                stitched,
                std::mem::take(&mut state.emits),
                unparsed,
            )
        };
        unparsed.sort_unstable();
        unparsed.dedup();
        for key in &unparsed {
            emits.remove(key);
            let Some(Ok(references)) = working.get(key).map(|e| e.references()) else {
                continue;
            };
            if !references.is_empty() {
                emits.insert(key.clone(), references.into_boxed_slice());
            }
        }
        // A new index (settling twice must not count a relation twice), in
        // key order, so each entity's relations arrive mostly sorted.
        let mut index = RelationIndex::new();
        for entity in working.iter() {
            if let Some(references) = emits.get_mut(&entity.key) {
                index.share(references);
                index.add(&relations::expand(entity.key.as_str(), references));
            }
        }
        // One entity at a time, so memory stays at what is served plus the
        // index; only an entity whose relations moved is parsed again.
        let mut renders = Vec::new();
        if stitched && !working.is_empty() {
            tracing::info!(
                entities = working.len(),
                "the store was left by a complete apply: entities are served as stored"
            );
        }
        for entity in working.iter().filter(|_| !stitched) {
            let own = emits.get(&entity.key).map(|own| &**own).unwrap_or_default();
            let relations = index.relations_of(entity.key.as_str(), own);
            match entity.served_relations() {
                Ok(served) if served != relations => {}
                _ => continue,
            }
            let Some(rendered) = entity.typed().ok().and_then(|t| rendered(t, relations)) else {
                continue;
            };
            if rendered.json != entity.json {
                renders.push(rendered);
            }
        }
        let mut state = self.state.lock();
        state.index = index;
        state.emits = emits;
        let mut applied = Applied::default();
        for mut rendered in renders {
            let Some(owner) = state.owners.get(&rendered.key).cloned() else {
                continue;
            };
            rendered.share_location(&owner.unit);
            let seq = state.next_seq();
            let references = state.references_to_store(&rendered.key);
            let entity = Arc::new(rendered);
            state
                .working
                .insert(Arc::clone(&entity), &owner.source, seq);
            applied.changes.push(Change::Upsert {
                entity,
                owner,
                seq,
                references,
            });
        }
        applied
    }

    /// Gives each of `units` (of `source`) its new entity set, and re-renders
    /// exactly the entities whose served form that changes: the units' own
    /// and the other ends of the relations they add or drop. A ref another
    /// unit serves stays with it (first come, first served, as in Backstage)
    /// and is returned as a conflict. Nothing is served until [`Catalog::publish`].
    pub fn prepare(&self, source: &str, units: Vec<UnitEntities>) -> Applied {
        let mut state = self.state.lock();
        let source: Arc<str> = Arc::from(source);
        let mut applied = Applied::default();
        // First every unit lets go of what it no longer yields, so an entity
        // moving between two units of one batch moves whatever their order.
        let (claims, released) =
            state.release_units(&source, last_set_per_unit(units), &mut applied.withheld);
        let (mut fresh, moved) = state.claim(&source, claims, &mut applied);
        let mut dirty = BTreeSet::new();
        state.remove_released(&source, released, &fresh, &mut dirty, &mut applied.changes);
        state.reindex(&mut fresh, &mut dirty);
        state.restitch(dirty, fresh, &moved, &mut applied.changes);
        applied
    }

    /// Serves everything prepared so far.
    pub fn publish(&self) {
        // Under the state, so a build of the indexes installs its own
        // between two publishes, never under one.
        let state = self.state.lock();
        let working = state.working.clone();
        let last_seq = working.last_seq;
        *self.snapshot.write() = Arc::new(working);
        drop(state);
        self.published.send_replace(last_seq);
    }

    /// The units of `source` that serve entities.
    pub fn units(&self, source: &str) -> Vec<String> {
        self.state
            .lock()
            .units
            .get(source)
            .map(|units| units.keys().map(|u| u.to_string()).collect())
            .unwrap_or_default()
    }

    /// How many entities `units` of `source` serve.
    pub fn units_len(&self, source: &str, units: &[String]) -> usize {
        let state = self.state.lock();
        let Some(served) = state.units.get(source) else {
            return 0;
        };
        units
            .iter()
            .filter_map(|unit| served.get(unit.as_str()))
            .map(Vec::len)
            .sum()
    }

    /// The entities `unit` of `source` serves, as entities (to apply the
    /// unit again without one of them): parsed back from what is served, as
    /// this is rare (a per-entity delete) and keeping every entity typed
    /// would double the catalog's memory. Their references are the indexed
    /// ones, not derived again.
    pub fn unit_entities(&self, source: &str, unit: &str) -> Vec<ProcessedEntity> {
        let state = self.state.lock();
        state
            .units
            .get(source)
            .and_then(|units| units.get(unit))
            .into_iter()
            .flatten()
            .filter_map(|key| {
                let entity = state.working.get(key)?.typed().ok()?;
                let references = state.emits.get(key).cloned().unwrap_or_default();
                Some(ProcessedEntity { entity, references })
            })
            .collect()
    }

    /// Has the next apply of `unit` (of `source`) that leaves out `key`
    /// stop serving it while keeping the ref the unit's, as Backstage
    /// keeps a deleted entity's place for the provider that returns it:
    /// until the unit's following apply, a read, yields it again (served)
    /// or not (released). Refs the unit already withholds are kept again.
    pub fn withhold(&self, source: &str, unit: &str, key: &EntityKey) {
        let mut state = self.state.lock();
        let owner = Owner {
            source: Arc::from(source),
            unit: Arc::from(unit),
        };
        for w in state.withheld.values_mut().filter(|w| w.owner == owner) {
            w.armed = false;
        }
        state.withheld.insert(
            key.clone(),
            Withheld {
                owner,
                armed: false,
            },
        );
    }

    /// Restores refs withheld when the store was written (after
    /// [`Catalog::restore`] or a follower's catch-up): each stays its
    /// unit's, not served, until the unit's next read decides. A ref
    /// served meanwhile by anyone is left to its server.
    pub fn restore_withheld(&self, withheld: impl IntoIterator<Item = (Owner, EntityKey)>) {
        let mut state = self.state.lock();
        for (owner, key) in withheld {
            if state.owners.contains_key(&key) {
                continue;
            }
            state
                .units
                .entry(Arc::clone(&owner.source))
                .or_default()
                .entry(Arc::clone(&owner.unit))
                .or_default()
                .push(key.clone());
            state.owners.insert(key.clone(), owner.clone());
            state.withheld.insert(key, Withheld { owner, armed: true });
        }
    }

    /// Who serves the entity `key` (once what is prepared is published).
    pub fn owner(&self, key: &EntityKey) -> Option<Owner> {
        self.state.lock().owners.get(key).cloned()
    }

    /// The current view of every entity.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read())
    }

    pub fn get(&self, key: &EntityKey) -> Option<Arc<PreparedEntity>> {
        self.snapshot().get(key).cloned()
    }

    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entities `source` has once what is prepared is published.
    pub fn working_len(&self, source: &str) -> usize {
        self.state.lock().working.source_len(source)
    }

    /// How many entities `source` currently serves (never waits for a
    /// writer: it reads the snapshot).
    pub fn source_len(&self, source: &str) -> usize {
        self.snapshot().source_len(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn entity(kind: &str, name: &str, spec: Value) -> Entity {
        serde_json::from_value(json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        }))
        .unwrap()
    }

    fn unit(unit: &str, entities: Vec<Entity>) -> UnitEntities {
        UnitEntities {
            unit: unit.into(),
            entities: entities.into_iter().map(Into::into).collect(),
        }
    }

    /// One unit holding one entity.
    fn single(unit_name: &str, kind: &str, name: &str, spec: Value) -> Vec<UnitEntities> {
        vec![unit(unit_name, vec![entity(kind, name, spec)])]
    }

    /// Components with no spec, named `names`, from `unit`.
    fn components(unit_name: &str, names: &[&str]) -> UnitEntities {
        let entities = names
            .iter()
            .map(|name| entity("Component", name, json!({})))
            .collect();
        unit(unit_name, entities)
    }

    /// Group `team` (repository `g`) owns component `svc` (repository `c`).
    fn team_owning_svc() -> Vec<UnitEntities> {
        vec![
            unit(
                "g",
                vec![entity(
                    "Group",
                    "team",
                    json!({"type": "team", "children": []}),
                )],
            ),
            unit(
                "c",
                vec![entity("Component", "svc", json!({"owner": "team"}))],
            ),
        ]
    }

    fn apply(catalog: &Catalog, source: &str, units: Vec<UnitEntities>) -> Applied {
        let applied = catalog.prepare(source, units);
        catalog.publish();
        applied
    }

    fn refs(catalog: &Catalog) -> Vec<String> {
        catalog
            .snapshot()
            .iter()
            .map(|e| e.entity_ref.clone())
            .collect()
    }

    fn relations_of(catalog: &Catalog, kind: &str, name: &str) -> Vec<String> {
        let served = catalog.get(&EntityKey::new(kind, "default", name)).unwrap();
        served.value()["relations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["type"].as_str().unwrap(),
                    r["targetRef"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// Processing derives an entity's references once: the catalog indexes
    /// the ones handed over (here not what the spec says) and gives them
    /// back with the unit's entities.
    #[test]
    fn the_catalog_indexes_the_references_it_is_handed() {
        let catalog = Catalog::new();
        let handed: Box<[Reference]> =
            Box::new([Reference::new("ownedBy", "group:default/team".into()).unwrap()]);
        let svc = ProcessedEntity {
            entity: entity("Component", "svc", json!({})),
            references: handed.clone(),
        };
        let team = entity("Group", "team", json!({"type": "team", "children": []}));
        apply(
            &catalog,
            "a",
            vec![
                unit("g", vec![team]),
                UnitEntities {
                    unit: "c".into(),
                    entities: vec![svc],
                },
            ],
        );
        assert_eq!(
            relations_of(&catalog, "component", "svc"),
            ["ownedBy group:default/team"]
        );
        assert_eq!(
            relations_of(&catalog, "group", "team"),
            ["ownerOf component:default/svc"]
        );
        let again = catalog.unit_entities("a", "c");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].references, handed);
    }

    #[test]
    fn a_unit_replaces_only_its_own_entities() {
        let catalog = Catalog::new();
        apply(
            &catalog,
            "a",
            vec![
                components("r1", &["x", "y"]),
                unit("r2", vec![entity("API", "z", json!({}))]),
            ],
        );
        apply(&catalog, "a", vec![components("r1", &["y"])]);
        assert_eq!(refs(&catalog), ["api:default/z", "component:default/y"]);
        assert_eq!(catalog.source_len("a"), 2);
        assert_eq!(catalog.units_len("a", &["r1".into()]), 1);
    }

    /// An entity removed through the API keeps its ref for its unit: a
    /// contesting unit stays a conflict; the unit's next read serves it
    /// again, or, if the file no longer declares it, lets it go.
    #[test]
    fn a_withheld_ref_stays_its_units_until_the_units_next_read() {
        let catalog = Catalog::new();
        let x = EntityKey::new("component", "default", "x");
        apply(&catalog, "a", vec![components("r1", &["x", "y"])]);
        catalog.withhold("a", "r1", &x);
        apply(&catalog, "a", vec![components("r1", &["y"])]);
        assert_eq!(refs(&catalog), ["component:default/y"], "no longer served");
        let contest = catalog.prepare("a", vec![components("r2", &["x"])]);
        catalog.publish();
        assert_eq!(contest.conflicts.len(), 1, "still r1's");
        assert_eq!(refs(&catalog), ["component:default/y"]);
        // A second removal in the unit keeps the first one withheld.
        let y = EntityKey::new("component", "default", "y");
        catalog.withhold("a", "r1", &y);
        apply(&catalog, "a", vec![components("r1", &[])]);
        let contest = catalog.prepare("a", vec![components("r2", &["x", "y"])]);
        catalog.publish();
        assert_eq!(contest.conflicts.len(), 2);
        // The unit's read serves x again.
        apply(&catalog, "a", vec![components("r1", &["x"])]);
        assert_eq!(refs(&catalog), ["component:default/x"]);
        assert_eq!(
            catalog.owner(&x).map(|o| o.unit.to_string()),
            Some("r1".into())
        );
        // y, no longer declared, is released: the contesting unit may take it.
        apply(&catalog, "a", vec![components("r2", &["x", "y"])]);
        assert_eq!(
            refs(&catalog),
            ["component:default/x", "component:default/y"]
        );
        assert_eq!(
            catalog.owner(&y).map(|o| o.unit.to_string()),
            Some("r2".into())
        );
        assert_eq!(
            catalog.owner(&x).map(|o| o.unit.to_string()),
            Some("r1".into())
        );
    }

    /// What the store keeps of withheld refs follows each apply, and a
    /// catalog restored from it keeps the rule.
    #[test]
    fn withheld_refs_are_reported_for_the_store_and_restored_from_it() {
        let catalog = Catalog::new();
        let x = EntityKey::new("component", "default", "x");
        apply(&catalog, "a", vec![components("r1", &["x", "y"])]);
        catalog.withhold("a", "r1", &x);
        let removal = apply(&catalog, "a", vec![components("r1", &["y"])]);
        let held = Withholding {
            key: x.clone(),
            unit: Some(Arc::from("r1")),
        };
        assert_eq!(removal.withheld, [held]);

        let restored = Catalog::new();
        restored.restore_withheld([(Owner::new("a", "r1"), x.clone())]);
        let contest = restored.prepare("a", vec![components("r2", &["x"])]);
        restored.publish();
        assert_eq!(contest.conflicts.len(), 1, "still r1's after a restart");
        // The unit's read decides, and the store hears it.
        let read = apply(&restored, "a", vec![components("r1", &["x"])]);
        assert_eq!(
            read.withheld,
            [Withholding {
                key: x.clone(),
                unit: None
            }]
        );
        assert_eq!(refs(&restored), ["component:default/x"]);
    }

    #[test]
    fn the_first_unit_keeps_a_contested_ref_and_its_uid() {
        let catalog = Catalog::new();
        let payments = EntityKey::new("component", "default", "payments");
        let newcomer = || {
            single(
                "AAA/payments",
                "component",
                "Payments",
                json!({"owner": "aaa"}),
            )
        };
        apply(
            &catalog,
            "a",
            single(
                "PAY/payments",
                "Component",
                "payments",
                json!({"owner": "pay"}),
            ),
        );
        let before = catalog.get(&payments).unwrap();
        let applied = apply(&catalog, "a", newcomer());
        assert_eq!(
            applied.conflicts,
            vec![Conflict {
                entity_ref: "component:default/Payments".into(),
                owner: Owner::new("a", "PAY/payments"),
                unit: "AAA/payments".into(),
            }]
        );
        assert!(
            applied.changes.is_empty(),
            "a refused takeover changes nothing"
        );
        assert_eq!(catalog.get(&payments).unwrap(), before);
        // Once the owner lets go, the newcomer gets it on its next read.
        apply(&catalog, "a", vec![unit("PAY/payments", vec![])]);
        let applied = apply(&catalog, "a", newcomer());
        assert!(applied.conflicts.is_empty());
        assert_eq!(catalog.get(&payments).unwrap().uid, before.uid);
    }

    #[test]
    fn a_change_restitches_exactly_the_entities_it_touches() {
        let catalog = Catalog::new();
        let mut units = team_owning_svc();
        units.push(unit(
            "other",
            vec![entity("Component", "other", json!({"owner": "elsewhere"}))],
        ));
        apply(&catalog, "a", units);
        assert_eq!(
            relations_of(&catalog, "group", "team"),
            ["ownerOf component:default/svc"]
        );
        let applied = apply(
            &catalog,
            "a",
            single("c", "Component", "svc", json!({"owner": "nobody"})),
        );
        let changed: Vec<String> = applied
            .changes
            .iter()
            .map(|c| match c {
                Change::Upsert { entity, .. } => entity.entity_ref.clone(),
                Change::Remove { key, .. } => key.as_str().to_owned(),
            })
            .collect();
        assert_eq!(changed, ["component:default/svc", "group:default/team"]);
        assert!(relations_of(&catalog, "group", "team").is_empty());
        // Reading the same content again changes nothing.
        let applied = apply(
            &catalog,
            "a",
            single("c", "Component", "svc", json!({"owner": "nobody"})),
        );
        assert!(applied.changes.is_empty());
    }

    #[test]
    fn an_entity_moves_between_units_of_one_batch_in_either_order() {
        for order in [["a", "b"], ["b", "a"]] {
            let catalog = Catalog::new();
            apply(&catalog, "s", vec![components("a", &["x"])]);
            let moved = |name: &str| match name {
                "a" => unit("a", vec![]),
                _ => components("b", &["x"]),
            };
            let applied = apply(&catalog, "s", order.iter().map(|u| moved(u)).collect());
            assert!(
                applied.conflicts.is_empty(),
                "{order:?}: {:?}",
                applied.conflicts
            );
            assert_eq!(refs(&catalog), ["component:default/x"], "{order:?}");
            assert_eq!(catalog.units("s"), ["b"], "{order:?}");
            // Stored anew under its new unit, though it is served the same.
            assert!(
                applied
                    .changes
                    .iter()
                    .any(|c| matches!(c, Change::Upsert { owner, .. } if &*owner.unit == "b")),
                "{order:?}"
            );
        }
    }

    #[test]
    fn a_unit_given_twice_in_one_batch_keeps_its_last_set() {
        let catalog = Catalog::new();
        apply(
            &catalog,
            "s",
            vec![components("u", &["a", "b"]), components("u", &["a"])],
        );
        assert_eq!(refs(&catalog), ["component:default/a"]);
        assert_eq!(catalog.units_len("s", &["u".into()]), 1);
    }

    #[test]
    fn sequence_numbers_grow_and_removals_are_numbered_too() {
        let catalog = Catalog::new();
        catalog.restore([], [], 41, 0);
        let first = apply(
            &catalog,
            "a",
            single("u", "Domain", "d", json!({"owner": "o"})),
        );
        let second = apply(&catalog, "a", vec![unit("u", vec![])]);
        let seqs: Vec<u64> = first
            .changes
            .iter()
            .chain(&second.changes)
            .map(Change::seq)
            .collect();
        assert_eq!(seqs, [42, 43]);
        assert!(matches!(second.changes[0], Change::Remove { .. }));
        assert_eq!(catalog.snapshot().last_seq(), 43);
        assert!(catalog.is_empty());
    }

    /// Start-up hands over the references stored with each entity: settle
    /// indexes them without parsing the served JSON, and re-renders nothing
    /// when what is stored is consistent.
    #[test]
    fn settling_indexes_the_references_restored_with_each_entity() {
        let source = Catalog::new();
        apply(&source, "a", team_owning_svc());
        let stored: Vec<_> = source
            .snapshot()
            .iter()
            .zip(1..)
            .map(|(e, seq)| {
                let text = e.references_to_store().unwrap();
                let owner = source.owner(&e.key).unwrap();
                (owner, (**e).clone(), seq, stitch::stored_references(&text))
            })
            .collect();
        let restored = Catalog::new();
        restored.restore_removals([], 0);
        restored.restore_entities(stored);
        restored.restored(2);
        assert!(restored.state.lock().unparsed.is_empty());
        assert!(restored.settle().changes.is_empty());
        restored.publish();
        // The index is live: the group loses its relation when svc moves away.
        apply(
            &restored,
            "a",
            single("c", "Component", "svc", json!({"owner": "nobody"})),
        );
        assert!(relations_of(&restored, "group", "team").is_empty());
    }

    /// Entities followed in from another replica carry no stored
    /// references: settling on takeover derives them from their JSON.
    #[test]
    fn settling_derives_the_references_of_followed_entities() {
        let source = Catalog::new();
        let applied = apply(&source, "a", team_owning_svc());
        let followed = applied
            .changes
            .into_iter()
            .map(|change| match change {
                Change::Upsert {
                    entity, owner, seq, ..
                } => Followed::Upsert {
                    owner,
                    entity: (*entity).clone(),
                    seq,
                },
                Change::Remove { key, seq, .. } => Followed::Remove { key, seq },
            })
            .collect();
        let follower = Catalog::new();
        follower.restore([], [], 0, 0);
        follower.follow(followed, 2, 0);
        assert!(follower.settle().changes.is_empty());
        follower.publish();
        apply(
            &follower,
            "a",
            single("c", "Component", "svc", json!({"owner": "nobody"})),
        );
        assert!(relations_of(&follower, "group", "team").is_empty());
    }

    #[test]
    fn settling_a_restored_catalog_builds_the_index_and_fixes_stale_relations() {
        let source = Catalog::new();
        apply(&source, "a", team_owning_svc());
        // Restore only the group: its served ownerOf relation is now stale.
        let group = source
            .get(&EntityKey::new("group", "default", "team"))
            .unwrap();
        let restored = Catalog::new();
        restored.restore([(Owner::new("a", "g"), (*group).clone(), 7)], [], 7, 0);
        let applied = restored.settle();
        restored.publish();
        assert_eq!(applied.changes.len(), 1);
        assert!(relations_of(&restored, "group", "team").is_empty());
        // And the index is live: a new owner shows up on the group.
        apply(
            &restored,
            "a",
            single("c", "Component", "svc", json!({"owner": "team"})),
        );
        assert_eq!(
            relations_of(&restored, "group", "team"),
            ["ownerOf component:default/svc"]
        );
    }
}
