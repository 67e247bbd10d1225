//! Catalog processing and the in-memory catalog that the API serves.
//!
//! - [`entity`]: the Backstage entity envelope and entity references.
//! - [`parse`]: untrusted `catalog-info.yaml` → entities, with budgets.
//! - [`Catalog`]: every source's current entity set; a source's new set
//!   replaces its old one in one step, so readers never see a half-applied run.

pub mod entity;
pub mod parse;
pub mod problem;
pub mod process;
pub mod query;
pub mod refs;
pub mod relations;
pub mod rules;
pub mod search;
pub mod stitch;
pub mod validate;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

pub use entity::{Entity, EntityKey};
use search::SearchRows;

/// An entity some other source already owns; it was not taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub entity_ref: String,
    /// The source that keeps the entity.
    pub owner: String,
    /// Where the rejected copy was read (its managed-by-location), if known.
    pub location: String,
}

/// An entity ready to serve: identity assigned, JSON rendered once, search
/// rows built once.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedEntity {
    pub key: EntityKey,
    /// `kind:namespace/name` with the kind lowercased, as Backstage prints it.
    pub entity_ref: String,
    pub uid: String,
    /// The served JSON body.
    pub json: Arc<str>,
    pub search: SearchRows,
    /// `backstage.io/managed-by-location` without the `url:` prefix.
    pub location: Option<String>,
    /// `backstage.io/managed-by-origin-location` without the `url:` prefix.
    pub origin: Option<String>,
}

impl PreparedEntity {
    /// Renders a stitched entity (relations, uid and etag already set by
    /// [`stitch`]) and builds its search rows.
    pub fn prepare(entity: &Entity) -> Self {
        let key = entity.key();
        let value = serde_json::to_value(entity).unwrap_or(Value::Null);
        Self {
            entity_ref: entity.entity_ref(),
            uid: entity
                .metadata
                .uid
                .clone()
                .unwrap_or_else(|| stitch::uid_for(key.as_str())),
            json: Arc::from(value.to_string()),
            search: SearchRows::build(&value),
            location: annotation_url(entity, entity::ANNOTATION_LOCATION),
            origin: annotation_url(entity, entity::ANNOTATION_ORIGIN_LOCATION),
            key,
        }
    }

    /// The body as a JSON value (for projections).
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }
}

fn annotation_url(entity: &Entity, name: &str) -> Option<String> {
    entity
        .metadata
        .annotations
        .get(name)
        .map(|v| v.strip_prefix("url:").unwrap_or(v).to_owned())
}

#[derive(Debug)]
struct Stored {
    source: String,
    /// The typed entity, only while stitching: between runs it is dropped
    /// (the rendered form is what is served) and parsed back when needed.
    entity: Option<Arc<Entity>>,
    /// What is served; `None` only while a new entity awaits rendering.
    prepared: Option<Arc<PreparedEntity>>,
}

impl Stored {
    /// The typed entity, parsed back from what is served if it was dropped.
    fn typed(&self) -> Option<Arc<Entity>> {
        self.entity.clone().or_else(|| {
            let prepared = self.prepared.as_ref()?;
            serde_json::from_str::<Entity>(&prepared.json)
                .ok()
                .map(Arc::new)
        })
    }
}

#[derive(Debug, Default)]
struct State {
    by_key: BTreeMap<EntityKey, Stored>,
    keys_by_source: HashMap<String, Vec<EntityKey>>,
}

/// An immutable view of the whole catalog, ordered by entity key. Readers
/// take one and never block writers for longer than an `Arc` clone.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub entities: Vec<Arc<PreparedEntity>>,
    /// Entities per source.
    counts: HashMap<String, usize>,
    by_key: HashMap<EntityKey, usize>,
    by_uid: HashMap<String, usize>,
}

impl Snapshot {
    pub fn get(&self, key: &EntityKey) -> Option<&Arc<PreparedEntity>> {
        self.by_key.get(key).map(|&i| &self.entities[i])
    }

