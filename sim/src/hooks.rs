//! Webhooks as Bitbucket keeps them: Data Center's project and repository
//! webhooks (`/rest/api/1.0/projects/{key}[/repos/{slug}]/webhooks`, with
//! `/application-properties` telling the version) and Cloud's workspace
//! hooks (`/2.0/workspaces/{ws}/hooks`). `/__sim/push` delivers its events
//! to the registered webhooks that cover the repository.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, put};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::respond::{ApiError, json};
use crate::state::{AppState, HookScope, RegisteredHook};

pub(crate) fn server_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/application-properties", get(application_properties))
        .route(
            "/projects/{key}/webhooks",
            get(list_project).post(create_project),
        )
        .route("/projects/{key}/webhooks/{id}", put(update_project))
        .route(
            "/projects/{key}/repos/{slug}/webhooks",
            get(list_repository).post(create_repository),
        )
        .route(
            "/projects/{key}/repos/{slug}/webhooks/{id}",
            put(update_repository),
        )
}

pub(crate) fn cloud_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/workspaces/{ws}/hooks",
            get(list_workspace).post(create_workspace),
        )
        .route("/workspaces/{ws}/hooks/{uid}", put(update_workspace))
}

async fn application_properties(State(state): State<Arc<AppState>>) -> Response {
    json(
        StatusCode::OK,
        json!({"version": state.config.server.version, "buildNumber": "8019000", "displayName": "Bitbucket"}),
    )
}

/// Data Center's body: `{name, url, events, active, configuration: {secret}}`.
#[derive(Deserialize)]
struct ServerBody {
    name: Option<String>,
    url: String,
    #[serde(default)]
    events: Vec<String>,
    active: Option<bool>,
    configuration: Option<ServerConfiguration>,
}

#[derive(Deserialize)]
struct ServerConfiguration {
    secret: Option<String>,
}

/// Cloud's body: `{description, url, active, secret, events}`.
#[derive(Deserialize)]
struct CloudBody {
    description: Option<String>,
    url: String,
    #[serde(default)]
    events: Vec<String>,
    active: Option<bool>,
    secret: Option<String>,
}

fn bad_body(err: serde_json::Error) -> ApiError {
    ApiError::server(
        StatusCode::BAD_REQUEST,
        format!("invalid webhook: {err}"),
        None,
    )
}

fn server_scope(state: &AppState, key: &str, slug: Option<&str>) -> Result<HookScope, ApiError> {
    let dataset = state.dataset();
    let exists = match slug {
        Some(slug) => dataset.server_repo(key, slug).is_some(),
        None => dataset.server_project(key).is_some(),
    };
    if !exists {
        return Err(ApiError::server(
            StatusCode::NOT_FOUND,
            format!(
                "{key}{} does not exist.",
                slug.map(|s| format!("/{s}")).unwrap_or_default()
            ),
            None,
        ));
    }
    let key = key.to_uppercase();
    Ok(match slug {
        Some(slug) => HookScope::Repository(key, slug.to_lowercase()),
        None => HookScope::Project(key),
    })
}

fn list_server(state: &AppState, scope: &HookScope) -> Response {
    let values: Vec<Value> = state
        .hooks
        .lock()
        .iter()
        .filter(|h| h.scope == *scope)
        .map(RegisteredHook::server_json)
        .collect();
    json(
        StatusCode::OK,
        json!({"size": values.len(), "limit": 25, "isLastPage": true, "start": 0, "values": values}),
    )
}

fn save_server(
    state: &AppState,
    scope: HookScope,
    id: Option<u64>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let body: ServerBody = serde_json::from_slice(body).map_err(bad_body)?;
    let hook = RegisteredHook {
        scope,
        id: 0,
        name: body.name.unwrap_or_default(),
        url: body.url,
        events: body.events,
        active: body.active.unwrap_or(true),
        secret: body.configuration.and_then(|c| c.secret),
    };
    let saved = state
        .save_hook(hook, id)
        .ok_or_else(|| ApiError::server(StatusCode::NOT_FOUND, "No webhook with that id.", None))?;
    let status = if id.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json(status, saved.server_json()))
}

