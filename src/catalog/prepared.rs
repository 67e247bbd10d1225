//! An entity as it is served: rendered JSON, uid and search rows built
//! once when it changes, never per request.

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
}

impl PreparedEntity {
    /// Renders `entity` with `relations` as it is served (uid and etag
    /// assigned), with its search rows.
    pub fn render(entity: Entity, relations: Vec<entity::Relation>) -> Self {
        let key = entity.key();
        let entity_ref = entity.entity_ref();
        let location = annotation_url(&entity, entity::ANNOTATION_LOCATION);
        let origin = annotation_url(&entity, entity::ANNOTATION_ORIGIN_LOCATION);
        let value = stitch::served_value(entity, relations);
        Self {
            entity_ref,
            uid: stitch::uid_for(key.as_str()),
            json: Arc::from(value.to_string()),
            search: SearchRows::build(&value),
            location,
            origin,
            key,
        }
    }

    /// The body as a JSON value (for projections).
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }

    /// The typed entity, parsed back from what is served.
    pub(super) fn typed(&self) -> Option<Entity> {
        serde_json::from_str(&self.json).ok()
    }
}

fn annotation_url(entity: &Entity, name: &str) -> Option<String> {
    entity
        .metadata
        .annotations
        .get(name)
        .map(|v| v.strip_prefix("url:").unwrap_or(v).to_owned())
}
