//! `GET /api/catalog/openapi.json`: the OpenAPI 3.0 description of this API.

use std::sync::OnceLock;

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

fn param(name: &str, location: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": location, "required": location == "path", "schema": schema, "description": description})
}

fn repeated(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "explode": true, "schema": {"type": "array", "items": {"type": "string"}}, "description": description})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn error_ref() -> Value {
    json!({"description": "Backstage error body", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// Write endpoints: a bearer token when `backend.auth.externalAccess` is set.
fn write() -> Value {
    json!([{"externalAccess": []}, {}])
}

pub(super) fn build() -> Value {
    let mut paths = Map::new();
    for area in [
        entity_paths(),
        location_paths(),
        provider_paths(),
        feed_paths(),
        ancestry_and_checks(),
    ] {
        paths.extend(area);
    }
    for (path, method, operation) in more_operations() {
        if let Some(item) = paths.get_mut(path).and_then(Value::as_object_mut) {
            item.insert(method.to_owned(), operation);
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "bitbucket-catalogd catalog API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Backstage catalog REST dialect served by bitbucket-catalogd, plus provider status and control."
        },
        "servers": [{"url": "/api/catalog"}],
        "paths": paths,
        "components": components(),
    })
}

/// The fields of a JSON object literal (empty for anything else).
fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn entity() -> Value {
    json!({"$ref": "#/components/schemas/Entity"})
}

fn filter() -> Value {
    repeated(
        "filter",
        "Comma-separated key=value (or bare key) conditions, ANDed; repeat to OR",
    )
}

fn fields() -> Value {
    param(
        "fields",
        "query",
        json!({"type": "string"}),
        "Comma-separated dotted paths to return",
    )
}

fn limit() -> Value {
    param(
        "limit",
        "query",
        json!({"type": "integer", "minimum": 0}),
        "Page size",
    )
}

fn offset() -> Value {
    param(
        "offset",
        "query",
        json!({"type": "integer", "minimum": 0}),
        "Items to skip",
    )
}

/// Entities: list, query, by ref, name and uid, facets.
fn entity_paths() -> Map<String, Value> {
    object(json!({
            "/entities": {"get": {
                "summary": "List entities",
                "parameters": [filter(), fields(), limit(), offset(),
                    param("after", "query", json!({"type": "string", "minLength": 1}), "Cursor from a previous Link header"),
                    repeated("order", "asc:<field> or desc:<field>")],
                "responses": {"200": ok("Entities; a Link rel=next header when more remain", json!({"type": "array", "items": entity()})), "400": error_ref()}
            }},
            "/entities/by-query": {
                "get": {
                    "summary": "Query entities with cursor paging",
                    "parameters": [filter(), fields(), limit(), offset(),
                        repeated("orderField", "<field>,asc|desc (first one counts)"),
                        param("cursor", "query", json!({"type": "string"}), "nextCursor or prevCursor of a previous page"),
                        param("totalItems", "query", json!({"type": "string", "enum": ["include", "exclude"]}), "Whether to count"),
                        param("fullTextFilterTerm", "query", json!({"type": "string"}), "Case-insensitive substring"),
                        param("fullTextFilterFields", "query", json!({"type": "string"}), "Comma-separated fields to search")],
                    "responses": {"200": ok("A page", json!({"$ref": "#/components/schemas/QueryPage"})), "400": error_ref()}
                },
                "post": {
                    "summary": "Query entities with a JSON predicate ($all, $any, $not, $exists, $in, $hasPrefix, $contains)",
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                        "cursor": {"type": "string"}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
                        "orderBy": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "order": {"type": "string", "enum": ["asc", "desc"]}}}},
                        "fullTextFilter": {"type": "object", "properties": {"term": {"type": "string"}, "fields": {"type": "array", "items": {"type": "string"}}}},
                        "fields": {"type": "array", "items": {"type": "string"}},
                        "totalItems": {"type": "string", "enum": ["include", "exclude"]},
                        "query": {"type": "object"}}}}}},
                    "responses": {"200": ok("A page", json!({"$ref": "#/components/schemas/QueryPage"})), "400": error_ref()}
                }
            },
            "/entities/by-refs": {"post": {
                "summary": "Entities by ref, in request order (null when missing)",
                "parameters": [filter(), fields()],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["entityRefs"], "properties": {
                    "entityRefs": {"type": "array", "items": {"type": "string"}}, "fields": {"type": "array", "items": {"type": "string"}}, "query": {"type": "object"}}}}}},
                "responses": {"200": ok("Items", json!({"type": "object", "properties": {"items": {"type": "array", "items": {"nullable": true, "allOf": [entity()]}}}})), "400": error_ref()}
            }},
            "/entities/by-name/{kind}/{namespace}/{name}": {"get": {
                "summary": "One entity by name (case-insensitive)",
                "parameters": [param("kind", "path", json!({"type": "string"}), ""), param("namespace", "path", json!({"type": "string"}), ""), param("name", "path", json!({"type": "string"}), "")],
                "responses": {"200": ok("The entity", entity()), "404": error_ref()}
            }},
            "/entities/by-uid/{uid}": {"get": {
                "summary": "One entity by metadata.uid",
                "parameters": [param("uid", "path", json!({"type": "string"}), "")],
                "responses": {"200": ok("The entity", entity()), "404": error_ref()}
            }},
            "/entity-facets": {"get": {
                "summary": "Value counts of fields",
                "parameters": [repeated("facet", "Field to count"), filter()],
                "responses": {"200": ok("Facets", json!({"type": "object", "properties": {"facets": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "object", "properties": {"value": {"type": "string"}, "count": {"type": "integer"}}}}}}})), "400": error_ref()}
            }}
    }))
}

