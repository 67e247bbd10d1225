//! `GET /api/catalog/openapi.json`: the OpenAPI 3.0 description of the
//! catalog API. Its paths come from the routes' `#[utoipa::path]`
//! declarations, collected as [`super::routes`] mounts them; this adds the
//! frame (info, server, security scheme).

use serde_json::{Map, Value, json};
use utoipa::openapi::OpenApi;

use super::writes::SCHEME;

/// Where the catalog API is served; the document's paths are relative to it.
pub(super) const SERVER: &str = "/api/catalog";

/// The document for the operations `generated` holds.
pub(super) fn document(generated: OpenApi) -> Value {
    let paths: Map<String, Value> = generated
        .paths
        .paths
        .into_iter()
        .map(|(path, item)| {
            let relative = path
                .strip_prefix(SERVER)
                .map_or(path.clone(), str::to_owned);
            // utoipa's types serialise to JSON without fail.
            (relative, serde_json::to_value(item).unwrap_or_default())
        })
        .collect();
    let schemas = generated
        .components
        .map(|c| serde_json::to_value(c.schemas).unwrap_or_default());
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "bitbucket-catalogd catalog API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Backstage catalog REST dialect served by bitbucket-catalogd, plus provider status and control."
        },
        "servers": [{"url": SERVER}],
        "paths": paths,
        "components": {
            "securitySchemes": {SCHEME: {"type": "http", "scheme": "bearer", "description": "A backend.auth.externalAccess static token; required only when that is configured"}},
            "schemas": schemas.unwrap_or_else(|| json!({})),
        },
    })
}
