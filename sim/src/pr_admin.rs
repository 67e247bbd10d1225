//! `/__sim/pull-requests` (open, update, merge, decline a pull request and
//! send its events) and `/__sim/insights` (what was posted on commits, and
//! switching Code Insights off and on).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::dataset::RepoRef;
use crate::push::WebhookEvent;
use crate::respond::json;
use crate::state::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/__sim/pull-requests", post(pull_request))
        .route("/__sim/insights", get(insights).put(set_insights))
}

/// `POST /__sim/pull-requests`: `{"action": "open"|"update"|"merge"|"decline",
/// "repository": {"server": {"project", "slug"}} | {"cloud": {"slug"}},
/// "id"? (all but open), "sourceBranch"?, "title"?, "files"?: {path: content
/// or null (deleted)}, "fork"?: a repository as "repository" (open only: the
/// source branch is there; one not in the data set cannot be read),
/// "webhook"?: {"url", "secret"?}}`. Sends the events
/// (a merge: the push, then the merge) to `webhook.url`, else to every
/// registered webhook that covers the repository and takes them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullRequestAction {
    action: String,
    repository: RepoRef,
    id: Option<u64>,
    source_branch: Option<String>,
    title: Option<String>,
    fork: Option<RepoRef>,
    #[serde(default)]
    files: serde_json::Map<String, serde_json::Value>,
    webhook: Option<Target>,
}

#[derive(Deserialize)]
struct Target {
    url: String,
    secret: Option<String>,
}

async fn pull_request(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: PullRequestAction = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(err) => {
            return json(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("invalid pull request JSON: {err}")}),
            );
        }
    };
    let files = request
        .files
        .iter()
        .map(|(path, content)| (path.clone(), content.as_str().map(str::to_owned)))
        .collect();
    let repo = &request.repository;
    let id = request.id.unwrap_or_default();
    let made = match request.action.as_str() {
        "open" => state
            .open_fork_pull_request(
                repo,
                request.fork.clone(),
                request.source_branch.as_deref().unwrap_or("feature"),
                request.title.as_deref().unwrap_or("A change"),
                files,
            )
            .map(|(id, event)| (id, vec![event])),
        "update" => state
            .update_pull_request(repo, id, files)
            .map(|e| (id, vec![e])),
        "merge" => state
            .merge_pull_request(repo, id)
            .map(|(push, merged)| (id, vec![push, merged])),
        "decline" => state.decline_pull_request(repo, id).map(|e| (id, vec![e])),
        other => {
            return json(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("unknown action {other:?}: open, update, merge or decline")}),
            );
        }
    };
    let (id, events) = match made {
        Ok(made) => made,
        Err(err) => return json(StatusCode::BAD_REQUEST, json!({"error": err.to_string()})),
    };
    let mut delivered = Vec::new();
    for event in &events {
        match deliver(&state, repo, event, request.webhook.as_ref()).await {
            Ok(statuses) => delivered
                .push(json!({"event": event.key, "commit": event.commit, "delivered": statuses})),
            Err(err) => return json(StatusCode::BAD_GATEWAY, json!({"error": err})),
        }
    }
    json(StatusCode::OK, json!({"id": id, "events": delivered}))
}

async fn deliver(
    state: &AppState,
    repo: &RepoRef,
    event: &WebhookEvent,
    target: Option<&Target>,
) -> Result<Vec<u16>, String> {
    let targets: Vec<(String, Option<String>)> = match target {
        Some(t) => vec![(
            t.url.clone(),
            t.secret
                .clone()
                .or_else(|| state.config.webhook_secret.clone()),
        )],
        None => state
            .hooks
            .lock()
            .iter()
            .filter(|h| h.covers(repo, event.key))
            .map(|h| (h.url.clone(), h.secret.clone()))
            .collect(),
    };
    let mut statuses = Vec::new();
    for (url, secret) in targets {
        statuses.push(
            event
                .deliver(&url, secret.as_deref())
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(statuses)
}

/// `GET /__sim/insights`: every report, annotations request and build
/// status posted, in order, and whether Insights is on.
async fn insights(State(state): State<Arc<AppState>>) -> Response {
    json(
        StatusCode::OK,
        json!({"available": state.insights.load(Ordering::Relaxed), "posted": *state.posted.lock()}),
    )
}

/// `PUT /__sim/insights` `{"available": false}`: reports answer 404.
async fn set_insights(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    #[derive(Deserialize)]
    struct Available {
        available: bool,
    }
    match serde_json::from_slice::<Available>(&body) {
        Ok(a) => {
            state.insights.store(a.available, Ordering::Relaxed);
            json(StatusCode::OK, json!({"available": a.available}))
        }
        Err(err) => json(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("expected {{\"available\": bool}}: {err}")}),
        ),
    }
}
