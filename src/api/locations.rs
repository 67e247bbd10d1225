//! Locations in Backstage's shape (`{id, type, target, entityRef}`):
//! `GET /api/catalog/locations[/{id}]` lists static, registered and
//! discovered ones; `POST /api/catalog/locations` registers one
//! (catalog-import, `?dryRun=true` only reads it); `DELETE
//! /api/catalog/locations/{id}` removes a registered one and its entities.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState, EntityName, Req};
use crate::config::WritePermission;
use crate::locations::LocationQuery;

pub(super) async fn list(State(state): State<ApiState>) -> Response {
    let all: Vec<Value> = state
        .locations
        .list()
        .into_iter()
        .map(|l| json!({"data": l}))
        .collect();
    Json(all).into_response()
}

pub(super) async fn get_one(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state
        .locations
        .get(&id)
        .map(|l| Json(l).into_response())
        .ok_or_else(|| req.not_found(format!("Found no location with ID {id}")))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateParams {
    dry_run: Option<String>,
    on_conflict: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LocationInput {
    #[serde(rename = "type")]
    type_: String,
    target: String,
}

/// `{location, entities}`, or with `?dryRun=true` `{exists, location,
/// entities}` without storing anything; `?onConflict=refresh` reads an
/// existing location again instead of answering 409. Our addition:
/// `problems`, what the target's files got wrong.
pub(super) async fn create(
    State(state): State<ApiState>,
    req: Req,
    headers: HeaderMap,
    Query(params): Query<CreateParams>,
    body: Bytes,
) -> Result<Response, ApiError> {
    req.authorize(&state, &headers, WritePermission::LocationCreate)?;
    // `yes` or `no` (absent: no).
    let flag = |name: &str, value: Option<&str>, [yes, no]: [&str; 2]| match value {
        None => Ok(false),
        Some(v) if v == yes || v == no => Ok(v == yes),
        Some(v) => Err(req.input(format!("invalid {name} '{v}'; use {yes} or {no}"))),
    };
    let dry_run = flag("dryRun", params.dry_run.as_deref(), ["true", "false"])?;
    let refresh = flag(
        "onConflict",
        params.on_conflict.as_deref(),
        ["refresh", "reject"],
    )?;
    let input = location_input(&req, &body)?;
    let target = input.target.trim();
    let registration = state
        .locations
        .register(&input.type_, target, dry_run, refresh)
        .await?;
    let mut body = json!({
        "location": registration.location,
        "entities": registration.entities,
        "problems": registration.problems,
    });
    if dry_run {
        body["exists"] = json!(registration.exists);
    }
    // Always 201: @backstage/catalog-client rejects anything else, dry runs
    // and refreshes included.
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// 204; 404 unless `id` is a location registered over HTTP.
pub(super) async fn delete(
    State(state): State<ApiState>,
    req: Req,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    req.authorize(&state, &headers, WritePermission::LocationDelete)?;
    state.locations.remove(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A `{type, target}` body with a non-empty target.
fn location_input(req: &Req, body: &[u8]) -> Result<LocationInput, ApiError> {
    let input: LocationInput = serde_json::from_slice(body).map_err(|e| {
        req.input(format!(
            "expected a JSON body {{\"type\": \"url\", \"target\": <Bitbucket file URL>}}: {e}"
        ))
    })?;
    if input.target.trim().is_empty() {
        return Err(req.input("target is empty; give the URL of a catalog file"));
    }
    Ok(input)
}

/// `PUT /locations/{id}` with `{type, target}`: 200 and the location.
pub(super) async fn update(
    State(state): State<ApiState>,
    req: Req,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // It removes the old location's entities, as DELETE does.
    req.authorize(&state, &headers, WritePermission::LocationCreate)?;
    req.authorize(&state, &headers, WritePermission::LocationDelete)?;
    let input = location_input(&req, &body)?;
    let target = input.target.trim();
    let location = state.locations.update(&id, &input.type_, target).await?;
    Ok(Json(location).into_response())
}

/// `GET /locations/by-entity/{kind}/{namespace}/{name}`.
pub(super) async fn by_entity(
    State(state): State<ApiState>,
    req: Req,
    Path(name): Path<EntityName>,
) -> Result<Response, ApiError> {
    let entity = state
        .catalog
        .get(&name.key())
        .ok_or_else(|| name.not_found(&req))?;
    state
        .locations
        .by_entity(&entity)
        .map(|l| Json(l).into_response())
        .ok_or_else(|| {
            req.not_found(format!(
                "No location found for entity {}",
                entity.entity_ref
            ))
        })
}

/// `POST /locations/by-query`: `{items, totalItems, pageInfo}`.
pub(super) async fn by_query(
    State(state): State<ApiState>,
    req: Req,
    body: Bytes,
) -> Result<Response, ApiError> {
    let query: LocationQuery = if body.iter().all(u8::is_ascii_whitespace) {
        LocationQuery::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| req.input(format!("Invalid request body: {e}")))?
    };
    let s = state.clone();
    super::evaluate(&state, &req, move || {
        Ok(Json(s.locations.query(&query)?).into_response())
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnalyzeRequest {
    location: LocationInput,
    catalog_filename: Option<String>,
}

/// `POST /analyze-location` (catalog-import):
/// `{existingEntityFiles, generateEntities}`.
pub(super) async fn analyze(
    State(state): State<ApiState>,
    req: Req,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // It reads Bitbucket on the caller's behalf, as registering does.
    req.authorize(&state, &headers, WritePermission::LocationCreate)?;
    let input: AnalyzeRequest = serde_json::from_slice(&body).map_err(|e| {
        req.input(format!(
            "expected a JSON body {{\"location\": {{\"type\": \"url\", \"target\": <Bitbucket repository or file URL>}}}}: {e}"
        ))
    })?;
    let target = input.location.target.trim();
    if target.is_empty() {
        return Err(req.input("location.target is empty; give a repository or file URL"));
    }
    let analysis = state
        .locations
        .analyze(
            &input.location.type_,
            target,
            input.catalog_filename.as_deref(),
        )
        .await?;
    Ok(Json(analysis).into_response())
}
