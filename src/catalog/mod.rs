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
pub mod refs;
pub mod relations;
pub mod rules;
pub mod stitch;
pub mod validate;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;

pub use entity::{Entity, EntityKey};

/// An entity some other source already owns; it was not taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub entity_ref: String,
    pub owner: String,
}

#[derive(Debug, Clone)]
struct Stored {
    source: String,
    entity: Arc<Entity>,
}

#[derive(Debug, Default)]
struct State {
    by_key: BTreeMap<EntityKey, Stored>,
    keys_by_source: HashMap<String, Vec<EntityKey>>,
}

/// The entities currently served, keyed by case-insensitive entity ref.
#[derive(Debug, Default)]
pub struct Catalog {
    state: RwLock<State>,
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
            let key = entity.key();
            match state.by_key.get(&key) {
                Some(existing) => conflicts.push(Conflict {
                    entity_ref: entity.entity_ref(),
                    owner: existing.source.clone(),
                }),
                None => {
                    keys.push(key.clone());
                    state.by_key.insert(
                        key,
                        Stored {
                            source: source.to_owned(),
                            entity: Arc::new(entity),
                        },
                    );
                }
            }
        }
        state.keys_by_source.insert(source.to_owned(), keys);
        // Relations cross sources: attach both directions to what is served.
        stitch::restitch(state.by_key.values_mut().map(|s| &mut s.entity));
        conflicts
    }

    /// Every entity, ordered by entity ref.
    pub fn entities(&self) -> Vec<Arc<Entity>> {
        self.state
            .read()
            .by_key
            .values()
            .map(|s| Arc::clone(&s.entity))
            .collect()
    }

    pub fn get(&self, key: &EntityKey) -> Option<Arc<Entity>> {
        self.state
            .read()
            .by_key
            .get(key)
            .map(|s| Arc::clone(&s.entity))
    }

    pub fn len(&self) -> usize {
        self.state.read().by_key.len()
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
        let refs: Vec<_> = catalog.entities().iter().map(|e| e.entity_ref()).collect();
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
                owner: "a".into()
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
