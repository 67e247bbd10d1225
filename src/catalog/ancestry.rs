//! An entity's ancestry, as Backstage's "Inspect entity" shows it: the
//! entity and every Location entity that led to it, each with the refs of
//! its parents. An entity's parents are the Location entities whose
//! targets resolve to the file the entity was read from (its
//! `managed-by-location`): the generated Location of a registered or static
//! location, or a Location entity in another catalog file.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use super::{EntityKey, PreparedEntity, Snapshot};

/// The most entities one ancestry lists (Location chains are bounded by
/// `maxLocationDepth`; this bounds a pathological catalog).
const MAX_ANCESTRY: usize = 64;

/// One entity of an ancestry.
#[derive(Debug)]
pub(crate) struct Ancestor {
    pub entity: Arc<PreparedEntity>,
    pub parent_entity_refs: Vec<String>,
}

/// The targets of a Location entity, as written.
fn targets(entity: &Value) -> Vec<String> {
    let spec = &entity["spec"];
    let mut out: Vec<String> = spec["target"]
        .as_str()
        .map(str::to_owned)
        .into_iter()
        .collect();
    if let Some(items) = spec["targets"].as_array() {
        out.extend(items.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    out
}

/// `root` and its ancestors, root first; `None` when `root` is not served.
/// `resolve(target, base)` resolves a Location target against the file it
/// is written in, as discovery did.
pub(crate) fn ancestry(
    snapshot: &Snapshot,
    root: &EntityKey,
    resolve: &dyn Fn(&str, &str) -> Option<String>,
) -> Option<Vec<Ancestor>> {
    let root = snapshot.get(root)?;
    // Which Location entities read which file.
    let mut readers: HashMap<String, Vec<Arc<PreparedEntity>>> = HashMap::new();
    for location in snapshot
        .iter()
        .filter(|e| e.entity_ref.starts_with("location:"))
    {
        let value = location.value();
        for target in targets(&value) {
            let resolved = location
                .location
                .as_deref()
                .and_then(|base| resolve(&target, base))
                .unwrap_or(target);
            readers
                .entry(resolved)
                .or_default()
                .push(Arc::clone(location));
        }
    }
    let mut out = Vec::new();
    let mut seen = HashSet::from([root.key.clone()]);
    let mut queue = VecDeque::from([Arc::clone(root)]);
    while let Some(entity) = queue.pop_front() {
        let parents: Vec<&Arc<PreparedEntity>> = entity
            .location
            .as_deref()
            .and_then(|file| readers.get(file))
            .into_iter()
            .flatten()
            .filter(|p| p.key != entity.key)
            .collect();
        let parent_entity_refs = parents.iter().map(|p| p.entity_ref.clone()).collect();
        for parent in parents {
            if out.len() + queue.len() < MAX_ANCESTRY && seen.insert(parent.key.clone()) {
                queue.push_back(Arc::clone(parent));
            }
        }
        out.push(Ancestor {
            entity,
            parent_entity_refs,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Entity, UnitEntities};
    use serde_json::json;

    fn entity(kind: &str, name: &str, location: &str, spec: Value) -> Entity {
        serde_json::from_value(json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, "annotations": {
                "backstage.io/managed-by-location": format!("url:{location}"),
                "backstage.io/managed-by-origin-location": "url:https://h/root.yaml",
            }},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn follows_location_targets_up_to_the_generated_location() {
        let catalog = Catalog::new();
        let generated = entity(
            "Location",
            "generated-x",
            "https://h/root.yaml",
            json!({"type": "url", "target": "https://h/root.yaml"}),
        );
        let nested = entity(
            "Location",
            "nested",
            "https://h/root.yaml",
            json!({"targets": ["./sub/c.yaml"]}),
        );
        let component = entity(
            "Component",
            "svc",
            "https://h/sub/c.yaml",
            json!({"type": "service", "owner": "a", "lifecycle": "x"}),
        );
        let unrelated = entity(
            "Component",
            "other",
            "https://h/other.yaml",
            json!({"type": "service", "owner": "a", "lifecycle": "x"}),
        );
        catalog.prepare(
            "s",
            vec![UnitEntities {
                unit: "u".into(),
                entities: vec![
                    generated.into(),
                    nested.into(),
                    component.into(),
                    unrelated.into(),
                ],
            }],
        );
        catalog.publish();
        let resolve = |target: &str, base: &str| {
            url::Url::parse(base)
                .and_then(|b| b.join(target))
                .ok()
                .map(String::from)
        };
        let snapshot = catalog.snapshot();
        let chain = ancestry(
            &snapshot,
            &EntityKey::new("component", "default", "svc"),
            &resolve,
        )
        .unwrap();
        let refs: Vec<(&str, Vec<String>)> = chain
            .iter()
            .map(|a| (a.entity.entity_ref.as_str(), a.parent_entity_refs.clone()))
            .collect();
        assert_eq!(
            refs,
            vec![
                (
                    "component:default/svc",
                    vec!["location:default/nested".to_owned()]
                ),
                (
                    "location:default/nested",
                    vec!["location:default/generated-x".to_owned()]
                ),
                ("location:default/generated-x", vec![]),
            ]
        );
        let alone = ancestry(
            &snapshot,
            &EntityKey::new("component", "default", "other"),
            &resolve,
        )
        .unwrap();
        assert_eq!(alone.len(), 1);
        assert!(alone[0].parent_entity_refs.is_empty());
        assert!(
            ancestry(
                &snapshot,
                &EntityKey::new("component", "default", "nope"),
                &resolve
            )
            .is_none()
        );
    }
}
