//! The shapes the `#[utoipa::path]` declarations name. Entities are served
//! as stored JSON and most answers are assembled as JSON, not built from
//! Rust types, so each shape here is the JSON Schema it is (a test checks
//! that each parses). The bodies handlers parse derive theirs instead.

use std::borrow::Cow;

use serde_json::{Value, json};
use utoipa::openapi::{RefOr, Schema};

/// The error responses' description.
pub(super) const ERROR: &str = "Backstage error body";

/// `Name = schema;` (or `Name as "name" = schema;`): a type the
/// declarations can name, described by `schema`.
macro_rules! shapes {
    ($($(#[$doc:meta])* $name:ident $(as $alias:literal)? = $schema:tt;)*) => {
        $(
            $(#[$doc])*
            pub(super) struct $name;

            impl utoipa::PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    parse(json!($schema))
                }
            }

            impl utoipa::ToSchema for $name {
                $(fn name() -> Cow<'static, str> {
                    Cow::Borrowed($alias)
                })?
            }
        )*

        #[cfg(test)]
        pub(super) fn all() -> Vec<(&'static str, Value)> {
            vec![$((stringify!($name), json!($schema))),*]
        }
    };
}

fn parse(schema: Value) -> RefOr<Schema> {
    // `every_shape_parses` holds this.
    serde_json::from_value(schema).unwrap_or_default()
}

fn entity() -> Value {
    json!({"$ref": "#/components/schemas/Entity"})
}

fn location() -> Value {
    json!({"$ref": "#/components/schemas/Location"})
}

fn facets() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "array", "items": {"type": "object", "properties": {"value": {"type": "string"}, "count": {"type": "integer"}}}}})
}

shapes! {
    Entity = {"type": "object", "required": ["apiVersion", "kind", "metadata"], "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
        "metadata": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "uid": {"type": "string"}, "etag": {"type": "string"}, "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "spec": {"type": "object"}, "relations": {"type": "array", "items": {"type": "object"}}}};
    QueryPage = {"type": "object", "properties": {
        "items": {"type": "array", "items": entity()}, "totalItems": {"type": "integer"},
        "pageInfo": {"type": "object", "properties": {"nextCursor": {"type": "string"}, "prevCursor": {"type": "string"}}}}};
    Location = {"type": "object", "properties": {"id": {"type": "string"}, "type": {"type": "string"}, "target": {"type": "string"}, "entityRef": {"type": "string"}}};
    /// Backstage's error body.
    ErrorBody as "Error" = {"type": "object", "properties": {
        "error": {"type": "object", "properties": {"name": {"type": "string"}, "message": {"type": "string"}}},
        "request": {"type": "object", "properties": {"method": {"type": "string"}, "url": {"type": "string"}}},
        "response": {"type": "object", "properties": {"statusCode": {"type": "integer"}}}}};
    /// OpenAPI 3.0 cannot mark a reference nullable: the text says so.
    RefsItems = {"type": "object", "properties": {"items": {"type": "array", "description": "In request order; null where missing", "items": entity()}}};
    Facets = {"type": "object", "properties": {"facets": facets()}};
    Ancestry = {"type": "object", "properties": {"rootEntityRef": {"type": "string"},
        "items": {"type": "array", "items": {"type": "object", "properties": {"entity": entity(), "parentEntityRefs": {"type": "array", "items": {"type": "string"}}}}}}};
    OrderBy = {"type": "object", "properties": {"field": {"type": "string"}, "order": {"type": "string", "enum": ["asc", "desc"]}}};
    FullText = {"type": "object", "properties": {"term": {"type": "string"}, "fields": {"type": "array", "items": {"type": "string"}}}};
    TotalItems = {"type": "string", "enum": ["include", "exclude"]};
    DryRun = {"type": "string", "enum": ["true", "false"]};
    OnConflict = {"type": "string", "enum": ["reject", "refresh"]};
    CatalogFilter = {"type": "string", "enum": ["missing", "present", "unknown"]};
    LocationType = {"type": "string", "enum": ["url"]};
    LocationItem = {"type": "object", "properties": {"data": location()}};
    Registration = {"type": "object", "properties": {"location": location(), "entities": {"type": "array", "items": entity()}, "exists": {"type": "boolean"}, "problems": {"type": "array", "items": {"type": "object"}}}};
    LocationQueryBody = {"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1}, "cursor": {"type": "string"}, "query": {"type": "object"}}};
    LocationPage = {"type": "object", "properties": {"items": {"type": "array", "items": location()}, "totalItems": {"type": "integer"}, "pageInfo": {"type": "object", "properties": {"nextCursor": {"type": "string"}}}}};
    Analysis = {"type": "object", "properties": {"existingEntityFiles": {"type": "array", "items": {"type": "object"}}, "generateEntities": {"type": "array", "items": {"type": "object"}}}};
    /// One repository record, as `/providers/{id}/repositories` lists it.
    Repository = {"type": "object", "properties": {
        "project": {"type": "string"}, "slug": {"type": "string"}, "url": {"type": "string"}, "id": {"type": "string"},
        "catalogUrl": {"type": "string"}, "branch": {"type": "string"},
        "catalog": {"type": "string", "enum": ["present", "missing", "unknown", "unreadable"]},
        "changeToken": {"type": "string"}, "readAt": {"type": "string", "format": "date-time"},
        "entities": {"type": "integer"}, "problems": {"type": "array", "items": {"type": "object"}}}};
    Refreshing = {"type": "object", "properties": {"provider": {"type": "string"}, "refresh": {"type": "string", "enum": ["started", "alreadyRunning"]}}};
    InputErrors = {"type": "object", "properties": {"errors": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "message": {"type": "string"}}}}}};
    Changes = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"sequence": {"type": "integer"}, "type": {"type": "string", "enum": ["upsert", "delete"]}, "entityRef": {"type": "string"}, "entity": entity()}}}, "cursor": {"type": "string"}, "hasMore": {"type": "boolean"}}};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_parses() {
        for (name, schema) in all() {
            let parsed: Result<RefOr<Schema>, _> = serde_json::from_value(schema.clone());
            let back = parsed.map(|p| serde_json::to_value(p).unwrap_or_default());
            assert!(
                back.is_ok_and(|b| b == schema),
                "{name} does not parse: {schema}"
            );
        }
    }
}
