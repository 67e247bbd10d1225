//! Assembling the served catalog, as Backstage's stitcher does: every entity
//! gets the relations whose source it is (its own forward relations plus the
//! reverse ones other entities emitted towards it), sorted by type then
//! target; `metadata.uid` is a name-based UUID of the entity ref (stable
//! across runs and restarts without storage) and `metadata.etag` a SHA-1 of
//! the entity's canonical JSON (so it changes exactly when the content does).

use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use super::entity::{Entity, Relation};
use super::relations::{self, Reference};

/// Namespace for [`uid_for`]'s v5 UUIDs; fixed forever, or uids change.
const UID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b3e_9a54_4d1e_8c07_5e2f_b1a9_c3d4);

/// The stable uid of the entity with this (canonical, lowercased) ref.
pub(crate) fn uid_for(canonical_ref: &str) -> Uuid {
    Uuid::new_v5(&UID_NAMESPACE, canonical_ref.as_bytes())
}

/// The references `entity` makes, for the index, where processing did not
/// hand them over (restored from the store, built in code). Entities are
/// validated before they reach the catalog, so their references parse; one
/// that does not simply contributes nothing.
pub(crate) fn references_of(entity: &Entity) -> Vec<Reference> {
    relations::references(entity).unwrap_or_default()
}

/// `references` as the store keeps them beside their entity: one
/// `forward<TAB>target` line each (empty: none). `None` when they cannot
/// be written so (a target with a tab or a line break): start-up then
/// derives them from the JSON, as for rows stored before this column.
pub(crate) fn references_to_store(references: &[Reference]) -> Option<String> {
    let mut text = String::new();
    for reference in references {
        if reference.target.contains(['\t', '\n']) {
            return None;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(reference.forward());
        text.push('\t');
        text.push_str(&reference.target);
    }
    Some(text)
}

/// References as [`references_to_store`] wrote them; `None` when the text
/// is not that (e.g. a relation type this version does not know).
pub(crate) fn stored_references(text: &str) -> Option<Box<[Reference]>> {
    if text.is_empty() {
        return Some(Box::default());
    }
    text.split('\n')
        .map(|line| {
            let (forward, target) = line.split_once('\t')?;
            Reference::new(forward, Arc::from(target))
        })
        .collect()
}

/// An entity that cannot be turned into JSON. Not expected: every map in
/// [`Entity`] is keyed by strings, which is all `serde_json` needs; the
/// catalog logs it and keeps serving the entity's previous form.
#[derive(Debug, thiserror::Error)]
#[error("entity {entity_ref} cannot be rendered as JSON: {source}")]
pub(crate) struct RenderError {
    entity_ref: String,
    #[source]
    source: serde_json::Error,
}

/// The served JSON of `entity` with `relations`: uid and etag assigned
/// (whatever the entity carried before), rendered once.
pub(crate) fn served_value(
    mut entity: Entity,
    relations: Vec<Relation>,
) -> Result<Value, RenderError> {
    let key = entity.key();
    entity.relations = relations;
    entity.metadata.uid = None;
    entity.metadata.etag = None;
    let mut value = serde_json::to_value(&entity).map_err(|source| RenderError {
        entity_ref: entity.entity_ref(),
        source,
    })?;
    let etag = etag_of(&value);
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("uid".into(), uid_for(key.as_str()).to_string().into());
        metadata.insert("etag".into(), etag.into());
    }
    Ok(value)
}

/// SHA-1 of the canonical JSON (keys sorted), like Backstage's `generateStableHash`.
fn etag_of(value: &Value) -> String {
    let mut canonical = Vec::new();
    write_canonical(value, &mut canonical);
    sha1_smol::Sha1::from(&canonical).digest().to_string()
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&key.as_str(), out);
                out.push(b':');
                write_canonical(&map[key.as_str()], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        other => write_scalar(other, out),
    }
}

