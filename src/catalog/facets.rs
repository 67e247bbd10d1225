//! Entity facets: for each requested field, how many of the matching
//! entities carry each value (an entity counts once per distinct value).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::PreparedEntity;
use super::budget::{Budget, OverBudget};
use super::query::Predicate;

/// `{facet: [{value, count}]}` over `entities` that match `predicate`,
/// values in order, within `budget`.
pub(crate) fn facet_counts<'a>(
    entities: impl Iterator<Item = &'a Arc<PreparedEntity>>,
    predicate: Option<&Predicate>,
    facets: &[String],
    budget: &Budget,
) -> Result<Map<String, Value>, OverBudget> {
    let keys: Vec<String> = facets.iter().map(|f| f.to_lowercase()).collect();
    let mut counts: Vec<BTreeMap<String, usize>> = vec![BTreeMap::new(); facets.len()];
    for entity in entities {
        budget.check()?;
        if predicate.is_some_and(|p| !p.matches(&entity.search)) {
            continue;
        }
        for (key, counts) in keys.iter().zip(counts.iter_mut()) {
            let mut seen = HashSet::new();
            for value in entity.search.values(key).flatten() {
                if seen.insert(value) {
                    *counts.entry(value.to_owned()).or_default() += 1;
                }
            }
        }
    }
    Ok(facets
        .iter()
        .zip(counts)
        .map(|(facet, counts)| {
            let values = counts
                .into_iter()
                .map(|(value, count)| json!({"value": value, "count": count}))
                .collect();
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
            snapshot.iter(),
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
    }
}
