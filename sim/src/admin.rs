//! The simulator's own endpoints under `/__sim`: never delayed, limited,
//! failed, authenticated or counted.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use serde::Deserialize;

use crate::config::Behaviour;
use crate::dataset::RepoRef;
use crate::respond::json;
use crate::state::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/__sim/stats", get(stats))
        .route("/__sim/stats/reset", post(reset_stats))
        .route("/__sim/dataset", get(dataset))
        .route("/__sim/dataset/repos", get(dataset_repos))
        .route("/__sim/behaviour", get(behaviour).put(set_behaviour))
        .route("/__sim/push", post(push))
}

/// `POST /__sim/push`: `{"repository": {"server": {"project", "slug"}} |
/// {"cloud": {"slug"}}, "path"?, "content"?, "delete"?, "branch"?,
/// "renameTo"?, "defaultBranch"?, "webhook"?: {"url", "secret"?}}`. Writes
/// `content` to `path` (default `catalog-info.yaml`) on the default branch,
/// or deletes `path` (`"delete": true`), each a new head commit; or pushes
/// to `branch` without changing anything, or renames; then sends the matching event
/// to `webhook.url`, signed with `webhook.secret` (default: `--webhook-secret`),
/// or, without `webhook`, to every registered webhook that covers the
/// repository and takes the event, signed with its secret.
/// `defaultBranch` changes the default branch (a new head commit, same
/// files) and sends no event.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushRequest {
    repository: RepoRef,
    path: Option<String>,
    content: Option<String>,
    #[serde(default)]
    delete: bool,
    branch: Option<String>,
    rename_to: Option<String>,
    default_branch: Option<String>,
    webhook: Option<WebhookTarget>,
}

#[derive(Deserialize)]
struct WebhookTarget {
    url: String,
    secret: Option<String>,
}

async fn push(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: PushRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(err) => {
            return json(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("invalid push JSON: {err}")}),
            );
        }
    };
    let path = request.path.as_deref().unwrap_or(crate::CATALOG_PATH);
    let event = match (
        &request.content,
        request.delete,
        &request.branch,
        &request.rename_to,
        &request.default_branch,
    ) {
        (Some(content), false, None, None, None) => {
            state.push_file(&request.repository, path, content)
        }
        (None, true, None, None, None) => state.delete_file(&request.repository, path),
        (None, false, Some(branch), None, None) => state.push_branch(&request.repository, branch),
        (None, false, None, Some(slug), None) => state.rename(&request.repository, slug),
        (None, false, None, None, Some(branch)) => {
            return match state.set_default_branch(&request.repository, branch) {
                Ok(commit) => json(
                    StatusCode::OK,
                    json!({"event": null, "commit": commit, "delivered": null}),
                ),
                Err(err) => json(StatusCode::BAD_REQUEST, json!({"error": err.to_string()})),
            };
        }
        _ => {
            return json(
                StatusCode::BAD_REQUEST,
                json!({"error": "give exactly one of content, delete, branch, renameTo or defaultBranch"}),
            );
        }
    };
    let event = match event {
        Ok(event) => event,
        Err(err) => return json(StatusCode::BAD_REQUEST, json!({"error": err.to_string()})),
    };
    // The given target, else every registered webhook covering the repository.
    let targets: Vec<(String, Option<String>)> = match &request.webhook {
        Some(target) => vec![(
            target.url.clone(),
            target
                .secret
                .clone()
                .or_else(|| state.config.webhook_secret.clone()),
        )],
        None => state
            .hooks
            .lock()
            .iter()
            .filter(|h| h.covers(&request.repository, event.key))
            .map(|h| (h.url.clone(), h.secret.clone()))
            .collect(),
    };
    let mut delivered = Vec::new();
    for (url, secret) in targets {
        match event.deliver(&url, secret.as_deref()).await {
            Ok(status) => delivered.push(json!(status)),
            Err(err) => return json(StatusCode::BAD_GATEWAY, json!({"error": err.to_string()})),
        }
    }
    let delivered = match delivered.len() {
        0 => json!(null),
        1 if request.webhook.is_some() => delivered.remove(0),
        _ => json!(delivered),
    };
    json(
        StatusCode::OK,
        json!({"event": event.key, "commit": event.commit, "delivered": delivered}),
    )
}

async fn stats(State(state): State<Arc<AppState>>) -> Response {
    json(StatusCode::OK, json!(state.stats.snapshot()))
}

async fn reset_stats(State(state): State<Arc<AppState>>) -> Response {
    state.stats.reset();
    StatusCode::NO_CONTENT.into_response()
}

async fn dataset(State(state): State<Arc<AppState>>) -> Response {
    let dataset = state.dataset();
    let d = &dataset;
    json(
        StatusCode::OK,
        json!({
            "seed": d.seed,
            "config": d.config,
            "summary": d.summary(),
            "cloudWorkspace": d.cloud.slug,
        }),
    )
}

/// Every repository with its expected entity refs (file contents left out).
async fn dataset_repos(State(state): State<Arc<AppState>>) -> Response {
    let dataset = state.dataset();
    let d = &dataset;
    let server: Vec<_> = d.server_repos().collect();
    json(
        StatusCode::OK,
        json!({"server": server, "cloud": d.cloud.repos}),
    )
}

async fn behaviour(State(state): State<Arc<AppState>>) -> Response {
    json(StatusCode::OK, json!(state.behaviour()))
}

async fn set_behaviour(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let parsed: Behaviour = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(err) => {
            return json(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("invalid behaviour JSON: {err}")}),
            );
        }
    };
    if let Err(err) = parsed.validate() {
        return json(StatusCode::BAD_REQUEST, json!({"error": err.to_string()}));
    }
    state.set_behaviour(parsed);
    json(StatusCode::OK, json!(state.behaviour()))
}