fn write_scalar(value: &impl serde::Serialize, out: &mut Vec<u8>) {
    // Writing JSON scalars into a Vec cannot fail.
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
mod tests {
    use super::super::index::RelationIndex;
    use super::*;
    use serde_json::json;

    fn entity(kind: &str, name: &str, spec: Value) -> Entity {
        serde_json::from_value(json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": kind,
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap()
    }

    /// Every entity served with the relations the others give it.
    fn serve(all: &[Entity]) -> Vec<Value> {
        let mut index = RelationIndex::new();
        for entity in all {
            index.add(&relations::expand(
                entity.key().as_str(),
                &references_of(entity),
            ));
        }
        all.iter()
            .map(|e| {
                let own = references_of(e);
                served_value(e.clone(), index.relations_of(e.key().as_str(), &own)).unwrap()
            })
            .collect()
    }

    fn relations(served: &Value) -> Vec<(String, String)> {
        served["relations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["type"].as_str().unwrap().to_owned(),
                    r["targetRef"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn both_directions_land_on_the_right_entities_across_sources() {
        let served = serve(&[
            entity(
                "Component",
                "svc",
                json!({"type": "service", "lifecycle": "p", "owner": "Team-A", "providesApis": ["pay"]}),
            ),
            entity(
                "API",
                "pay",
                json!({"type": "openapi", "lifecycle": "p", "owner": "team-a", "definition": "x"}),
            ),
            entity("Group", "team-a", json!({"type": "team", "children": []})),
        ]);
        assert_eq!(
            relations(&served[0]),
            vec![
                ("ownedBy".into(), "group:default/team-a".into()),
                ("providesApi".into(), "api:default/pay".into())
            ]
        );
        assert_eq!(
            relations(&served[1]),
            vec![
                ("apiProvidedBy".into(), "component:default/svc".into()),
                ("ownedBy".into(), "group:default/team-a".into())
            ]
        );
        assert_eq!(
            relations(&served[2]),
            vec![
                ("ownerOf".into(), "api:default/pay".into()),
                ("ownerOf".into(), "component:default/svc".into())
            ]
        );
    }

    #[test]
    fn uid_is_stable_and_etag_follows_content() {
        let a = serve(&[entity("Domain", "d", json!({"owner": "o"}))]);
        let b = serve(&[entity("Domain", "d", json!({"owner": "o"}))]);
        assert_eq!(a, b);
        assert_eq!(
            a[0]["metadata"]["uid"],
            uid_for("domain:default/d").to_string().as_str()
        );

        // Content changes the etag, not the uid.
        let c = serve(&[entity("Domain", "d", json!({"owner": "other"}))]);
        assert_eq!(c[0]["metadata"]["uid"], a[0]["metadata"]["uid"]);
        assert_ne!(c[0]["metadata"]["etag"], a[0]["metadata"]["etag"]);

        // So does a new incoming relation.
        let d = serve(&[
            entity("Domain", "d", json!({"owner": "o"})),
            entity("System", "s", json!({"owner": "o", "domain": "d"})),
        ]);
        assert_ne!(d[0]["metadata"]["etag"], a[0]["metadata"]["etag"]);
    }

    /// What the store keeps of an entity's references reads back as the
    /// references its JSON makes, for every kind that makes any.
    #[test]
    fn stored_references_read_back_as_derived() {
        let all = [
            entity(
                "Component",
                "svc",
                json!({"owner": "team", "subcomponentOf": "parent", "providesApis": ["a"],
                       "consumesApis": ["b"], "dependsOn": ["resource:db"], "system": "s"}),
            ),
            entity("API", "a", json!({"owner": "team", "system": "s"})),
            entity(
                "Resource",
                "db",
                json!({"owner": "team", "dependsOn": ["resource:x"], "dependencyOf": ["component:y"], "system": "s"}),
            ),
            entity("User", "u", json!({"memberOf": ["team"]})),
            entity(
                "Group",
                "team",
                json!({"type": "team", "parent": "p", "children": ["c"], "members": ["u"]}),
            ),
            entity("System", "s", json!({"owner": "team", "domain": "d"})),
            entity("Domain", "d", json!({"owner": "team"})),
            entity("Location", "l", json!({"target": "./x.yaml"})),
        ];
        for entity in all {
            let derived = references_of(&entity);
            let prepared = crate::catalog::PreparedEntity::render(entity, Vec::new()).unwrap();
            let text = prepared.references_to_store().unwrap();
            assert_eq!(
                stored_references(&text).unwrap().to_vec(),
                derived,
                "{}",
                prepared.entity_ref
            );
        }
        assert!(stored_references("ownedBy").is_none(), "no target");
        assert!(stored_references("newRelation\tgroup:default/x").is_none());
    }

    /// The catalog skips re-rendering when relations are unchanged: what it
    /// serves must render to itself.
    #[test]
    fn a_served_entity_renders_to_itself() {
        let served = serve(&[entity("Domain", "d", json!({"owner": "o"}))]).remove(0);
        let parsed: Entity = serde_json::from_value(served.clone()).unwrap();
        let relations = parsed.relations.clone();
        assert_eq!(served_value(parsed, relations).unwrap(), served);
        assert_eq!(
            served.to_string().find("\"uid\""),
            served.to_string().rfind("\"uid\""),
            "uid once"
        );
    }
}