/// Locations: list, register, one, remove.
fn location_paths() -> Map<String, Value> {
    object(json!({
            "/locations": {
                "get": {
                    "summary": "Locations: static (catalog.locations), registered over HTTP, and files providers discovered",
                    "responses": {"200": ok("Locations", json!({"type": "array", "items": {"type": "object", "properties": {"data": {"$ref": "#/components/schemas/Location"}}}}))}
                },
                "post": {
                    "summary": "Register a Bitbucket file URL (catalog-import): read now, store, refresh on catalog.locationSchedule",
                    "security": write(),
                    "parameters": [
                        param("dryRun", "query", json!({"type": "string", "enum": ["true", "false"]}), "Only read the target; store nothing"),
                        param("onConflict", "query", json!({"type": "string", "enum": ["reject", "refresh"]}), "An existing location: 409 (reject, default) or read it again (refresh)")
                    ],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["type", "target"], "properties": {"type": {"type": "string", "enum": ["url"]}, "target": {"type": "string"}}}}}},
                    "responses": {
                        "201": ok("Registered (or read, for a dry run or refresh)", json!({"type": "object", "properties": {"location": {"$ref": "#/components/schemas/Location"}, "entities": {"type": "array", "items": entity()}, "exists": {"type": "boolean"}, "problems": {"type": "array", "items": {"type": "object"}}}})),
                        "400": error_ref(), "401": error_ref(), "403": error_ref(), "404": error_ref(), "409": error_ref(), "429": error_ref(), "503": error_ref()
                    }
                }
            },
            "/locations/{id}": {
                "get": {
                    "summary": "One location",
                    "parameters": [param("id", "path", json!({"type": "string"}), "")],
                    "responses": {"200": ok("The location", json!({"$ref": "#/components/schemas/Location"})), "404": error_ref()}
                },
                "delete": {
                    "summary": "Remove a location registered over HTTP, and its entities",
                    "security": write(),
                    "parameters": [param("id", "path", json!({"type": "string"}), "")],
                    "responses": {"204": {"description": "Removed"}, "401": error_ref(), "403": error_ref(), "404": error_ref()}
                }
            }
    }))
}

/// Providers: status, problems, repositories, refresh.
fn provider_paths() -> Map<String, Value> {
    object(json!({
            "/providers": {"get": {
                "summary": "Provider status: schedule, next run, whether running and the running run's progress (listed, read, remaining, estimated finish), last run (outcome succeeded/incomplete/failed/held, counts, problems, requests)",
                "responses": {"200": ok("Providers", json!({"type": "array", "items": {"type": "object"}}))}
            }},
            "/providers/{id}": {"get": {
                "summary": "One provider's status",
                "parameters": [param("id", "path", json!({"type": "string"}), "")],
                "responses": {"200": ok("Provider", json!({"type": "object"})), "404": error_ref()}
            }},
            "/providers/{id}/errors": {"get": {
                "summary": "The problems of the provider's last run (file URL, kind, document, entity ref, message, time)",
                "parameters": [param("id", "path", json!({"type": "string"}), "")],
                "responses": {"200": ok("Problems", json!({"type": "object"})), "401": error_ref(), "404": error_ref()}
            }},
            "/providers/{id}/repositories": {"get": {
                "summary": "The provider's repositories as the last complete listing had them and their last read found them",
                "parameters": [param("id", "path", json!({"type": "string"}), ""), param("catalog", "query", json!({"type": "string", "enum": ["missing", "present", "unknown"]}), "Only these (unknown: not read yet or unreadable)")],
                "responses": {"200": ok("Repositories", json!({"type": "array", "items": repository_schema()})), "400": error_ref(), "401": error_ref(), "404": error_ref(), "503": error_ref()}
            }},
            "/providers/{id}/refresh": {"post": {
                "summary": "Start a run now (coalesces with a running one); force=true applies it past the deletion guard",
                "security": write(),
                "parameters": [param("id", "path", json!({"type": "string"}), ""), param("force", "query", json!({"type": "boolean"}), "Apply even if it would remove more than deletionThreshold; needs backend.auth.externalAccess")],
                "responses": {"202": ok("Accepted", json!({"type": "object", "properties": {"provider": {"type": "string"}, "refresh": {"type": "string", "enum": ["started", "alreadyRunning"]}}})), "401": error_ref(), "403": error_ref(), "404": error_ref()}
            }}
    }))
}

