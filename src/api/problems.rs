//! `GET /api/catalog/providers/{id}/errors`: the problems of a provider's
//! last run, so that every rejected file and entity is visible over HTTP.

use axum::extract::{OriginalUri, Path, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::{ApiError, ApiState};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/catalog/providers/{id}/errors", get(provider_errors))
}

/// `{provider, finishedAt, outcome, problems: [{url, kind, document?,
/// entityRef?, message, at}]}`; before the first run `finishedAt` and
/// `outcome` are null and `problems` is empty.
async fn provider_errors(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let Some(runner) = state.providers.iter().find(|r| r.id() == id) else {
        let known: Vec<&str> = state.providers.iter().map(|r| r.id()).collect();
        return Err(ApiError::not_found(
            format!(
                "No provider '{id}' (known: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
            &method,
            &uri,
        ));
    };
    let body = match runner.last_report() {
        Some(report) => json!({
            "provider": runner.id(),
            "finishedAt": report.finished_at,
            "outcome": report.outcome,
            "problems": report.problems,
        }),
        None => json!({
            "provider": runner.id(),
            "finishedAt": null,
            "outcome": null,
            "problems": [],
        }),
    };
    Ok(Json(body).into_response())
}
