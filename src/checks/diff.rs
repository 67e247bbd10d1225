//! What a merge would change: the entities a repository would serve after
//! it against those it serves now, compared as served (without relations,
//! which the catalog derives, or the uid and etag it assigns).

use std::collections::BTreeMap;

use serde_json::Value;

use super::previews::{Added, Changed};
use crate::catalog::ProcessedEntity;

/// Added, changed and removed entities, each sorted by ref.
#[derive(Debug, Default)]
pub(crate) struct EntityDiff {
    pub added: Vec<Added>,
    pub changed: Vec<Changed>,
    pub removed: Vec<String>,
}

/// The entity as compared: what the file decides.
pub(crate) fn comparable(entity: &ProcessedEntity) -> Value {
    let mut value = serde_json::to_value(&entity.entity).unwrap_or(Value::Null);
    if let Some(fields) = value.as_object_mut() {
        fields.remove("relations");
        if let Some(metadata) = fields.get_mut("metadata").and_then(Value::as_object_mut) {
            for assigned in ["uid", "etag", "generation"] {
                metadata.remove(assigned);
            }
        }
    }
    value
}

/// Keyed by lowercased ref (as the catalog keys entities).
fn by_ref(entities: &[ProcessedEntity]) -> BTreeMap<String, (String, Value)> {
    entities
        .iter()
        .map(|e| {
            let entity_ref = e.entity.entity_ref();
            (entity_ref.to_lowercase(), (entity_ref, comparable(e)))
        })
        .collect()
}

/// `after` (predicted) against `before` (served).
pub(crate) fn diff(after: &[ProcessedEntity], before: &[ProcessedEntity]) -> EntityDiff {
    let after = by_ref(after);
    let before = by_ref(before);
    let mut diff = EntityDiff::default();
    for (key, (entity_ref, entity)) in &after {
        match before.get(key) {
            None => diff.added.push(Added {
                entity_ref: entity_ref.clone(),
                entity: entity.clone(),
            }),
            Some((_, old)) => {
                let fields = changed_fields(old, entity);
                if !fields.is_empty() {
                    diff.changed.push(Changed {
                        entity_ref: entity_ref.clone(),
                        fields,
                        entity: entity.clone(),
                    });
                }
            }
        }
    }
    diff.removed = before
        .iter()
        .filter(|(key, _)| !after.contains_key(*key))
        .map(|(_, (entity_ref, _))| entity_ref.clone())
        .collect();
    diff
}

/// The top-level fields that differ; inside `metadata` and `spec`, the
/// fields below them (`spec.owner`).
pub(crate) fn changed_fields(old: &Value, new: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let mut fields = Vec::new();
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (a, b) = (old.get(key), new.get(key));
        if a == b {
            continue;
        }
        match (a.and_then(Value::as_object), b.and_then(Value::as_object)) {
            (Some(a), Some(b)) if key == "metadata" || key == "spec" => {
                let mut inner: Vec<&String> = a.keys().chain(b.keys()).collect();
                inner.sort();
                inner.dedup();
                fields.extend(
                    inner
                        .into_iter()
                        .filter(|k| a.get(*k) != b.get(*k))
                        .map(|k| format!("{key}.{k}")),
                );
            }
            _ => fields.push(key.clone()),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_below_metadata_and_spec_are_named() {
        let old = json!({"kind": "Component", "metadata": {"name": "a", "description": "x"}, "spec": {"owner": "me", "type": "service"}});
        let new = json!({"kind": "Component", "metadata": {"name": "a"}, "spec": {"owner": "you", "type": "service"}, "extra": 1});
        assert_eq!(
            changed_fields(&old, &new),
            ["extra", "metadata.description", "spec.owner"]
        );
        assert!(changed_fields(&old, &old).is_empty());
    }
}
