//! Source status and control: `GET /api/catalog/providers[/{id}]`
//! (providers, then locations given by URL), `GET …/{id}/errors`,
//! `GET …/{id}/repositories`, `POST …/{id}/refresh`.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::{ApiError, HttpError};
use super::params::Params;
use super::schema::{CatalogFilter, ERROR, ErrorBody, Refreshing, Repository};
use super::state::{ApiState, Req};
use crate::discovery::{CatalogFile, Problem, RepositoryRecord, RunReport, Source};
use crate::rfc3339;
use crate::scheduler::{RefreshOutcome, SourceRunner};
use crate::store::StoreError;

async fn status(state: &ApiState, runner: &SourceRunner) -> Value {
    let repositories = runner.repository_counts().map(|c| {
        json!({"total": c.total, "withCatalog": c.with_catalog, "withoutCatalog": c.without_catalog, "unknown": c.unknown})
    });
    let mut status = json!({
        "id": runner.id(),
        "type": runner.source().kind(),
        "target": runner.target(),
        "schedule": runner.schedule(),
        "nextRun": state.scheduler.next_run(runner.id()).await,
        "inProgress": runner.in_progress(),
        "progress": runner.progress(),
        "lastEvent": runner.last_event(),
        "entities": state.catalog.source_len(runner.id()),
        "repositories": repositories,
        "lastRun": runner.last_report(),
    });
    if let Source::Location(location) = runner.source() {
        status["locationId"] = json!(location.location_id());
        status["origin"] = json!(location.origin());
    }
    status
}

fn runner(state: &ApiState, req: &Req, id: &str) -> Result<Arc<SourceRunner>, ApiError> {
    state.scheduler.runner(id).ok_or_else(|| {
        let runners = state.scheduler.runners();
        let known: Vec<&str> = runners.iter().map(|r| r.id()).collect();
        req.not_found(format!(
            "No provider '{id}'; known providers: {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ))
    })
}

/// Every source: configuration summary, next and last run, whether running.
#[utoipa::path(get, path = "/api/catalog/providers",
    summary = "Provider status: schedule, next run, whether running and the running run's progress (listed, read, remaining, estimated finish), last run (outcome succeeded/incomplete/failed/held, counts, problems, requests)",
    responses((status = 200, description = "Providers", body = Vec<Object>)))]
pub(super) async fn list(State(state): State<ApiState>) -> Response {
    let mut providers = Vec::new();
    for runner in state.scheduler.runners() {
        providers.push(status(&state, &runner).await);
    }
    Json(providers).into_response()
}

#[utoipa::path(get, path = "/api/catalog/providers/{id}", summary = "One provider's status",
    params(("id" = String, Path)),
    responses((status = 200, description = "Provider", body = Object), (status = 404, description = ERROR, body = ErrorBody)))]
pub(super) async fn get_one(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let runner = runner(&state, &req, &id)?;
    Ok(Json(status(&state, &runner).await).into_response())
}

/// Every problem known now, so that every rejected file and entity is
/// visible over HTTP: `{provider, finishedAt, outcome, problems: [{url,
/// kind, document?, entityRef?, message, at}]}`. For a provider, each
/// repository's problems are those of its last read (whichever run read it:
/// a run stopped at its timeout reads only part of them), plus the last
/// run's own; before the first run `finishedAt` and `outcome` are null.
#[utoipa::path(get, path = "/api/catalog/providers/{id}/errors",
    summary = "The problems of the provider's last run (file URL, kind, document, entity ref, message, time)",
    params(("id" = String, Path)),
    responses((status = 200, description = "Problems", body = Object), (status = 401, description = ERROR, body = ErrorBody), (status = 404, description = ERROR, body = ErrorBody)))]
pub(super) async fn errors(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let runner = runner(&state, &req, &id)?;
    let report = runner.last_report();
    let records = if runner.source().lists_repositories() {
        runner.repositories().await.map_err(RecordsUnavailable)?
    } else {
        Vec::new()
    };
    let problems = current_problems(report.as_ref(), &records);
    let (finished_at, outcome) = match &report {
        Some(report) => (
            json!(
                report
                    .finished_at
                    .as_ref()
                    .map(rfc3339::format)
                    .unwrap_or_default()
            ),
            json!(report.outcome),
        ),
        None => (Value::Null, Value::Null),
    };
    let body = json!({"provider": runner.id(), "finishedAt": finished_at, "outcome": outcome, "problems": problems});
    Ok(Json(body).into_response())
}

/// Each repository's problems from its last read, plus the last run's own
/// (those not about a repository's file).
pub(super) fn current_problems(
    report: Option<&RunReport>,
    records: &[RepositoryRecord],
) -> Vec<Problem> {
    let files: HashSet<&str> = records.iter().map(|r| r.catalog_url.as_str()).collect();
    let mut problems: Vec<Problem> = records
        .iter()
        .flat_map(|r| r.problems.iter().cloned())
        .collect();
    problems.extend(
        report
            .iter()
            .flat_map(|r| &r.problems)
            .filter(|p| !files.contains(p.url.as_str()))
            .cloned(),
    );
    problems
}