/// The change feed and per-entity refresh.
fn feed_paths() -> Map<String, Value> {
    object(json!({
            "/changes": {"get": {
                "summary": "The entity change feed: without after, the full current set page by page; with after, what changed since (one entry per entity); wait long-polls",
                "parameters": [param("after", "query", json!({"type": "string"}), "The cursor of an earlier answer"), param("limit", "query", json!({"type": "integer", "minimum": 1, "maximum": 10000}), "Items per page (default 500)"), param("wait", "query", json!({"type": "integer", "minimum": 0, "maximum": 30}), "Seconds to wait for a change when there is none")],
                "responses": {"200": ok("Changes", json!({"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"sequence": {"type": "integer"}, "type": {"type": "string", "enum": ["upsert", "delete"]}, "entityRef": {"type": "string"}, "entity": {"$ref": "#/components/schemas/Entity"}}}}, "cursor": {"type": "string"}, "hasMore": {"type": "boolean"}}})), "400": error_ref(), "410": error_ref()}
            }},
            "/refresh": {"post": {
                "summary": "Re-read the one repository (or registered location) the entity comes from (refreshEntity)",
                "security": write(),
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["entityRef"], "properties": {"entityRef": {"type": "string"}, "authorizationToken": {"type": "string"}}}}}},
                "responses": {"200": {"description": "Scheduled"}, "400": error_ref(), "401": error_ref(), "403": error_ref(), "404": error_ref()}
            }}
    }))
}

/// Security schemes and the shared schemas.
fn components() -> Value {
    json!({
        "securitySchemes": {"externalAccess": {"type": "http", "scheme": "bearer", "description": "A backend.auth.externalAccess static token; required only when that is configured"}},
        "schemas": {
            "Entity": {"type": "object", "required": ["apiVersion", "kind", "metadata"], "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "metadata": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "uid": {"type": "string"}, "etag": {"type": "string"}, "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}},
                "spec": {"type": "object"}, "relations": {"type": "array", "items": {"type": "object"}}}},
            "QueryPage": {"type": "object", "properties": {
                "items": {"type": "array", "items": entity()}, "totalItems": {"type": "integer"},
                "pageInfo": {"type": "object", "properties": {"nextCursor": {"type": "string"}, "prevCursor": {"type": "string"}}}}},
            "Location": {"type": "object", "properties": {"id": {"type": "string"}, "type": {"type": "string"}, "target": {"type": "string"}, "entityRef": {"type": "string"}}},
            "Error": {"type": "object", "properties": {
                "error": {"type": "object", "properties": {"name": {"type": "string"}, "message": {"type": "string"}}},
                "request": {"type": "object", "properties": {"method": {"type": "string"}, "url": {"type": "string"}}},
                "response": {"type": "object", "properties": {"statusCode": {"type": "integer"}}}}}
        }
    })
}

fn path_params(names: &[&str]) -> Value {
    Value::Array(
        names
            .iter()
            .map(|n| param(n, "path", json!({"type": "string"}), ""))
            .collect(),
    )
}

