//! Entity facets: for each requested field, how many of the matching
//! entities carry each value (an entity counts once per distinct value).

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value, json};

use super::Snapshot;
use super::budget::{Budget, OverBudget};
use super::query::Predicate;

/// `{facet: [{value, count}]}` over the entities of `snapshot` that match
/// `predicate`, values in order, within `budget`. Unfiltered facets of the
/// fields whose counts are kept are read off them; the rest are counted by
/// a scan.
pub(crate) fn facet_counts(
    snapshot: &Snapshot,
    predicate: Option<&Predicate>,
    facets: &[String],
    budget: &Budget,
) -> Result<Map<String, Value>, OverBudget> {
    let keys: Vec<String> = facets.iter().map(|f| f.to_lowercase()).collect();
    let kept = |key: &str| {
        predicate
            .is_none()
            .then(|| snapshot.indexes().facet(key))
            .flatten()
    };
    let mut counts: Vec<BTreeMap<String, usize>> = vec![BTreeMap::new(); facets.len()];
    let scanned: Vec<usize> = (0..keys.len())
        .filter(|i| kept(&keys[*i]).is_none())
        .collect();
    if !scanned.is_empty() {
        for entity in snapshot.iter() {
            budget.check()?;
            if predicate.is_some_and(|p| !p.matches(&entity.search)) {
                continue;
            }
            for &i in &scanned {
                let mut seen = HashSet::new();
                for value in entity.search.values(&keys[i]).flatten() {
                    if seen.insert(value) {
                        *counts[i].entry(value.to_owned()).or_default() += 1;
                    }
                }
            }
        }
    }
    let render = |(value, count): (&str, usize)| json!({"value": value, "count": count});
    Ok(facets
        .iter()
        .zip(keys.iter().zip(&counts))
        .map(|(facet, (key, scanned))| {
            let values = match kept(key) {
                Some(facet) => facet.counts.iter().map(|(v, c)| render((v, *c))).collect(),
                None => scanned.iter().map(|(v, c)| render((v, *c))).collect(),
            };
            (facet.clone(), Value::Array(values))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Entity, UnitEntities};

    #[test]
    fn counts_each_value_once_per_matching_entity() {
        let catalog = Catalog::new();
        let entity = |name: &str, kind: &str, tags: Value| -> Entity {
            serde_json::from_value(json!({"apiVersion": "backstage.io/v1alpha1", "kind": kind,
                "metadata": {"name": name, "tags": tags}, "spec": {}}))
            .unwrap()
        };
        catalog.prepare(
            "s",
            vec![UnitEntities {
                unit: "u".into(),
                entities: vec![
                    entity("a", "Component", json!(["x", "x", "y"])).into(),
                    entity("b", "Component", json!(["x"])).into(),
                    entity("c", "API", json!(["z"])).into(),
                ],
            }],
        );
        catalog.publish();
        let snapshot = catalog.snapshot();
        let predicate = Predicate::from_json(&json!({"kind": "component"})).unwrap();
        let facets = facet_counts(
            &snapshot,
            Some(&predicate),
            &["metadata.tags".to_owned(), "kind".to_owned()],
            &Budget::unlimited(),
        )
        .unwrap();
        assert_eq!(
            Value::Object(facets),
            json!({
                "metadata.tags": [{"value": "x", "count": 2}, {"value": "y", "count": 1}],
                "kind": [{"value": "Component", "count": 2}],
            })
        );
        // Unfiltered: read off the kept counts (tags, kind), scanned (name).
        let facets = facet_counts(
            &snapshot,
            None,
            &[
                "metadata.tags".to_owned(),
                "Kind".to_owned(),
                "metadata.name".to_owned(),
            ],
            &Budget::unlimited(),
        )
        .unwrap();
        assert_eq!(
            Value::Object(facets),
            json!({
                "metadata.tags": [{"value": "x", "count": 2}, {"value": "y", "count": 1}, {"value": "z", "count": 1}],
                "Kind": [{"value": "API", "count": 1}, {"value": "Component", "count": 2}],
                "metadata.name": [{"value": "a", "count": 1}, {"value": "b", "count": 1}, {"value": "c", "count": 1}],
            })
        );
    }
}
