//! Source status and control: `GET /api/catalog/providers` (providers, then
//! locations given by URL), `POST /api/catalog/providers/{id}/refresh`.

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, ApiState, Req};
use crate::config::WritePermission;
use crate::discovery::Source;
use crate::scheduler::{RefreshOutcome, SourceRunner};

async fn status(state: &ApiState, runner: &SourceRunner) -> Value {
    let mut status = json!({
        "id": runner.id(),
        "type": runner.source().kind(),
        "target": runner.target(),
        "schedule": runner.schedule(),
        "nextRun": state.scheduler.next_run(runner.id()).await,
        "inProgress": runner.in_progress(),
        "entities": state.catalog.source_len(runner.id()),
        "lastRun": runner.last_report(),
    });
    if let Source::Location(location) = runner.source() {
        status["locationId"] = json!(location.location_id());
        status["origin"] = json!(location.origin());
    }
    status
}

/// Every provider: configuration summary, next and last run, whether running.
pub async fn list(State(state): State<ApiState>) -> Response {
    let mut providers = Vec::new();
    for runner in state.scheduler.runners() {
        providers.push(status(&state, &runner).await);
    }
    Json(providers).into_response()
}

pub async fn get_one(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let runner = state
        .scheduler
        .runner(&id)
        .ok_or_else(|| unknown(&state, &id, &method, &uri))?;
    Ok(Json(status(&state, &runner).await).into_response())
}

/// The problems of the provider's last run, so that every rejected file and
/// entity is visible over HTTP: `{provider, finishedAt, outcome, problems:
/// [{url, kind, document?, entityRef?, message, at}]}`; before the first run
/// `finishedAt` and `outcome` are null and `problems` is empty.
pub async fn errors(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let runner = state
        .scheduler
        .runner(&id)
        .ok_or_else(|| unknown(&state, &id, &method, &uri))?;
    let body = match runner.last_report() {
        Some(report) => {
            json!({"provider": runner.id(), "finishedAt": report.finished_at, "outcome": report.outcome, "problems": report.problems})
        }
        None => {
            json!({"provider": runner.id(), "finishedAt": null, "outcome": null, "problems": []})
        }
    };
    Ok(Json(body).into_response())
}

/// Starts a run now (202); if one is running it serves the request.
pub async fn refresh(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    req: Req,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    req.authorize(&state, &headers, WritePermission::EntityRefresh)?;
    let (method, uri) = (req.method, req.uri);
    let runner = state
        .scheduler
        .runner(&id)
        .ok_or_else(|| unknown(&state, &id, &method, &uri))?;
    let outcome = match runner.refresh() {
        RefreshOutcome::Started => "started",
        RefreshOutcome::AlreadyRunning => "alreadyRunning",
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"provider": id, "refresh": outcome})),
    )
        .into_response())
}

fn unknown(state: &ApiState, id: &str, method: &Method, uri: &axum::http::Uri) -> ApiError {
    let runners = state.scheduler.runners();
    let known: Vec<&str> = runners.iter().map(|r| r.id()).collect();
    ApiError::not_found(
        format!(
            "No provider '{id}'; known providers: {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ),
        method,
        uri,
    )
}
