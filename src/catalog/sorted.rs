//! Indexes kept with each snapshot so the common sorted pages and facets
//! need no scan of the catalog: per sorted field, the entities with a value
//! in order of `(lowercased first value, key)`; per faceted field, how many
//! entities carry each value. Updated entity by entity as the snapshot
//! changes (work grows with the change), and persistent like the snapshot,
//! so publishing shares them. Other fields fall back to a scan, and so does
//! every field while the indexes of a restored catalog are not built yet
//! (they are built in bulk after start-up: [`Indexes::build`]).

use std::sync::Arc;

use super::EntityKey;
use super::prepared::PreparedEntity;
use super::search::SearchRows;

/// Fields whose order is indexed: what Backstage's tables and clients sort
/// by. Entities without a value are not held (they are served last, found
/// by walking the snapshot).
pub(crate) const SORTED: &[&str] = &[
    "metadata.name",
    "metadata.title",
    "kind",
    "spec.type",
    "spec.lifecycle",
    "spec.owner",
];

/// Fields whose value counts are kept: what Backstage's pickers ask for.
pub(crate) const FACETED: &[&str] = &[
    "kind",
    "metadata.namespace",
    "spec.type",
    "spec.lifecycle",
    "spec.owner",
    "spec.system",
    "metadata.tags",
    "relations.ownedby",
];

/// An entity's place in a sorted index: its lowercased value, then its
/// key. A value is held once per index (entities with the same value share
/// it), and a name equal to the key's own is not held at all.
#[derive(Debug, Clone)]
pub(crate) struct SortEntry {
    /// `None`: the name part of `key` (a `metadata.name` as the key spells it).
    value: Option<Arc<str>>,
    key: EntityKey,
}

impl SortEntry {
    /// A position to look up or start a walk from.
    pub(crate) fn at(value: &str, key: EntityKey) -> Self {
        Self {
            value: Some(Arc::from(value)),
            key,
        }
    }

    pub(crate) fn value(&self) -> &str {
        match &self.value {
            Some(value) => value,
            None => key_name(&self.key),
        }
    }

    pub(crate) fn key(&self) -> &EntityKey {
        &self.key
    }

    /// Whether both hold the same value (cheaply when it is shared).
    pub(crate) fn same_value(&self, other: &Self) -> bool {
        match (&self.value, &other.value) {
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) => true,
            _ => self.value() == other.value(),
        }
    }
}

/// The name part of a key, `kind:namespace/name`.
fn key_name(key: &EntityKey) -> &str {
    key.as_str().split_once('/').map_or("", |(_, name)| name)
}

impl PartialEq for SortEntry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for SortEntry {}

impl PartialOrd for SortEntry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SortEntry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.value(), &self.key).cmp(&(other.value(), &other.key))
    }
}

/// The value counts of one field.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facet {
    /// Value as written → entities carrying it (each once).
    pub counts: imbl::OrdMap<Arc<str>, usize>,
    /// Entities carrying more than one value: while there are none, the
    /// counts of an equality filter add up to the entities it matches.
    multi: usize,
}

impl Facet {
    /// How many entities have one of `values` (lowercased), when that can
    /// be read off the counts: one value per entity.
    pub(crate) fn count_in(&self, values: &[String]) -> Option<usize> {
        (self.multi == 0).then(|| {
            self.counts
                .iter()
                .filter(|(value, _)| values.iter().any(|want| super::search::eq_ci(value, want)))
                .map(|(_, count)| count)
                .sum()
        })
    }
}

/// The indexes of one snapshot; `built: None` while a restored catalog's
/// are being built (every query scans meanwhile, and changes leave them to
/// the build, which catches up with them).
#[derive(Debug, Clone)]
pub(crate) struct Indexes {
    built: Option<Built>,
}

#[derive(Debug, Clone)]
struct Built {
    sorted: Vec<imbl::OrdSet<SortEntry>>,
    facets: Vec<Facet>,
}

/// An empty catalog's: built, and kept as entities arrive.
impl Default for Indexes {
    fn default() -> Self {
        Self {
            built: Some(Built {
                sorted: vec![imbl::OrdSet::new(); SORTED.len()],
                facets: vec![Facet::default(); FACETED.len()],
            }),
        }
    }
}

