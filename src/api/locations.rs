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
use utoipa::ToSchema;

use super::error::ApiError;
use super::pace::Admitted;
use super::schema::{
    Analysis, DryRun, ERROR, ErrorBody, Location, LocationItem, LocationPage, LocationQueryBody,
    LocationType, OnConflict, Registration,
};
use super::state::{ApiState, EntityName, Req, evaluate};
use crate::locations::LocationQuery;

#[utoipa::path(get, path = "/api/catalog/locations",
    summary = "Locations: static (catalog.locations), registered over HTTP, and files providers discovered",
    responses((status = 200, description = "Locations", body = Vec<LocationItem>)))]
pub(super) async fn list(State(state): State<ApiState>) -> Response {
    let all: Vec<Value> = state
        .locations
        .list()
        .into_iter()
        .map(|l| json!({"data": l}))
        .collect();
    Json(all).into_response()
}

#[utoipa::path(get, path = "/api/catalog/locations/{id}", summary = "One location",
    params(("id" = String, Path)),
    responses((status = 200, description = "The location", body = Location), (status = 404, description = ERROR, body = ErrorBody)))]
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

#[derive(Debug, Deserialize, ToSchema)]
struct LocationInput {
    #[serde(rename = "type")]
    #[schema(value_type = LocationType, inline)]
    type_: String,
    target: String,
}

/// `{location, entities}`, or with `?dryRun=true` `{exists, location,
/// entities}` without storing anything; `?onConflict=refresh` reads an
/// existing location again instead of answering 409. Our addition:
/// `problems`, what the target's files got wrong.
#[utoipa::path(post, path = "/api/catalog/locations",
    summary = "Register a Bitbucket file URL (catalog-import): read now, store, refresh on catalog.locationSchedule",
    params(("dryRun" = inline(Option<DryRun>), Query, description = "Only read the target; store nothing"),
        ("onConflict" = inline(Option<OnConflict>), Query, description = "An existing location: 409 (reject, default) or read it again (refresh)")),
    request_body(content = inline(LocationInput), content_type = "application/json"),
    responses((status = 201, description = "Registered (or read, for a dry run or refresh)", body = Registration),
        (status = 400, description = ERROR, body = ErrorBody), (status = 401, description = ERROR, body = ErrorBody), (status = 403, description = ERROR, body = ErrorBody), (status = 404, description = ERROR, body = ErrorBody), (status = 409, description = ERROR, body = ErrorBody), (status = 429, description = ERROR, body = ErrorBody), (status = 503, description = ERROR, body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<ApiState>,
    req: Req,
    Query(params): Query<CreateParams>,
    body: Bytes,
) -> Result<Response, ApiError> {
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
    let registration = state
        .locations
        .register(&input.type_, &input.target, dry_run, refresh)
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
#[utoipa::path(delete, path = "/api/catalog/locations/{id}",
    summary = "Remove a location registered over HTTP, and its entities",
    params(("id" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 401, description = ERROR, body = ErrorBody), (status = 403, description = ERROR, body = ErrorBody), (status = 404, description = ERROR, body = ErrorBody), (status = 409, description = ERROR, body = ErrorBody), (status = 429, description = ERROR, body = ErrorBody)))]
pub(super) async fn delete(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // Counted as its entities against the API removals' guard.
    let removing = state
        .catalog
        .source_len(&crate::discovery::location::source_id(&id));
    if state.locations.get(&id).is_some() {
        state
            .removals
            .admit(&req, state.catalog.len(), removing.max(1))?;
    }
    state.locations.remove(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A `{type, target}` body with a non-empty target, trimmed.
fn location_input(req: &Req, body: &[u8]) -> Result<LocationInput, ApiError> {
    let mut input: LocationInput = serde_json::from_slice(body).map_err(|e| {
        req.input(format!(
            "expected a JSON body {{\"type\": \"url\", \"target\": <Bitbucket file URL>}}: {e}"
        ))
    })?;
    input.target = input.target.trim().to_owned();
    if input.target.is_empty() {
        return Err(req.input("target is empty; give the URL of a catalog file"));
    }
    Ok(input)
}

/// `PUT /locations/{id}` with `{type, target}`: 200 and the location.
#[utoipa::path(put, path = "/api/catalog/locations/{id}",
    summary = "Point a location registered over HTTP at another target: read first, then its old entities go (it keeps its id)",
    params(("id" = String, Path)),
    request_body(content = inline(LocationInput), content_type = "application/json"),
    responses((status = 200, description = "The location", body = Location), (status = 400, description = ERROR, body = ErrorBody), (status = 401, description = ERROR, body = ErrorBody), (status = 403, description = ERROR, body = ErrorBody), (status = 404, description = ERROR, body = ErrorBody), (status = 409, description = ERROR, body = ErrorBody), (status = 503, description = ERROR, body = ErrorBody)))]
pub(super) async fn update(
    State(state): State<ApiState>,
    req: Req,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input = location_input(&req, &body)?;
    if state
        .pace
        .admit(&req, &headers, &format!("location:{id}:{}", input.target))?
        == Admitted::Coalesced
        && let Some(location) = state.locations.get(&id)
        && location.target == input.target
    {
        return Ok(Json(location).into_response());
    }
    let location = state
        .locations
        .update(&id, &input.type_, &input.target)
        .await?;
    Ok(Json(location).into_response())
}

/// `GET /locations/by-entity/{kind}/{namespace}/{name}`.
#[utoipa::path(get, path = "/api/catalog/locations/by-entity/{kind}/{namespace}/{name}",
    summary = "The location the entity's managed-by-location names",
    params(("kind" = String, Path), ("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "The location", body = Location), (status = 404, description = ERROR, body = ErrorBody)))]
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
#[utoipa::path(post, path = "/api/catalog/locations/by-query",
    summary = "Locations page by page, in id order, with a predicate on id, type and target",
    request_body(content = inline(LocationQueryBody), content_type = "application/json"),
    responses((status = 200, description = "A page", body = LocationPage), (status = 400, description = ERROR, body = ErrorBody)))]
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
    evaluate(&state, &req, move || {
        Ok(Json(s.locations.query(&query)?).into_response())
    })
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AnalyzeRequest {
    #[schema(inline)]
    location: LocationInput,
    #[schema(nullable = false)]
    catalog_filename: Option<String>,
}

/// `POST /analyze-location` (catalog-import):
/// `{existingEntityFiles, generateEntities}`.
#[utoipa::path(post, path = "/api/catalog/analyze-location",
    summary = "catalog-import: the entities of a Bitbucket file or repository's catalog file, or a suggested Component for a repository without one",
    request_body(content = inline(AnalyzeRequest), content_type = "application/json"),
    responses((status = 200, description = "Analysis", body = Analysis), (status = 400, description = ERROR, body = ErrorBody), (status = 401, description = ERROR, body = ErrorBody), (status = 403, description = ERROR, body = ErrorBody), (status = 404, description = ERROR, body = ErrorBody), (status = 503, description = ERROR, body = ErrorBody)))]
pub(super) async fn analyze(
    State(state): State<ApiState>,
    req: Req,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input: AnalyzeRequest = serde_json::from_slice(&body).map_err(|e| {
        req.input(format!(
            "expected a JSON body {{\"location\": {{\"type\": \"url\", \"target\": <Bitbucket repository or file URL>}}}}: {e}"
        ))
    })?;
    let target = input.location.target.trim();
    if target.is_empty() {
        return Err(req.input("location.target is empty; give a repository or file URL"));
    }
    // Its answer is not kept, so it is paced, not coalesced.
    state.pace.pace(&req, &headers)?;
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
