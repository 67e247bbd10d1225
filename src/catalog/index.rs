//! The relation index the stitcher reads: the relations other entities
//! emit towards an entity (the reverse ones: a team's `ownerOf`), by the
//! entity they are served on. An entity's own forward relations are not
//! held here: they are its references, which the catalog keeps anyway, and
//! [`RelationIndex::relations_of`] merges them in. It is kept up to date one
//! entity at a time, so a change costs what it touches, not the catalog.
//!
//! Two entities may emit the same relation (a Group's `children` and its
//! child's `parent`), so each relation is counted: it stays until its last
//! emitter takes it back, and one also made forward is served once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::entity::Relation;
use super::relations::{Emitted, Reference};

/// Each entity's relations, sorted by type then target, with how many
/// entities emit each: a small sorted `Vec` per entity is a fraction of a
/// map's memory for the few relations most entities have. Every ref is
/// held once (`refs`) and shared: a team that owns 5,000 entities is one
/// string, not 5,000.
#[derive(Debug, Default)]
pub(crate) struct RelationIndex {
    by_source: HashMap<Arc<str>, Vec<Counted>>,
    refs: HashSet<Arc<str>>,
}

/// 24 bytes: the type as its place in [`TYPES`], not a 16-byte `&str`.
#[derive(Debug)]
struct Counted {
    target: Arc<str>,
    emitters: u32,
    type_: u8,
}

impl Counted {
    fn key(&self) -> (&'static str, &str) {
        (type_name(self.type_), &self.target)
    }
}

/// Every relation type [`super::relations`] emits (a test keeps them in
/// step); the index stores a type as its position here.
const TYPES: &[&str] = &[
    "apiConsumedBy",
    "apiProvidedBy",
    "childOf",
    "consumesApi",
    "dependencyOf",
    "dependsOn",
    "hasMember",
    "hasPart",
    "memberOf",
    "ownedBy",
    "ownerOf",
    "parentOf",
    "partOf",
    "providesApi",
];

fn type_code(type_: &str) -> Option<u8> {
    TYPES
        .iter()
        .position(|t| *t == type_)
        .and_then(|i| u8::try_from(i).ok())
}

fn type_name(code: u8) -> &'static str {
    TYPES.get(usize::from(code)).copied().unwrap_or_default()
}

impl RelationIndex {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The shared copy of `text`.
    fn intern(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.refs.get(text) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(text);
        self.refs.insert(Arc::clone(&shared));
        shared
    }