/// What the indexes hold of one entity.
#[derive(Debug, Default, PartialEq)]
struct Indexed {
    /// Per [`SORTED`] field: the lowercased first value.
    first: Vec<Option<String>>,
    /// Per [`FACETED`] field: the distinct values, as written.
    values: Vec<Vec<String>>,
}

impl Indexed {
    /// One pass over the entity's rows.
    fn of(rows: &SearchRows) -> Self {
        let mut out = Self {
            first: vec![None; SORTED.len()],
            values: vec![Vec::new(); FACETED.len()],
        };
        for row in rows.rows() {
            let Some(value) = row.value else { continue };
            if let Some(i) = SORTED.iter().position(|f| *f == row.key)
                && out.first[i].is_none()
            {
                out.first[i] = Some(value.to_lowercase());
            }
            if let Some(i) = FACETED.iter().position(|f| *f == row.key)
                && !out.values[i].iter().any(|v| v == value)
            {
                out.values[i].push(value.to_owned());
            }
        }
        out
    }
}

impl Indexes {
    /// Not built yet: queries scan until [`Indexes::build`]'s are installed.
    pub(crate) fn unbuilt() -> Self {
        Self { built: None }
    }

    pub(crate) fn is_built(&self) -> bool {
        self.built.is_some()
    }

    /// The indexes of `entities` (in key order), built in bulk: each field's
    /// entries are sorted once and inserted in order, values shared between
    /// neighbours, instead of one lookup and insert per entity and field.
    pub(crate) fn build<'a>(entities: impl Iterator<Item = &'a PreparedEntity>) -> Self {
        let mut firsts: Vec<Vec<(String, &EntityKey)>> = vec![Vec::new(); SORTED.len()];
        let mut counts: Vec<std::collections::HashMap<String, usize>> =
            vec![std::collections::HashMap::new(); FACETED.len()];
        let mut facets = vec![Facet::default(); FACETED.len()];
        for entity in entities {
            let indexed = Indexed::of(&entity.search);
            for (into, first) in firsts.iter_mut().zip(indexed.first) {
                if let Some(first) = first {
                    into.push((first, &entity.key));
                }
            }
            for ((counts, facet), values) in counts.iter_mut().zip(&mut facets).zip(indexed.values)
            {
                facet.multi += usize::from(values.len() > 1);
                for value in values {
                    *counts.entry(value).or_default() += 1;
                }
            }
        }
        for (facet, counts) in facets.iter_mut().zip(counts) {
            facet.counts = counts
                .into_iter()
                .map(|(value, count)| (Arc::from(value), count))
                .collect();
        }
        let sorted = firsts
            .into_iter()
            .zip(SORTED)
            .map(|(mut entries, field)| {
                // Stable: entities come in key order, which breaks ties.
                entries.sort_by(|(a, _), (b, _)| a.cmp(b));
                let mut set = imbl::OrdSet::new();
                let mut shared: Option<Arc<str>> = None;
                for (value, key) in entries {
                    let key = key.clone();
                    if *field == "metadata.name" && key_name(&key) == value {
                        set.insert(SortEntry { value: None, key });
                        continue;
                    }
                    let value = match shared.take() {
                        Some(last) if *last == *value => last,
                        _ => Arc::from(value),
                    };
                    shared = Some(Arc::clone(&value));
                    set.insert(SortEntry {
                        value: Some(value),
                        key,
                    });
                }
                set
            })
            .collect();
        Self {
            built: Some(Built { sorted, facets }),
        }
    }

    /// The sorted index of `field` (lowercased), if it has one.
    pub(crate) fn sorted(&self, field: &str) -> Option<&imbl::OrdSet<SortEntry>> {
        let i = SORTED.iter().position(|f| *f == field)?;
        self.built.as_ref()?.sorted.get(i)
    }

    /// The value counts of `field` (lowercased), if they are kept.
    pub(crate) fn facet(&self, field: &str) -> Option<&Facet> {
        let i = FACETED.iter().position(|f| *f == field)?;
        self.built.as_ref()?.facets.get(i)
    }

    /// `old` is replaced by `new` (same key), or added or removed. Nothing
    /// while not built: the build catches up with the change.
    pub(crate) fn update(&mut self, old: Option<&PreparedEntity>, new: Option<&PreparedEntity>) {
        let Some(built) = &mut self.built else {
            return;
        };
        built.update(old, new);
    }
}