async fn list_project(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let scope = server_scope(&state, &key, None)?;
    Ok(list_server(&state, &scope))
}

async fn create_project(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let scope = server_scope(&state, &key, None)?;
    save_server(&state, scope, None, &body)
}

async fn update_project(
    State(state): State<Arc<AppState>>,
    Path((key, id)): Path<(String, u64)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let scope = server_scope(&state, &key, None)?;
    save_server(&state, scope, Some(id), &body)
}

async fn list_repository(
    State(state): State<Arc<AppState>>,
    Path((key, slug)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let scope = server_scope(&state, &key, Some(&slug))?;
    Ok(list_server(&state, &scope))
}

async fn create_repository(
    State(state): State<Arc<AppState>>,
    Path((key, slug)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let scope = server_scope(&state, &key, Some(&slug))?;
    save_server(&state, scope, None, &body)
}

async fn update_repository(
    State(state): State<Arc<AppState>>,
    Path((key, slug, id)): Path<(String, String, u64)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let scope = server_scope(&state, &key, Some(&slug))?;
    save_server(&state, scope, Some(id), &body)
}

fn workspace_scope(state: &AppState, ws: &str) -> Result<HookScope, ApiError> {
    let dataset = state.dataset();
    if !dataset.is_cloud_workspace(ws) {
        return Err(ApiError::cloud(
            StatusCode::NOT_FOUND,
            format!("No workspace with identifier '{ws}'."),
        ));
    }
    Ok(HookScope::Workspace(dataset.cloud.slug.clone()))
}

async fn list_workspace(
    State(state): State<Arc<AppState>>,
    Path(ws): Path<String>,
) -> Result<Response, ApiError> {
    let scope = workspace_scope(&state, &ws)?;
    let values: Vec<Value> = state
        .hooks
        .lock()
        .iter()
        .filter(|h| h.scope == scope)
        .map(RegisteredHook::cloud_json)
        .collect();
    Ok(json(
        StatusCode::OK,
        json!({"pagelen": 10, "size": values.len(), "page": 1, "values": values}),
    ))
}

async fn create_workspace(
    State(state): State<Arc<AppState>>,
    Path(ws): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    save_cloud(&state, &ws, None, &body)
}

async fn update_workspace(
    State(state): State<Arc<AppState>>,
    Path((ws, uid)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = uid
        .trim_matches(['{', '}'])
        .rsplit('-')
        .next()
        .and_then(|tail| tail.parse::<u64>().ok())
        .ok_or_else(|| ApiError::cloud(StatusCode::NOT_FOUND, "No such webhook"))?;
    save_cloud(&state, &ws, Some(id), &body)
}

fn save_cloud(
    state: &AppState,
    ws: &str,
    id: Option<u64>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let scope = workspace_scope(state, ws)?;
    let body: CloudBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::cloud(StatusCode::BAD_REQUEST, format!("invalid webhook: {e}")))?;
    let hook = RegisteredHook {
        scope,
        id: 0,
        name: body.description.unwrap_or_default(),
        url: body.url,
        events: body.events,
        active: body.active.unwrap_or(true),
        secret: body.secret,
    };
    let saved = state
        .save_hook(hook, id)
        .ok_or_else(|| ApiError::cloud(StatusCode::NOT_FOUND, "No such webhook"))?;
    let status = if id.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json(status, saved.cloud_json()))
}

impl AppState {
    /// Creates (`id: None`) or replaces a webhook; `None` when `id` is
    /// unknown in that scope.
    fn save_hook(&self, mut hook: RegisteredHook, id: Option<u64>) -> Option<RegisteredHook> {
        let mut hooks = self.hooks.lock();
        match id {
            Some(id) => {
                let existing = hooks
                    .iter_mut()
                    .find(|h| h.id == id && h.scope == hook.scope)?;
                hook.id = id;
                *existing = hook.clone();
            }
            None => {
                hook.id = hooks.iter().map(|h| h.id).max().unwrap_or(0) + 1;
                hooks.push(hook.clone());
            }
        }
        Some(hook)
    }
}
