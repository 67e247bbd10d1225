//! The relation index the stitcher reads: every relation the catalog's
//! entities emit, by the entity it belongs to. It is kept up to date one
//! entity at a time, so a change costs what it touches, not the catalog.
//!
//! Two entities may emit the same relation (a Group's `children` and its
//! child's `parent`), so each relation is counted: it stays until its last
//! emitter takes it back.

use std::collections::HashMap;

use super::entity::Relation;
use super::relations::Emitted;

/// Each entity's relations, sorted by type then target, with how many
/// entities emit each: a small sorted `Vec` per entity is a fraction of a
/// map's memory for the few relations most entities have.
#[derive(Debug, Default)]
pub(crate) struct RelationIndex {
    by_source: HashMap<String, Vec<Counted>>,
}

#[derive(Debug)]
struct Counted {
    type_: &'static str,
    target: String,
    emitters: u32,
}

impl Counted {
    fn key(&self) -> (&'static str, &str) {
        (self.type_, &self.target)
    }
}

impl RelationIndex {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn add(&mut self, emitted: &[Emitted]) {
        for relation in emitted {
            let relations = self.by_source.entry(relation.source.clone()).or_default();
            let key = (relation.type_, relation.target.as_str());
            match relations.binary_search_by(|c| c.key().cmp(&key)) {
                Ok(at) => relations[at].emitters += 1,
                Err(at) => relations.insert(
                    at,
                    Counted {
                        type_: relation.type_,
                        target: relation.target.clone(),
                        emitters: 1,
                    },
                ),
            }
        }
    }

    pub(crate) fn remove(&mut self, emitted: &[Emitted]) {
        for relation in emitted {
            let Some(relations) = self.by_source.get_mut(&relation.source) else {
                continue;
            };
            let key = (relation.type_, relation.target.as_str());
            if let Ok(at) = relations.binary_search_by(|c| c.key().cmp(&key)) {
                relations[at].emitters = relations[at].emitters.saturating_sub(1);
                if relations[at].emitters == 0 {
                    relations.remove(at);
                }
            }
            if relations.is_empty() {
                self.by_source.remove(&relation.source);
            }
        }
    }

    /// The relations served on the entity with this canonical ref, sorted
    /// by type then target as Backstage serves them.
    pub(crate) fn relations_of(&self, entity_ref: &str) -> Vec<Relation> {
        self.by_source
            .get(entity_ref)
            .map(|relations| {
                relations
                    .iter()
                    .map(|c| Relation {
                        type_: c.type_.to_owned(),
                        target_ref: c.target.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emitted(source: &str, type_: &'static str, target: &str) -> Emitted {
        Emitted {
            source: source.into(),
            type_,
            target: target.into(),
        }
    }

    #[test]
    fn a_relation_emitted_twice_stays_until_both_emitters_take_it_back() {
        let mut index = RelationIndex::new();
        let by_parent = [emitted("group:default/p", "parentOf", "group:default/c")];
        let by_child = by_parent.clone();
        index.add(&by_parent);
        index.add(&by_child);
        index.remove(&by_parent);
        assert_eq!(index.relations_of("group:default/p").len(), 1);
        index.remove(&by_child);
        assert!(index.relations_of("group:default/p").is_empty());
        assert!(index.by_source.is_empty(), "empty entries are dropped");
    }

    #[test]
    fn relations_come_sorted_by_type_then_target() {
        let mut index = RelationIndex::new();
        index.add(&[
            emitted("a", "partOf", "z"),
            emitted("a", "ownedBy", "y"),
            emitted("a", "ownedBy", "x"),
        ]);
        let served: Vec<_> = index
            .relations_of("a")
            .into_iter()
            .map(|r| format!("{}:{}", r.type_, r.target_ref))
            .collect();
        assert_eq!(served, ["ownedBy:x", "ownedBy:y", "partOf:z"]);
    }
}
