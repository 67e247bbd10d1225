//! Assembling the served catalog, as Backstage's stitcher does: every entity
//! gets the relations whose source it is (its own forward relations plus the
//! reverse ones other entities emitted towards it), sorted by type then
//! target; `metadata.uid` is a name-based UUID of the entity ref (stable
//! across runs and restarts without storage) and `metadata.etag` a SHA-1 of
//! the entity's canonical JSON (so it changes exactly when the content does).

use serde_json::Value;
use uuid::Uuid;

use super::entity::Entity;
use super::index::RelationIndex;
use super::relations::{self, Emitted};

/// Namespace for [`uid_for`]'s v5 UUIDs; fixed forever, or uids change.
const UID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b3e_9a54_4d1e_8c07_5e2f_b1a9_c3d4);

/// The stable uid of the entity with this (canonical, lowercased) ref.
pub fn uid_for(canonical_ref: &str) -> String {
    Uuid::new_v5(&UID_NAMESPACE, canonical_ref.as_bytes()).to_string()
}

/// Stitches a whole catalog held as plain entities (e.g. `run-once`).
pub fn stitch(entities: &mut [Entity]) {
    let mut index = RelationIndex::new();
    for entity in entities.iter() {
        index.add(&emitted_by(entity));
    }
    for entity in entities {
        if let Some(updated) = stitched(entity, &index) {
            *entity = updated;
        }
    }
}

/// What `entity` emits into the index (both directions). Entities are
/// validated before they reach the catalog, so their references parse; one
/// that does not simply contributes nothing.
pub fn emitted_by(entity: &Entity) -> Vec<Emitted> {
    relations::emitted(entity).unwrap_or_default()
}

/// The entity with its relations, uid and etag, or `None` when unchanged.
pub fn stitched(entity: &Entity, index: &RelationIndex) -> Option<Entity> {
    let key = entity.key();
    let mut updated = entity.clone();
    updated.relations = index.relations_of(key.as_str());
    updated.metadata.uid = None;
    updated.metadata.etag = None;
    let etag = etag_of(&updated);
    updated.metadata.uid = Some(uid_for(key.as_str()));
    updated.metadata.etag = Some(etag);
    (updated != *entity).then_some(updated)
}

/// SHA-1 of the canonical JSON (keys sorted), like Backstage's `generateStableHash`.
fn etag_of(entity: &Entity) -> String {
    let mut canonical = String::new();
    write_canonical(
        &serde_json::to_value(entity).unwrap_or(Value::Null),
        &mut canonical,
    );
    sha1_smol::Sha1::from(canonical.as_bytes())
        .digest()
        .to_string()
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entity(kind: &str, name: &str, spec: Value) -> Entity {
        serde_json::from_value(json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": kind,
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap()
    }

    fn relations(e: &Entity) -> Vec<(String, String)> {
        e.relations
            .iter()
            .map(|r| (r.type_.clone(), r.target_ref.clone()))
            .collect()
    }

    #[test]
    fn both_directions_land_on_the_right_entities_across_sources() {
        let mut all = vec![
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
        ];
        stitch(&mut all);
        assert_eq!(
            relations(&all[0]),
            vec![
                ("ownedBy".into(), "group:default/team-a".into()),
                ("providesApi".into(), "api:default/pay".into())
            ]
        );
        assert_eq!(
            relations(&all[1]),
            vec![
                ("apiProvidedBy".into(), "component:default/svc".into()),
                ("ownedBy".into(), "group:default/team-a".into())
            ]
        );
        assert_eq!(
            relations(&all[2]),
            vec![
                ("ownerOf".into(), "api:default/pay".into()),
                ("ownerOf".into(), "component:default/svc".into())
            ]
        );
    }

    #[test]
    fn uid_is_stable_and_etag_follows_content() {
        let make = || vec![entity("Domain", "d", json!({"owner": "o"}))];
        let (mut a, mut b) = (make(), make());
        stitch(&mut a);
        stitch(&mut b);
        assert_eq!(a[0].metadata.uid, b[0].metadata.uid);
        assert_eq!(a[0].metadata.etag, b[0].metadata.etag);
        assert_eq!(
            a[0].metadata.uid.as_deref(),
            Some(uid_for("domain:default/d").as_str())
        );

        // Stitching again changes nothing.
        let before = a.clone();
        stitch(&mut a);
        assert_eq!(a, before);

        // Content changes the etag, not the uid.
        let mut c = vec![entity("Domain", "d", json!({"owner": "other"}))];
        stitch(&mut c);
        assert_eq!(c[0].metadata.uid, a[0].metadata.uid);
        assert_ne!(c[0].metadata.etag, a[0].metadata.etag);

        // So does a new incoming relation.
        let mut d = vec![
            entity("Domain", "d", json!({"owner": "o"})),
            entity("System", "s", json!({"owner": "o", "domain": "d"})),
        ];
        stitch(&mut d);
        assert_ne!(d[0].metadata.etag, a[0].metadata.etag);
    }

    /// The catalog re-renders only entities `stitched` reports as changed.
    #[test]
    fn an_already_stitched_entity_is_reported_unchanged() {
        let mut all = [entity("Domain", "d", json!({"owner": "o"}))];
        stitch(&mut all);
        let mut index = RelationIndex::new();
        index.add(&emitted_by(&all[0]));
        assert!(stitched(&all[0], &index).is_none());
    }
}