/// The store could not list a provider's repositories (503).
#[derive(Debug, thiserror::Error)]
#[error("the repository records cannot be read: {0}")]
struct RecordsUnavailable(#[source] StoreError);

impl HttpError for RecordsUnavailable {
    fn status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// The repositories that passed the filters in the last complete listing,
/// with what their last read found: `?catalog=missing` (no catalog file),
/// `present`, `unknown` (not read yet, or the read failed), or all. Costs
/// no Bitbucket request.
#[utoipa::path(get, path = "/api/catalog/providers/{id}/repositories",
    summary = "The provider's repositories as the last complete listing had them and their last read found them",
    params(("id" = String, Path), ("catalog" = inline(Option<CatalogFilter>), Query, description = "Only these (unknown: not read yet or unreadable)")),
    responses((status = 200, description = "Repositories", body = Vec<Repository>), (status = 400, description = ERROR, body = ErrorBody), (status = 401, description = ERROR, body = ErrorBody), (status = 404, description = ERROR, body = ErrorBody), (status = 503, description = ERROR, body = ErrorBody)))]
pub(super) async fn repositories(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &["catalog"])?;
    let wanted: Option<&[CatalogFile]> =
        match params.one("catalog") {
            None => None,
            Some("present") => Some(&[CatalogFile::Present]),
            Some("missing") => Some(&[CatalogFile::Missing]),
            Some("unknown") => Some(&[CatalogFile::Unknown, CatalogFile::Unreadable]),
            Some(other) => return Err(req.input(format!(
                "Invalid catalog parameter \"{other}\", expected one of: missing, present, unknown"
            ))),
        };
    let runner = runner(&state, &req, &id)?;
    if !runner.source().lists_repositories() {
        return Err(req.not_found(format!(
            "'{id}' is a location, not a provider: it has no repositories"
        )));
    }
    let all = runner.repositories().await.map_err(RecordsUnavailable)?;
    let selected: Vec<_> = all
        .into_iter()
        .filter(|r| wanted.is_none_or(|w| w.contains(&r.catalog)))
        .collect();
    Ok(Json(selected).into_response())
}

/// Starts a run now (202); if one is running it serves the request.
/// `?force=true` applies the run even past the deletion guard.
#[utoipa::path(post, path = "/api/catalog/providers/{id}/refresh",
    summary = "Start a run now (coalesces with a running one); force=true applies it past the deletion guard",
    params(("id" = String, Path), ("force" = Option<bool>, Query, description = "Apply even if it would remove more than deletionThreshold; needs backend.auth.externalAccess")),
    responses((status = 202, description = "Accepted", body = Refreshing), (status = 401, description = ERROR, body = ErrorBody), (status = 403, description = ERROR, body = ErrorBody), (status = 404, description = ERROR, body = ErrorBody)))]
pub(super) async fn refresh(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    req: Req,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &["force"])?;
    let force = match params.one("force") {
        None | Some("false") => false,
        Some("true" | "") => true,
        Some(other) => {
            return Err(req.input(format!(
                "Invalid force parameter \"{other}\", expected true or false"
            )));
        }
    };
    if force && (state.access.open || !state.access.protected) {
        return Err(req.error(
            StatusCode::FORBIDDEN,
            "NotAllowedError",
            "force=true applies removals past the deletion guard; it needs a token: set backend.auth.externalAccess",
        ));
    }
    if state.scheduler.runner(&id).is_none() && state.scheduler.left().is_held(&id) {
        return confirm_left(&state, &req, id, force).await;
    }
    let runner = runner(&state, &req, &id)?;
    // Paced, not coalesced here: a refresh during a run is served by it
    // (alreadyRunning) and a later one must start a run.
    if !force {
        state.pace.pace(&req, &headers)?;
    }
    let outcome = match runner.refresh(force) {
        RefreshOutcome::Started => "started",
        RefreshOutcome::AlreadyRunning => "alreadyRunning",
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"provider": id, "refresh": outcome, "force": force})),
    )
        .into_response())
}

/// A provider that left the config, its removal held: `force=true`
/// confirms the removal (202 with the count), else 409 says how.
async fn confirm_left(
    state: &ApiState,
    req: &Req,
    id: String,
    force: bool,
) -> Result<Response, ApiError> {
    if !force {
        return Err(req.error(
            StatusCode::CONFLICT,
            "ConflictError",
            format!("provider '{id}' is no longer configured and the deletion guard holds the removal of its entities; POST /api/catalog/providers/{id}/refresh?force=true to remove them, or put it back in the config"),
        ));
    }
    let removed = state.scheduler.left().confirm(&id).await.unwrap_or(0);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"provider": id, "refresh": "removed", "force": true, "removed": removed})),
    )
        .into_response())
}