/// The paths the catalog-client's newer operations use.
fn ancestry_and_checks() -> serde_json::Map<String, Value> {
    let location = || json!({"$ref": "#/components/schemas/Location"});
    let by_name = || path_params(&["kind", "namespace", "name"]);
    let ancestry = json!({"get": {
        "summary": "The entity and the Location entities that led to it, each with its parents' refs",
        "parameters": by_name(),
        "responses": {"200": ok("Ancestry", json!({"type": "object", "properties": {
            "rootEntityRef": {"type": "string"},
            "items": {"type": "array", "items": {"type": "object", "properties": {"entity": entity(), "parentEntityRefs": {"type": "array", "items": {"type": "string"}}}}}}})),
            "404": error_ref()}
    }});
    let validate = json!({"post": {
        "summary": "Check an entity as discovery would read it from the location (envelope, catalog.rules, validation, Location targets)",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["entity", "location"], "properties": {"entity": {"type": "object"}, "location": {"type": "string", "description": "url:<target>"}}}}}},
        "responses": {"200": {"description": "Valid"}, "400": ok("Invalid: Backstage's serialized InputErrors", json!({"type": "object", "properties": {"errors": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "message": {"type": "string"}}}}}}))}
    }});
    let analyze = json!({"post": {
        "summary": "catalog-import: the entities of a Bitbucket file or repository's catalog file, or a suggested Component for a repository without one",
        "security": write(),
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["location"], "properties": {"location": {"type": "object", "properties": {"type": {"type": "string", "enum": ["url"]}, "target": {"type": "string"}}}, "catalogFilename": {"type": "string"}}}}}},
        "responses": {"200": ok("Analysis", json!({"type": "object", "properties": {"existingEntityFiles": {"type": "array", "items": {"type": "object"}}, "generateEntities": {"type": "array", "items": {"type": "object"}}}})),
            "400": error_ref(), "401": error_ref(), "403": error_ref(), "404": error_ref(), "503": error_ref()}
    }});
    let by_query = json!({"post": {
        "summary": "Locations page by page, in id order, with a predicate on id, type and target",
        "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1}, "cursor": {"type": "string"}, "query": {"type": "object"}}}}}},
        "responses": {"200": ok("A page", json!({"type": "object", "properties": {"items": {"type": "array", "items": location()}, "totalItems": {"type": "integer"}, "pageInfo": {"type": "object", "properties": {"nextCursor": {"type": "string"}}}}})), "400": error_ref()}
    }});
    let by_entity = json!({"get": {
        "summary": "The location the entity's managed-by-location names",
        "parameters": by_name(),
        "responses": {"200": ok("The location", location()), "404": error_ref()}
    }});
    [
        (
            "/entities/by-name/{kind}/{namespace}/{name}/ancestry",
            ancestry,
        ),
        ("/validate-entity", validate),
        ("/analyze-location", analyze),
        ("/locations/by-query", by_query),
        ("/locations/by-entity/{kind}/{namespace}/{name}", by_entity),
    ]
    .into_iter()
    .map(|(path, item)| (path.to_owned(), item))
    .collect()
}

/// Methods added to paths listed above: `(path, method, operation)`.
fn more_operations() -> Vec<(&'static str, &'static str, Value)> {
    let facets = json!({"type": "object", "properties": {"facets": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "object", "properties": {"value": {"type": "string"}, "count": {"type": "integer"}}}}}}});
    vec![
        (
            "/entities/by-uid/{uid}",
            "delete",
            json!({
                "summary": "Stop serving the entity now; it comes back when its repository or location is next read and applied",
                "security": write(),
                "parameters": path_params(&["uid"]),
                "responses": {"204": {"description": "Removed"}, "401": error_ref(), "403": error_ref(), "404": error_ref()}
            }),
        ),
        (
            "/entity-facets",
            "post",
            json!({
                "summary": "Value counts of fields over the entities a predicate matches (the language of POST /entities/by-query)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["facets"], "properties": {"facets": {"type": "array", "items": {"type": "string"}}, "query": {"type": "object"}}}}}},
                "responses": {"200": ok("Facets", facets), "400": error_ref()}
            }),
        ),
        (
            "/locations/{id}",
            "put",
            json!({
                "summary": "Point a location registered over HTTP at another target: read first, then its old entities go (the id follows the target)",
                "security": write(),
                "parameters": path_params(&["id"]),
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["type", "target"], "properties": {"type": {"type": "string", "enum": ["url"]}, "target": {"type": "string"}}}}}},
                "responses": {"200": ok("The location", json!({"$ref": "#/components/schemas/Location"})), "400": error_ref(), "401": error_ref(), "403": error_ref(), "404": error_ref(), "409": error_ref(), "503": error_ref()}
            }),
        ),
    ]
}

pub(super) async fn document() -> Response {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    Json(DOCUMENT.get_or_init(build)).into_response()
}

/// One repository record, as `/providers/{id}/repositories` lists it.
fn repository_schema() -> Value {
    json!({"type": "object", "properties": {
        "project": {"type": "string"}, "slug": {"type": "string"}, "url": {"type": "string"}, "id": {"type": "string"},
        "catalogUrl": {"type": "string"}, "branch": {"type": "string"},
        "catalog": {"type": "string", "enum": ["present", "missing", "unknown", "unreadable"]},
        "changeToken": {"type": "string"}, "readAt": {"type": "string", "format": "date-time"},
        "entities": {"type": "integer"}, "problems": {"type": "array", "items": {"type": "object"}}
    }})
}
