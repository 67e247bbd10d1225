//! `POST /api/catalog/validate-entity` (`validateEntity` in
//! `@backstage/catalog-client`): 200 when discovery would accept the entity
//! from the given location, else 400 `{errors: [...]}`, Backstage's
//! serialized `InputError`s.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::schema::InputErrors;
use super::state::{ApiState, Req};

#[derive(Deserialize, ToSchema)]
struct ValidateRequest {
    #[schema(value_type = Object)]
    entity: Value,
    /// url:<target>
    location: String,
}

fn invalid(messages: impl IntoIterator<Item = String>) -> Response {
    let errors: Vec<Value> = messages
        .into_iter()
        .map(|message| json!({"name": "InputError", "message": message}))
        .collect();
    (StatusCode::BAD_REQUEST, Json(json!({"errors": errors}))).into_response()
}

/// Location targets and placeholders are read on Bitbucket with the
/// daemon's credentials: the caller needs what registering needs.
#[utoipa::path(post, path = "/api/catalog/validate-entity",
    summary = "Check an entity as discovery would read it from the location (envelope, catalog.rules, validation, Location targets)",
    request_body(content = inline(ValidateRequest), content_type = "application/json"),
    responses((status = 200, description = "Valid"),
        (status = 400, description = "Invalid: Backstage's serialized InputErrors", body = InputErrors),
        (status = 429, description = "Paced", body = super::schema::ErrorBody)))]
pub(super) async fn validate_entity(
    State(state): State<ApiState>,
    req: Req,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(paced) = state.pace.pace(&req, &headers) {
        return paced.into_response();
    }
    let request: ValidateRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return invalid([format!(
                "Malformed request body, expected {{\"entity\": {{...}}, \"location\": \"url:<target>\"}}: {err}"
            )]);
        }
    };
    match state
        .locations
        .validate(&request.entity, &request.location)
        .await
    {
        Err(err) => invalid([err.to_string()]),
        Ok(problems) if problems.is_empty() => StatusCode::OK.into_response(),
        Ok(problems) => invalid(problems.into_iter().map(|p| match &p.entity_ref {
            Some(entity_ref) => format!("{entity_ref}: {}", p.message),
            None => p.message,
        })),
    }
}