    pub fn source_len(&self, source: &str) -> usize {
        self.counts.get(source).copied().unwrap_or(0)
    }

    pub fn by_uid(&self, uid: &str) -> Option<&Arc<PreparedEntity>> {
        self.by_uid.get(uid).map(|&i| &self.entities[i])
    }
}

/// The entities currently served, keyed by case-insensitive entity ref.
#[derive(Debug, Default)]
pub struct Catalog {
    state: RwLock<State>,
    snapshot: RwLock<Arc<Snapshot>>,
}

impl Catalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `entities` the whole contribution of `source`. An entity whose
    /// ref another source already owns stays with that owner (first come,
    /// first served, as in Backstage) and is returned as a conflict.
    pub fn replace_source(&self, source: &str, entities: Vec<Entity>) -> Vec<Conflict> {
        let mut state = self.state.write();
        let mut conflicts = Vec::new();
        let entities = entities.into_iter().map(|e| Stored {
            source: source.to_owned(),
            entity: Some(Arc::new(e)),
            prepared: None,
        });
        Self::replace_in(&mut state, source, entities, &mut conflicts);
        Self::stitch(&mut state);
        *self.snapshot.write() = Arc::new(Self::build_snapshot(&state));
        conflicts
    }

    /// Drops `source` and everything it contributes (a removed location).
    pub fn remove_source(&self, source: &str) {
        self.replace_source(source, Vec::new());
        self.state.write().keys_by_source.remove(source);
    }

    /// Serves entities exactly as they were rendered before (start-up from
    /// the store): no parsing, no stitching, so a large catalog is ready at
    /// once. Reverse relations that changed since are settled by
    /// [`Catalog::restitch`], which callers run right after, off the hot path.
    pub fn restore(&self, sources: Vec<(String, Vec<PreparedEntity>)>) -> Vec<Conflict> {
        let mut state = self.state.write();
        let mut conflicts = Vec::new();
        for (source, entities) in sources {
            let entities = entities.into_iter().map(|p| Stored {
                source: source.clone(),
                entity: None,
                prepared: Some(Arc::new(p)),
            });
            Self::replace_in(&mut state, &source, entities, &mut conflicts);
        }
        *self.snapshot.write() = Arc::new(Self::build_snapshot(&state));
        conflicts
    }

    /// Recomputes relations, uids and etags across the whole catalog.
    pub fn restitch(&self) {
        let mut state = self.state.write();
        Self::stitch(&mut state);
        *self.snapshot.write() = Arc::new(Self::build_snapshot(&state));
    }

    /// Relations cross sources: attach both directions to what is served
    /// and re-render exactly the entities whose stitched form changed. Two
    /// passes, one entity at a time, so memory stays at what is served plus
    /// the relation index (typed entities are parsed back when needed).
    fn stitch(state: &mut State) {
        let mut index = stitch::Index::new();
        for stored in state.by_key.values() {
            if let Some(entity) = stored.typed() {
                stitch::add_to_index(&mut index, &entity);
            }
        }
        for stored in state.by_key.values_mut() {
            let Some(entity) = stored.entity.take().or_else(|| stored.typed()) else {
                continue;
            };
            match stitch::stitched(&entity, &index) {
                Some(updated) => {
                    stored.prepared = Some(Arc::new(PreparedEntity::prepare(&updated)))
                }
                None if stored.prepared.is_none() => {
                    stored.prepared = Some(Arc::new(PreparedEntity::prepare(&entity)))
                }
                None => {}
            }
        }
    }

    fn replace_in(
        state: &mut State,
        source: &str,
        entities: impl Iterator<Item = Stored>,
        conflicts: &mut Vec<Conflict>,
    ) {
        if let Some(old_keys) = state.keys_by_source.remove(source) {
            for key in old_keys {
                if state.by_key.get(&key).is_some_and(|s| s.source == source) {
                    state.by_key.remove(&key);
                }
            }
        }
        let mut keys = Vec::new();
        for stored in entities {
            let Some((key, entity_ref, location)) = stored
                .entity
                .as_ref()
                .map(|e| {
                    (
                        e.key(),
                        e.entity_ref(),
                        annotation_url(e, entity::ANNOTATION_LOCATION),
                    )
                })
                .or_else(|| {
                    stored
                        .prepared
                        .as_ref()
                        .map(|p| (p.key.clone(), p.entity_ref.clone(), p.location.clone()))
                })
            else {
                continue;
            };
            match state.by_key.get(&key) {
                Some(existing) => conflicts.push(Conflict {
                    entity_ref,
                    owner: existing.source.clone(),
                    location: location.unwrap_or_default(),
                }),
                None => {
                    keys.push(key.clone());
                    state.by_key.insert(key, stored);
                }
            }
        }
        state.keys_by_source.insert(source.to_owned(), keys);
    }

    fn build_snapshot(state: &State) -> Snapshot {
        let entities: Vec<Arc<PreparedEntity>> = state
            .by_key
            .values()
            .filter_map(|s| s.prepared.clone())
            .collect();
        let by_key = entities
            .iter()
            .enumerate()
            .map(|(i, e)| (e.key.clone(), i))
            .collect();
        let by_uid = entities
            .iter()
            .enumerate()
            .map(|(i, e)| (e.uid.clone(), i))
            .collect();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for stored in state.by_key.values().filter(|s| s.prepared.is_some()) {
            *counts.entry(stored.source.clone()).or_default() += 1;
        }
        Snapshot {
            entities,
            counts,
            by_key,
            by_uid,
        }
    }

    /// The current view of every entity.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read())
    }

    pub fn get(&self, key: &EntityKey) -> Option<Arc<PreparedEntity>> {
        self.snapshot().get(key).cloned()
    }

    pub fn len(&self) -> usize {
        self.snapshot().entities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What `source` currently serves, rendered (what the store keeps, and
    /// what a run falls back on for files it cannot read).
    pub fn source_served(&self, source: &str) -> Vec<Arc<PreparedEntity>> {
        let state = self.state.read();
        state
            .keys_by_source
            .get(source)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| state.by_key.get(k)?.prepared.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The keys of the entities `source` currently contributes.
    pub fn source_keys(&self, source: &str) -> Vec<EntityKey> {
        self.state
            .read()
            .keys_by_source
            .get(source)
            .cloned()
            .unwrap_or_default()
    }

    /// How many entities `source` currently contributes.
    /// How many entities `source` currently serves (never waits for a
    /// writer: it reads the snapshot).
    pub fn source_len(&self, source: &str) -> usize {
        self.snapshot().source_len(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(kind: &str, name: &str) -> Entity {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": kind,
            "metadata": {"name": name},
        }))
        .unwrap()
    }

    #[test]
    fn replacing_a_source_swaps_its_whole_set() {
        let catalog = Catalog::new();
        catalog.replace_source(
            "a",
            vec![entity("Component", "x"), entity("Component", "y")],
        );
        catalog.replace_source("b", vec![entity("API", "z")]);
        catalog.replace_source("a", vec![entity("Component", "y")]);
        let refs: Vec<_> = catalog
            .snapshot()
            .entities
            .iter()
            .map(|e| e.entity_ref.clone())
            .collect();
        assert_eq!(refs, vec!["api:default/z", "component:default/y"]);
        assert_eq!(catalog.source_len("a"), 1);
    }

    #[test]
    fn first_owner_keeps_a_contested_ref() {
        let catalog = Catalog::new();
        catalog.replace_source("a", vec![entity("Component", "x")]);
        let conflicts = catalog.replace_source("b", vec![entity("component", "X")]);
        assert_eq!(
            conflicts,
            vec![Conflict {
                entity_ref: "component:default/X".into(),
                owner: "a".into(),
                location: String::new(),
            }]
        );
        assert!(
            catalog
                .get(&EntityKey::new("COMPONENT", "default", "x"))
                .is_some()
        );
        assert_eq!(catalog.source_len("b"), 0);
    }
}
