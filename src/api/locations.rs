//! `GET /api/catalog/locations[/{id}]`: the files entities were read from
//! (their `managed-by-origin-location`), in Backstage's location shape.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ApiError, ApiState, Req};

/// Namespace for location ids, so a location keeps its id across restarts.
const LOCATION_NAMESPACE: Uuid = Uuid::from_u128(0x0c5b_2a7e_51d4_4d8e_9f33_8e0a_4c6b_91d2);

fn location(target: &str) -> Value {
    let id = Uuid::new_v5(&LOCATION_NAMESPACE, format!("url:{target}").as_bytes());
    // Backstage names a location's entity after the SHA-1 of `type:target`.
    let digest = sha1_smol::Sha1::from(format!("url:{target}"))
        .digest()
        .to_string();
    json!({"id": id.to_string(), "type": "url", "target": target, "entityRef": format!("location:default/generated-{digest}")})
}

fn targets(state: &ApiState) -> BTreeSet<String> {
    state
        .catalog
        .snapshot()
        .entities
        .iter()
        .filter_map(|e| e.origin.clone())
        .collect()
}

pub async fn list(State(state): State<ApiState>) -> Response {
    let all: Vec<Value> = targets(&state)
        .iter()
        .map(|t| json!({"data": location(t)}))
        .collect();
    Json(all).into_response()
}

pub async fn get_one(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    targets(&state)
        .iter()
        .map(|t| location(t))
        .find(|l| l["id"] == id.as_str())
        .map(|l| Json(l).into_response())
        .ok_or_else(|| req.not_found(format!("Found no location with ID {id}")))
}