impl Built {
    fn update(&mut self, old: Option<&PreparedEntity>, new: Option<&PreparedEntity>) {
        let Some(key) = new.or(old).map(|e| &e.key) else {
            return;
        };
        if let (Some(old), Some(new)) = (old, new)
            && old.search == new.search
        {
            return;
        }
        let before = old.map(|e| Indexed::of(&e.search)).unwrap_or_default();
        let after = new.map(|e| Indexed::of(&e.search)).unwrap_or_default();
        for (i, facet) in self.facets.iter_mut().enumerate() {
            let (was, is) = (before.values.get(i), after.values.get(i));
            if was == is {
                continue;
            }
            for value in was.into_iter().flatten() {
                let gone = match facet.counts.get_mut(value.as_str()) {
                    Some(count) => {
                        *count = count.saturating_sub(1);
                        *count == 0
                    }
                    None => false,
                };
                if gone {
                    facet.counts.remove(value.as_str());
                }
            }
            for value in is.into_iter().flatten() {
                match facet.counts.get_mut(value.as_str()) {
                    Some(count) => *count += 1,
                    None => {
                        facet.counts.insert(Arc::from(value.as_str()), 1);
                    }
                }
            }
            let multi = |values: Option<&Vec<String>>| values.is_some_and(|v| v.len() > 1);
            facet.multi =
                (facet.multi + usize::from(multi(is))).saturating_sub(usize::from(multi(was)));
        }
        for (i, field) in SORTED.iter().enumerate() {
            let (was, is) = (
                before.first.get(i).cloned().flatten(),
                after.first.get(i).cloned().flatten(),
            );
            if was == is {
                continue;
            }
            let Some(set) = self.sorted.get_mut(i) else {
                continue;
            };
            if let Some(value) = was {
                set.remove(&SortEntry::at(&value, key.clone()));
            }
            if let Some(value) = is {
                let entry = entry(set, field, value, key);
                set.insert(entry);
            }
        }
    }
}

