//! `POST /api/catalog/refresh` (`refreshEntity` in `@backstage/catalog-client`,
//! "Schedule entity refresh" in Backstage's UI): re-reads the one repository
//! or location the entity comes from, not its whole provider.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::entities::parse_ref;
use super::error::Unavailable;
use super::{ApiError, ApiState, Req};
use crate::config::WritePermission;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshRequest {
    entity_ref: String,
    /// Backstage's client may send it; access is decided by the bearer token.
    #[serde(default)]
    #[allow(dead_code)]
    authorization_token: Option<serde_json::Value>,
}

pub(super) async fn refresh_entity(
    State(state): State<ApiState>,
    req: Req,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    req.authorize(&state, &headers, WritePermission::EntityRefresh)?;
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
    let (runner, unit) = super::owning_runner(&state, &key).ok_or_else(not_found)?;
    runner.refresh_unit(&unit).await.map_err(|why| {
        let entity = &request.entity_ref;
        Unavailable(format!(
            "the refresh of {entity} cannot be scheduled: {why}"
        ))
    })?;
    Ok(StatusCode::OK.into_response())
}