    /// Drops the shared copy of `text` once nothing else holds it.
    fn release(&mut self, text: &str) {
        if self
            .refs
            .get(text)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            self.refs.remove(text);
        }
    }

    /// Points `references` at the index's copy of each target, so an
    /// entity's kept references cost no string of their own.
    pub(crate) fn share(&mut self, references: &mut [Reference]) {
        for reference in references {
            reference.target = self.intern(&reference.target);
        }
    }

    /// Indexes the reverse relations of `emitted` (forward ones are the
    /// emitter's own references).
    pub(crate) fn add(&mut self, emitted: &[Emitted]) {
        for relation in emitted.iter().filter(|r| !r.forward) {
            let key = (relation.type_, relation.target.as_str());
            let found = self
                .by_source
                .get(relation.source.as_str())
                .map(|relations| relations.binary_search_by(|c| c.key().cmp(&key)));
            if let Some(Ok(at)) = found {
                if let Some(relations) = self.by_source.get_mut(relation.source.as_str()) {
                    relations[at].emitters += 1;
                }
                continue;
            }
            let Some(type_) = type_code(relation.type_) else {
                tracing::error!(
                    relation = relation.type_,
                    "a relation of a type the index does not know is not served"
                );
                continue;
            };
            let target = self.intern(&relation.target);
            let source = self.intern(&relation.source);
            let relations = self.by_source.entry(source).or_default();
            let at = found.and_then(Result::err).unwrap_or(0);
            relations.insert(
                at,
                Counted {
                    target,
                    emitters: 1,
                    type_,
                },
            );
        }
    }

    pub(crate) fn remove(&mut self, emitted: &[Emitted]) {
        for relation in emitted.iter().filter(|r| !r.forward) {
            let Some(relations) = self.by_source.get_mut(relation.source.as_str()) else {
                continue;
            };
            let key = (relation.type_, relation.target.as_str());
            let mut dropped = None;
            if let Ok(at) = relations.binary_search_by(|c| c.key().cmp(&key)) {
                relations[at].emitters = relations[at].emitters.saturating_sub(1);
                if relations[at].emitters == 0 {
                    dropped = Some(relations.remove(at));
                }
            }
            if relations.is_empty() {
                self.by_source.remove(relation.source.as_str());
            }
            if let Some(dropped) = dropped {
                drop(dropped);
                self.release(&relation.target);
                self.release(&relation.source);
            }
        }
    }

    /// The relations served on the entity with this canonical ref, whose
    /// own references are `own`: sorted by type then target as Backstage
    /// serves them, each once.
    pub(crate) fn relations_of(&self, entity_ref: &str, own: &[Reference]) -> Vec<Relation> {
        let mut all: Vec<(&str, &str)> = own.iter().map(|r| (r.forward(), &*r.target)).collect();
        if let Some(reverse) = self.by_source.get(entity_ref) {
            all.extend(reverse.iter().map(Counted::key));
        }
        all.sort_unstable();
        all.dedup();
        all.into_iter()
            .map(|(type_, target)| Relation {
                type_: type_.to_owned(),
                target_ref: target.to_owned(),
            })
            .collect()
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
            forward: false,
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
        assert_eq!(index.relations_of("group:default/p", &[]).len(), 1);
        index.remove(&by_child);
        assert!(index.relations_of("group:default/p", &[]).is_empty());
        assert!(index.by_source.is_empty(), "empty entries are dropped");
        assert!(index.refs.is_empty(), "and the refs no relation names");
    }

    /// Every type a built-in kind emits has a code, so none is dropped.
    #[test]
    fn every_emitted_relation_type_has_a_code() {
        use crate::catalog::relations::{expand, references};
        for kind in [
            "Component",
            "API",
            "Resource",
            "User",
            "Group",
            "System",
            "Domain",
        ] {
            let entity: crate::catalog::Entity = serde_json::from_value(serde_json::json!({
                "apiVersion": "backstage.io/v1alpha1", "kind": kind, "metadata": {"name": "x"},
                "spec": {"owner": "o", "subcomponentOf": "component:p", "providesApis": ["a"],
                         "consumesApis": ["b"], "dependsOn": ["component:d"], "dependencyOf": ["component:e"],
                         "system": "s", "domain": "d", "memberOf": ["g"], "parent": "p",
                         "children": ["c"], "members": ["u"]}
            }))
            .unwrap();
            for emitted in expand("k:default/x", &references(&entity).unwrap()) {
                assert_eq!(
                    type_code(emitted.type_).map(type_name),
                    Some(emitted.type_),
                    "{kind}"
                );
            }
        }
        assert!(TYPES.is_sorted(), "codes keep the order of the names");
    }

    /// A Group's `children` and its child's `parent` both emit the child's
    /// `childOf`: the child holds it as its own reference, the parent's
    /// expansion puts it in the index, and it is served once; the index
    /// holds nothing for what an entity emits on itself.
    #[test]
    fn own_references_merge_with_the_reverse_ones_once() {
        use crate::catalog::relations::expand;
        let reference = |forward, target: &str| Reference::new(forward, target.into()).unwrap();
        let parent = [reference("parentOf", "group:default/c")];
        let child = [reference("childOf", "group:default/p")];
        let mut index = RelationIndex::new();
        index.add(&expand("group:default/p", &parent));
        index.add(&expand("group:default/c", &child));
        fn served(index: &RelationIndex, of: &str, own: &[Reference]) -> Vec<String> {
            index
                .relations_of(of, own)
                .into_iter()
                .map(|r| format!("{}:{}", r.type_, r.target_ref))
                .collect()
        }
        assert_eq!(
            served(&index, "group:default/c", &child),
            ["childOf:group:default/p"]
        );
        assert_eq!(
            served(&index, "group:default/p", &parent),
            ["parentOf:group:default/c"]
        );
        let owner = [reference("ownedBy", "group:default/p")];
        index.add(&expand("component:default/x", &owner));
        assert!(
            !index.by_source.contains_key("component:default/x"),
            "no entry for an entity's own relations"
        );
        assert_eq!(
            served(&index, "group:default/p", &parent),
            ["ownerOf:component:default/x", "parentOf:group:default/c"]
        );
        index.remove(&expand("group:default/c", &child));
        assert_eq!(
            served(&index, "group:default/p", &parent),
            ["ownerOf:component:default/x", "parentOf:group:default/c"],
            "its own reference still serves it"
        );
        assert!(served(&index, "group:default/p", &[]) == ["ownerOf:component:default/x"]);
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
            .relations_of("a", &[])
            .into_iter()
            .map(|r| format!("{}:{}", r.type_, r.target_ref))
            .collect();
        assert_eq!(served, ["ownedBy:x", "ownedBy:y", "partOf:z"]);
    }
}