/// `key`'s entry in `set` for `value`: the key's own name, or the text
/// another entry with this value already holds, else a new one.
fn entry(set: &imbl::OrdSet<SortEntry>, field: &str, value: String, key: &EntityKey) -> SortEntry {
    let key = key.clone();
    if field == "metadata.name" && key_name(&key) == value {
        return SortEntry { value: None, key };
    }
    let probe = SortEntry::at(&value, EntityKey::from_stored(""));
    let shared = set
        .range(probe.clone()..)
        .next()
        .filter(|found| found.value() == value)
        .and_then(|found| found.value.clone());
    SortEntry {
        value: shared.or(probe.value),
        key,
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::{Catalog, Entity, UnitEntities};
    use serde_json::{Value, json};

    fn entity(name: &str, kind: &str, tags: Value) -> Entity {
        serde_json::from_value(json!({"apiVersion": "backstage.io/v1alpha1", "kind": kind,
            "metadata": {"name": name, "tags": tags}, "spec": {"type": "service"}}))
        .unwrap()
    }

    fn names(catalog: &Catalog, field: &str) -> Vec<(String, String)> {
        let snapshot = catalog.snapshot();
        snapshot
            .indexes()
            .sorted(field)
            .unwrap()
            .iter()
            .map(|e| (e.value().to_owned(), e.key().as_str().to_owned()))
            .collect()
    }

    fn counts(catalog: &Catalog, field: &str) -> Vec<(String, usize)> {
        let snapshot = catalog.snapshot();
        snapshot
            .indexes()
            .facet(field)
            .unwrap()
            .counts
            .iter()
            .map(|(v, c)| (v.to_string(), *c))
            .collect()
    }

    #[test]
    fn follows_adds_changes_and_removals() {
        let catalog = Catalog::new();
        let apply = |units: Vec<(&str, Vec<Entity>)>| apply(&catalog, units);
        apply(vec![
            ("a", vec![entity("B", "Component", json!(["x", "y"]))]),
            ("b", vec![entity("a", "API", json!(["x"]))]),
        ]);
        assert_eq!(
            names(&catalog, "metadata.name"),
            [
                ("a".to_owned(), "api:default/a".to_owned()),
                ("b".to_owned(), "component:default/b".to_owned())
            ]
        );
        assert_eq!(
            counts(&catalog, "metadata.tags"),
            [("x".to_owned(), 2), ("y".to_owned(), 1)]
        );
        assert_eq!(
            snapshot_count(&catalog, "kind", &["component"]),
            Some(1),
            "single-valued"
        );
        assert_eq!(snapshot_count(&catalog, "metadata.tags", &["x"]), None);
        // A changed entity moves; a removed one leaves.
        apply(vec![
            ("a", vec![entity("B", "Component", json!(["z"]))]),
            ("b", vec![]),
        ]);
        assert_eq!(
            names(&catalog, "metadata.name"),
            [("b".to_owned(), "component:default/b".to_owned())]
        );
        assert_eq!(counts(&catalog, "metadata.tags"), [("z".to_owned(), 1)]);
        assert_eq!(counts(&catalog, "kind"), [("Component".to_owned(), 1)]);
        assert_eq!(snapshot_count(&catalog, "metadata.tags", &["z"]), Some(1));
    }

    /// Every sorted and faceted field's index, as `(value, key)` / `(value, count)`.
    fn all(catalog: &Catalog) -> Vec<Vec<(String, String)>> {
        let sorted = super::SORTED.iter().map(|f| names(catalog, f));
        let faceted = super::FACETED.iter().map(|f| {
            counts(catalog, f)
                .into_iter()
                .map(|(v, c)| (v, c.to_string()))
                .collect()
        });
        sorted.chain(faceted).collect()
    }

    fn apply(catalog: &Catalog, units: Vec<(&str, Vec<Entity>)>) {
        catalog.prepare(
            "s",
            units
                .into_iter()
                .map(|(unit, entities)| UnitEntities {
                    unit: unit.into(),
                    entities: entities.into_iter().map(Into::into).collect(),
                })
                .collect(),
        );
        catalog.publish();
    }

    fn mixed() -> Vec<(&'static str, Vec<Entity>)> {
        vec![
            ("a", vec![entity("B", "Component", json!(["x", "y"]))]),
            ("b", vec![entity("a", "API", json!(["x"]))]),
            (
                "c",
                vec![
                    entity("Zed", "Component", json!([])),
                    entity("c", "Group", json!(["y"])),
                ],
            ),
        ]
    }

    /// A restored catalog serves before its indexes are built (queries
    /// scan); built in bulk they are what entity-by-entity upkeep gives,
    /// including changes made while they were being built.
    #[test]
    fn indexes_built_in_bulk_after_a_restore_match_those_kept_entity_by_entity() {
        let kept = Catalog::new();
        apply(&kept, mixed());
        let restored = Catalog::new();
        restored.restore_entities(kept.snapshot().iter().zip(1..).map(|(e, seq)| {
            let owner = kept.owner(&e.key).unwrap();
            (owner, (**e).clone(), seq, None)
        }));
        restored.restored(kept.snapshot().last_seq());
        assert!(
            restored.snapshot().indexes().sorted("kind").is_none(),
            "scans meanwhile"
        );
        // Changes before the build: prepared and published, then one only prepared.
        let change = vec![
            ("a", vec![entity("B", "Component", json!(["z"]))]),
            ("b", vec![]),
        ];
        apply(&kept, change.clone());
        apply(&restored, change);
        let pending = vec![("d", vec![entity("New", "System", json!(["x"]))])];
        kept.prepare("s", vec![]);
        restored.prepare(
            "s",
            pending
                .iter()
                .map(|(unit, entities)| UnitEntities {
                    unit: (*unit).into(),
                    entities: entities.iter().cloned().map(Into::into).collect(),
                })
                .collect(),
        );
        restored.build_indexes();
        assert_eq!(
            all(&restored),
            all(&kept),
            "published: the prepared change is not"
        );
        apply(&kept, pending);
        restored.publish();
        assert_eq!(all(&restored), all(&kept));
        // Kept from now on, entity by entity.
        let removal = vec![("c", vec![entity("c", "Group", json!(["y"]))])];
        apply(&kept, removal.clone());
        apply(&restored, removal);
        assert_eq!(all(&restored), all(&kept));
    }

    fn snapshot_count(catalog: &Catalog, field: &str, values: &[&str]) -> Option<usize> {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        catalog
            .snapshot()
            .indexes()
            .facet(field)
            .unwrap()
            .count_in(&values)
    }
}
