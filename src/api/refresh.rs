//! `POST /api/catalog/refresh` (`refreshEntity` in `@backstage/catalog-client`,
//! "Schedule entity refresh" in Backstage's UI): re-reads the one repository
//! or location the entity comes from, not its whole provider.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use super::entities::parse_ref;
use super::error::{ApiError, Unavailable};
use super::pace::Admitted;
use super::schema::{ERROR, ErrorBody};
use super::state::{ApiState, Req, owning_runner};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RefreshRequest {
    entity_ref: String,
    /// Backstage's client may send it; access is decided by the bearer token.
    #[serde(default)]
    #[allow(dead_code)]
    #[schema(value_type = String, required = false)]
    authorization_token: Option<serde_json::Value>,
}

#[utoipa::path(post, path = "/api/catalog/refresh",
    summary = "Re-read the one repository (or registered location) the entity comes from (refreshEntity)",
    request_body(content = inline(RefreshRequest), content_type = "application/json"),
    responses((status = 200, description = "Scheduled"), (status = 400, description = ERROR, body = ErrorBody), (status = 401, description = ERROR, body = ErrorBody), (status = 403, description = ERROR, body = ErrorBody), (status = 404, description = ERROR, body = ErrorBody)))]
pub(super) async fn refresh_entity(
    State(state): State<ApiState>,
    req: Req,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: RefreshRequest = serde_json::from_slice(&body).map_err(|err| {
        req.input(format!(
            "Malformed request body: {err}; expected {{\"entityRef\": \"kind:namespace/name\"}}"
        ))
    })?;
    let not_found = || req.not_found(format!("No entity with ref '{}' found", request.entity_ref));
    let key = parse_ref(&request.entity_ref).ok_or_else(not_found)?;
    if state.catalog.get(&key).is_none() {
        return Err(not_found());
    }
    let (runner, unit) = owning_runner(&state, &key).ok_or_else(not_found)?;
    let target = format!("unit:{}/{unit}", runner.id());
    if state.pace.admit(&req, &headers, &target)? == Admitted::Coalesced {
        return Ok(StatusCode::OK.into_response());
    }
    runner.refresh_unit(&unit).await.map_err(|why| {
        let entity = &request.entity_ref;
        Unavailable(format!(
            "the refresh of {entity} cannot be scheduled: {why}"
        ))
    })?;
    Ok(StatusCode::OK.into_response())
}
