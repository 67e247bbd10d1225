//! Catalog processing and the in-memory catalog that the API serves.
//!
//! - [`entity`]: the Backstage entity envelope and entity references.
//! - [`parse`]: untrusted `catalog-info.yaml` → entities, with budgets.
//! - [`Catalog`]: every source's current entity set; a source's new set
//!   replaces its old one in one step, so readers never see a half-applied run.

pub mod entity;
pub mod parse;
pub mod query;
pub mod search;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;
use uuid::Uuid;

pub use entity::{Entity, EntityKey};
use search::SearchRows;

/// Namespace for name-based UUIDs: uids from entity refs, etags from content.
const UID_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_4c1e_9a57_4f0e_b2a3_53c1_0d1e_a7c4);

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
    /// Assigns `metadata.uid` (stable per entity ref) and `metadata.etag`
    /// (changes exactly when the content does), unless the entity has them.
    pub fn prepare(entity: Entity) -> Self {
        let key = entity.key();
        let entity_ref = entity.entity_ref();
        let location = annotation_url(&entity, entity::ANNOTATION_LOCATION);
        let origin = annotation_url(&entity, entity::ANNOTATION_ORIGIN_LOCATION);
        let mut value = serde_json::to_value(&entity).unwrap_or(Value::Null);
        let uid = Uuid::new_v5(&UID_NAMESPACE, key.as_str().as_bytes()).to_string();
        let content = value.to_string();
        let etag = Uuid::new_v5(&UID_NAMESPACE, content.as_bytes())
            .simple()
            .to_string();
        let mut uid_out = uid;
        if let Some(Value::Object(metadata)) = value.get_mut("metadata") {
            match metadata.get("uid").and_then(Value::as_str) {
                Some(existing) => uid_out = existing.to_owned(),
                None => {
                    metadata.insert("uid".into(), Value::String(uid_out.clone()));
                }
            }
            metadata.entry("etag").or_insert(Value::String(etag));
        }
        let search = SearchRows::build(&value);
        Self {
            key,
            entity_ref,
            uid: uid_out,
            json: Arc::from(value.to_string()),
            search,
            location,
            origin,
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
    entity: Arc<PreparedEntity>,
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
    by_key: HashMap<EntityKey, usize>,
    by_uid: HashMap<String, usize>,
}

impl Snapshot {
    pub fn get(&self, key: &EntityKey) -> Option<&Arc<PreparedEntity>> {
        self.by_key.get(key).map(|&i| &self.entities[i])
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
        self.replace_prepared(
            source,
            entities.into_iter().map(PreparedEntity::prepare).collect(),
        )
    }

    pub fn replace_prepared(&self, source: &str, entities: Vec<PreparedEntity>) -> Vec<Conflict> {
        let mut state = self.state.write();
        if let Some(old_keys) = state.keys_by_source.remove(source) {
            for key in old_keys {
                if state.by_key.get(&key).is_some_and(|s| s.source == source) {
                    state.by_key.remove(&key);
                }
            }
        }
        let mut conflicts = Vec::new();
        let mut keys = Vec::with_capacity(entities.len());
        for entity in entities {
            match state.by_key.get(&entity.key) {
                Some(existing) => conflicts.push(Conflict {
                    entity_ref: entity.entity_ref.clone(),
                    owner: existing.source.clone(),
                    location: entity.location.clone().unwrap_or_default(),
                }),
                None => {
                    keys.push(entity.key.clone());
                    state.by_key.insert(
                        entity.key.clone(),
                        Stored {
                            source: source.to_owned(),
                            entity: Arc::new(entity),
                        },
                    );
                }
            }
        }
        state.keys_by_source.insert(source.to_owned(), keys);
        let snapshot = Self::build_snapshot(&state);
        *self.snapshot.write() = Arc::new(snapshot);
        conflicts
    }

    fn build_snapshot(state: &State) -> Snapshot {
        let entities: Vec<Arc<PreparedEntity>> = state
            .by_key
            .values()
            .map(|s| Arc::clone(&s.entity))
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
        Snapshot {
            entities,
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

    /// How many entities `source` currently contributes.
    pub fn source_len(&self, source: &str) -> usize {
        self.state
            .read()
            .keys_by_source
            .get(source)
            .map_or(0, Vec::len)
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
