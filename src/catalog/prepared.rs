//! An entity as it is served: rendered JSON, uid and search rows built
//! once when it changes, never per request. The catalog keeps what it needs
//! to stitch beside it (`State::emits`), so the JSON is parsed back into an
//! [`Entity`] only to re-render an entity whose relations moved.

use std::sync::Arc;

use serde_json::Value;

use super::entity::{self, Entity, EntityKey};
use super::relations::Reference;
use super::search::SearchRows;
use super::stitch;

/// An entity ready to serve: identity assigned, JSON rendered once, search
/// rows built once.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedEntity {
    pub key: EntityKey,
    /// `kind:namespace/name` with the kind lowercased, as Backstage prints it.
    pub entity_ref: String,
    /// 16 bytes, not its 36 characters: `by_uid` is keyed by it too.
    pub uid: uuid::Uuid,
    /// The served JSON body.
    pub json: Arc<str>,
    pub search: SearchRows,
    /// `backstage.io/managed-by-location` without the `url:` prefix.
    pub location: Option<Arc<str>>,
    /// `backstage.io/managed-by-origin-location` without the `url:` prefix;
    /// the same string as `location` when they are equal (most entities).
    pub origin: Option<Arc<str>>,
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
        let origin = shared(
            annotation_url(&entity, entity::ANNOTATION_ORIGIN_LOCATION),
            &location,
        );
        let value = stitch::served_value(entity, relations)?;
        let json: Arc<str> = Arc::from(value.to_string());
        Ok(Self {
            entity_ref,
            uid: stitch::uid_for(key.as_str()),
            search: SearchRows::build_in(&value, Arc::clone(&json)),
            json,
            location,
            origin,
            key,
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

    /// The references it makes, for the relation index, parsing only what
    /// they come from (kind, name, namespace, spec): start-up reads every
    /// entity this way.
    pub(super) fn references(&self) -> Result<Vec<Reference>, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Named {
            name: String,
            #[serde(default)]
            namespace: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Referring {
            kind: String,
            metadata: Named,
            #[serde(default)]
            spec: Option<Value>,
        }
        let referring: Referring = serde_json::from_str(&self.json)?;
        let entity = Entity {
            api_version: String::new(),
            kind: referring.kind,
            metadata: entity::Metadata {
                name: referring.metadata.name,
                namespace: (referring.metadata.namespace)
                    .unwrap_or_else(|| entity::DEFAULT_NAMESPACE.to_owned()),
                annotations: Default::default(),
                rest: Default::default(),
                uid: None,
                etag: None,
            },
            spec: referring.spec,
            relations: Vec::new(),
        };
        Ok(stitch::references_of(&entity))
    }

    /// Its references as the store keeps them (see
    /// [`stitch::references_to_store`]); `None`: derive them at start-up.
    /// Tests only: the catalog hands the store the references it indexed.
    #[cfg(test)]
    pub(crate) fn references_to_store(&self) -> Option<String> {
        stitch::references_to_store(&self.references().ok()?)
    }

    /// The relations it is served with, read without building the rest of
    /// the entity (the other fields are skipped, not parsed into values).
    pub(super) fn served_relations(&self) -> Result<Vec<entity::Relation>, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Served {
            #[serde(default)]
            relations: Vec<entity::Relation>,
        }
        serde_json::from_str::<Served>(&self.json).map(|served| served.relations)
    }
}

impl PreparedEntity {
    /// Points `location` (and `origin` when it is the same) at `unit`'s
    /// string when they are equal: a discovered entity's location is its
    /// unit's catalog file, one string for both, not two.
    pub(super) fn share_location(&mut self, unit: &Arc<str>) {
        if self.location.as_deref() != Some(&**unit) {
            return;
        }
        if self.origin.as_deref() == Some(&**unit) {
            self.origin = Some(Arc::clone(unit));
        }
        self.location = Some(Arc::clone(unit));
    }
}

fn annotation_url(entity: &Entity, name: &str) -> Option<Arc<str>> {
    entity
        .metadata
        .annotations
        .get(name)
        .map(|v| Arc::from(v.strip_prefix("url:").unwrap_or(v)))
}

/// `origin`, as `location`'s string when they are equal: one copy, not two.
pub(crate) fn shared(origin: Option<Arc<str>>, location: &Option<Arc<str>>) -> Option<Arc<str>> {
    match (origin, location) {
        (Some(origin), Some(location)) if origin == *location => Some(Arc::clone(location)),
        (origin, _) => origin,
    }
}
