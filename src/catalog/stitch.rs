//! Assembling the served catalog, as Backstage's stitcher does: every entity
//! gets the relations whose source it is (its own forward relations plus the
//! reverse ones other entities emitted towards it), sorted by type then
//! target; `metadata.uid` is a name-based UUID of the entity ref (stable
//! across runs and restarts without storage) and `metadata.etag` a SHA-1 of
//! the digest of the entity's canonical JSON then its canonical relations
//! (so it changes exactly when the content does, and an entity whose
//! relations moved is rendered again without parsing its body back).

use serde_json::Value;
use uuid::Uuid;

use super::entity::{Entity, Relation};
use super::relations::{self, Reference};

/// Namespace for [`uid_for`]'s v5 UUIDs; fixed forever, or uids change.
const UID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b3e_9a54_4d1e_8c07_5e2f_b1a9_c3d4);

/// The stable uid of the entity with this (canonical, lowercased) ref.
pub(crate) fn uid_for(canonical_ref: &str) -> String {
    Uuid::new_v5(&UID_NAMESPACE, canonical_ref.as_bytes()).to_string()
}

/// The references `entity` makes, for the index, where processing did not
/// hand them over (restored from the store, built in code). Entities are
/// validated before they reach the catalog, so their references parse; one
/// that does not simply contributes nothing.
pub(crate) fn references_of(entity: &Entity) -> Vec<Reference> {
    relations::references(entity).unwrap_or_default()
}

/// An entity that cannot be turned into JSON. Not expected: every map in
/// [`Entity`] is keyed by strings, which is all `serde_json` needs; the
/// catalog logs it and keeps serving the entity's previous form.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RenderError {
    #[error("entity {entity_ref} cannot be rendered as JSON: {source}")]
    Json {
        entity_ref: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("entity {entity_ref} cannot be rendered: its metadata is not a JSON object")]
    Metadata { entity_ref: String },
}

/// Where a served body changes when only its relations do: the etag (40
/// hex digits from `etag_at`) and the relations array (from
/// `relations_at` to the closing brace), with the digest of everything
/// else, so it is rendered again without parsing it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Splice {
    etag_at: u32,
    relations_at: u32,
    /// SHA-1 of the canonical JSON without relations, uid and etag.
    content: [u8; 20],
}

/// A body as served, with its splice points.
pub(crate) struct Rendered {
    pub json: String,
    pub splice: Option<Splice>,
    /// The served value without its relations (for the search rows).
    pub value: Value,
}

/// The served JSON of `entity` with `relations`: uid and etag assigned
/// (whatever the entity carried before), rendered once. Top-level keys
/// keep their order, metadata ends with uid then etag, relations come last.
pub(crate) fn render(mut entity: Entity, relations: &[Relation]) -> Result<Rendered, RenderError> {
    let key = entity.key();
    entity.relations = Vec::new();
    entity.metadata.uid = None;
    entity.metadata.etag = None;
    let json_error = |entity: &Entity| {
        let entity_ref = entity.entity_ref();
        move |source| RenderError::Json { entity_ref, source }
    };
    let mut value = serde_json::to_value(&entity).map_err(json_error(&entity))?;
    if let Some(top) = value.as_object_mut() {
        top.shift_remove("relations");
    }
    let content = digest(&value);
    let etag = etag_with(&content, relations);
    let metadata_error = || RenderError::Metadata {
        entity_ref: entity.entity_ref(),
    };
    let top = value.as_object_mut().ok_or_else(metadata_error)?;
    top.get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(metadata_error)?
        .insert("uid".into(), uid_for(key.as_str()).into());
    let mut json = String::with_capacity(1024);
    let mut etag_at = 0;
    json.push('{');
    for (i, (name, field)) in top.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        push_json(&mut json, name).map_err(json_error(&entity))?;
        json.push(':');
        let text = serde_json::to_string(field).map_err(json_error(&entity))?;
        if name == "metadata" {
            // `{…,"uid":"…"}`: the etag goes last, before the closing brace.
            let open = text.strip_suffix('}').ok_or_else(metadata_error)?;
            json.push_str(open);
            json.push_str(",\"etag\":\"");
            etag_at = json.len();
            json.push_str(&etag);
            json.push_str("\"}");
        } else {
            json.push_str(&text);
        }
    }
    json.push_str(",\"relations\":");
    let relations_at = json.len();
    push_json(&mut json, relations).map_err(json_error(&entity))?;
    json.push('}');
    let splice = u32::try_from(etag_at)
        .ok()
        .zip(u32::try_from(relations_at).ok())
        .map(|(etag_at, relations_at)| Splice {
            etag_at,
            relations_at,
            content,
        });
    Ok(Rendered {
        json,
        splice,
        value,
    })
}

/// `json` (rendered by [`render`] with `splice`) with other relations:
/// the etag and the relations array replaced, nothing parsed. `None` when
/// `splice` does not fit `json` (not expected).
pub(crate) fn respliced(json: &str, splice: Splice, relations: &[Relation]) -> Option<String> {
    let etag_at = usize::try_from(splice.etag_at).ok()?;
    let relations_at = usize::try_from(splice.relations_at).ok()?;
    let etag_end = etag_at.checked_add(40)?;
    let middle = json.get(etag_end..relations_at)?;
    let mut out = String::with_capacity(json.len() + relations.len() * 48);
    out.push_str(json.get(..etag_at)?);
    out.push_str(&etag_with(&splice.content, relations));
    out.push_str(middle);
    push_json(&mut out, relations).ok()?;
    out.push('}');
    Some(out)
}

/// The relations array of `json` (rendered by [`render`] with `splice`), as text.
pub(crate) fn relations_text(json: &str, splice: Splice) -> Option<&str> {
    let relations_at = usize::try_from(splice.relations_at).ok()?;
    json.get(relations_at..json.len().checked_sub(1)?)
}

fn push_json(
    out: &mut String,
    value: &(impl serde::Serialize + ?Sized),
) -> Result<(), serde_json::Error> {
    out.push_str(&serde_json::to_string(value)?);
    Ok(())
}

/// SHA-1 of the canonical JSON (keys sorted), like Backstage's `generateStableHash`.
fn digest(value: &Value) -> [u8; 20] {
    let mut canonical = Vec::new();
    write_canonical(value, &mut canonical);
    sha1_smol::Sha1::from(&canonical).digest().bytes()
}

/// The etag: SHA-1 of the content's digest then the canonical relations,
/// so it changes exactly when either does and needs no full render.
fn etag_with(content: &[u8; 20], relations: &[Relation]) -> String {
    let mut hasher = sha1_smol::Sha1::new();
    hasher.update(content);
    let mut canonical = Vec::with_capacity(relations.len() * 48);
    canonical.push(b'[');
    for (i, relation) in relations.iter().enumerate() {
        if i > 0 {
            canonical.push(b',');
        }
        // Keys sorted: targetRef before type.
        canonical.extend_from_slice(b"{\"targetRef\":");
        write_scalar(&relation.target_ref, &mut canonical);
        canonical.extend_from_slice(b",\"type\":");
        write_scalar(&relation.type_, &mut canonical);
        canonical.push(b'}');
    }
    canonical.push(b']');
    hasher.update(&canonical);
    hasher.digest().to_string()
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

    fn served_value(entity: Entity, relations: Vec<Relation>) -> Result<Value, RenderError> {
        let rendered = render(entity, &relations)?;
        Ok(serde_json::from_str(&rendered.json).unwrap())
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
            .map(|e| served_value(e.clone(), index.relations_of(e.key().as_str())).unwrap())
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
            uid_for("domain:default/d").as_str()
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
