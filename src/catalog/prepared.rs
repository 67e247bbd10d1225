//! An entity as it is served: rendered JSON, uid and search rows built
//! once when it changes, never per request. The catalog keeps what it needs
//! to stitch beside it (`State::emits`) and where the body changes when its
//! relations do ([`stitch::Splice`]), so an entity whose relations moved is
//! rendered again without parsing its JSON back (one read from the store is
//! parsed once).

use std::sync::Arc;

use serde_json::Value;

use super::entity::{self, Entity, EntityKey};
use super::search::SearchRows;
use super::stitch;

/// An entity ready to serve: identity assigned, JSON rendered once, search
/// rows built once.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedEntity {
    pub key: EntityKey,
    /// `kind:namespace/name` with the kind lowercased, as Backstage prints it.
    pub entity_ref: String,
    pub uid: String,
    /// The served JSON body.
    pub json: Arc<str>,
    pub search: SearchRows,
    /// `backstage.io/managed-by-location` without the `url:` prefix.
    pub location: Option<String>,
    /// `backstage.io/managed-by-origin-location` without the `url:` prefix.
    pub origin: Option<String>,
    /// Where `json` changes when only the relations do; `None` for a body
    /// read from the store, which is parsed once to be rendered again.
    pub(crate) splice: Option<stitch::Splice>,
}

impl PreparedEntity {
    /// Renders `entity` with `relations` as it is served (uid and etag
    /// assigned), with its search rows.
    pub(crate) fn render(
        entity: Entity,
        relations: Vec<entity::Relation>,
    ) -> Result<Self, stitch::RenderError> {
        let key = entity.key();
        let entity_ref = entity.entity_ref();
        let location = annotation_url(&entity, entity::ANNOTATION_LOCATION);
        let origin = annotation_url(&entity, entity::ANNOTATION_ORIGIN_LOCATION);
        let rendered = stitch::render(entity, &relations)?;
        Ok(Self {
            entity_ref,
            uid: stitch::uid_for(key.as_str()),
            json: Arc::from(rendered.json),
            search: SearchRows::build(&rendered.value).with_relations(&relations),
            location,
            origin,
            key,
            splice: rendered.splice,
        })
    }

    /// This entity served with `relations` instead, when that needs no
    /// parse (it was rendered here, not read from the store).
    pub(super) fn with_relations(&self, relations: &[entity::Relation]) -> Option<Self> {
        let splice = self.splice?;
        let json = stitch::respliced(&self.json, splice, relations)?;
        Some(Self {
            key: self.key.clone(),
            entity_ref: self.entity_ref.clone(),
            uid: self.uid.clone(),
            json: Arc::from(json),
            search: self.search.with_relations(relations),
            location: self.location.clone(),
            origin: self.origin.clone(),
            splice: Some(splice),
        })
    }

    /// The body as a JSON value (for projections). `json` is valid JSON by
    /// construction: [`PreparedEntity::render`] wrote it, or the store
    /// checked it when loading (it skips a row that is not). Should that
    /// ever break, the entity is served as `null` and the error logged.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or_else(|err| {
            tracing::error!(entity = self.entity_ref, %err, "a served entity is not valid JSON; serving null");
            Value::Null
        })
    }

    /// The typed entity, parsed back from what is served: only to render it
    /// again with other relations, or to apply its unit without one entity.
    pub(super) fn typed(&self) -> Result<Entity, serde_json::Error> {
        serde_json::from_str(&self.json)
    }

    /// Whether it is served with exactly `relations`: compared as text when
    /// it was rendered here, else read from the body.
    pub(super) fn serves_relations(&self, relations: &[entity::Relation]) -> bool {
        if let Some(served) = self
            .splice
            .and_then(|s| stitch::relations_text(&self.json, s))
        {
            return serde_json::to_string(relations).is_ok_and(|text| text == served);
        }
        self.served_relations()
            .is_ok_and(|served| served == relations)
    }

    /// The relations it is served with, read without building the rest of
    /// the entity (the other fields are skipped, not parsed into values).
    fn served_relations(&self) -> Result<Vec<entity::Relation>, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Served {
            #[serde(default)]
            relations: Vec<entity::Relation>,
        }
        serde_json::from_str::<Served>(&self.json).map(|served| served.relations)
    }
}

fn annotation_url(entity: &Entity, name: &str) -> Option<String> {
    entity
        .metadata
        .annotations
        .get(name)
        .map(|v| v.strip_prefix("url:").unwrap_or(v).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn relation(type_: &str, target: &str) -> entity::Relation {
        entity::Relation {
            type_: type_.into(),
            target_ref: target.into(),
        }
    }

    /// Keys that look like the splice points, in metadata and spec.
    fn entity() -> Entity {
        serde_json::from_value(json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": {"name": "Svc", "etag": "stale", "uid": "stale",
                "x": {"etag": "0123456789012345678901234567890123456789", "relations": []},
                "title": "caf\u{e9} \"q\""},
            "spec": {"type": "service", "lifecycle": "p", "owner": "team-a",
                "relations": [{"type": "ownedBy", "targetRef": "x"}], "etag": "e"},
        }))
        .unwrap()
    }

    #[test]
    fn new_relations_are_spliced_as_a_full_render_writes_them() {
        let one = vec![relation("ownedBy", "group:default/team-a")];
        let two = vec![
            relation("dependsOn", "resource:default/db"),
            relation("ownedBy", "group:default/team-a"),
        ];
        let served = PreparedEntity::render(entity(), one.clone()).unwrap();
        for relations in [two, Vec::new(), one] {
            let spliced = served.with_relations(&relations).unwrap();
            assert_eq!(
                spliced,
                PreparedEntity::render(entity(), relations.clone()).unwrap()
            );
            assert!(spliced.serves_relations(&relations));
            assert_eq!(spliced.served_relations().unwrap(), relations);
        }
        assert!(!served.serves_relations(&[]));
    }

    /// The body is what serde writes for it: same key order, metadata
    /// ending with uid then etag, relations last.
    #[test]
    fn the_body_is_serdes_own_text() {
        let served =
            PreparedEntity::render(entity(), vec![relation("ownedBy", "group:default/team-a")])
                .unwrap();
        let value: Value = serde_json::from_str(&served.json).unwrap();
        assert_eq!(value.to_string(), *served.json);
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["apiVersion", "kind", "metadata", "spec", "relations"]
        );
        let metadata: Vec<&String> = value["metadata"].as_object().unwrap().keys().collect();
        assert_eq!(metadata[metadata.len() - 2..], ["uid", "etag"]);
        assert_eq!(value["metadata"]["uid"], served.uid.as_str());
        assert_eq!(value["metadata"]["etag"].as_str().unwrap().len(), 40);
    }
}
