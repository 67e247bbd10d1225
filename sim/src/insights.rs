//! The pull-request endpoints a check uses: the paths a pull request
//! changes (Data Center `pull-requests/{id}/changes`, Cloud
//! `pullrequests/{id}/diffstat`), and where results are posted (Code
//! Insights reports and annotations, build statuses), each post recorded
//! for `GET /__sim/insights`; deleting a Data Center report's annotations
//! or a Cloud report (with its annotations) drops them from that record,
//! so it holds what is still there. With Insights switched off
//! (`Simulator::set_insights(false)`) reports answer 404, as on a
//! Bitbucket without it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::dataset::RepoRef;
use crate::pr_state::{MAX_KEPT, PostedCheck};
use crate::pull_requests::change_json;
use crate::respond::json;
use crate::state::AppState;

/// Under `/rest/api/1.0`.
pub(crate) fn server_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/projects/{key}/repos/{slug}/pull-requests/{id}/changes",
            get(server_changes),
        )
        .route("/projects/{key}/repos/{slug}", get(server_repository))
}

/// At the root: Data Center's other REST APIs.
pub(crate) fn rest_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/rest/insights/1.0/projects/{key}/repos/{slug}/commits/{commit}/reports/{report}",
            put(report),
        )
        .route(
            "/rest/insights/1.0/projects/{key}/repos/{slug}/commits/{commit}/reports/{report}/annotations",
            post(annotations).delete(server_delete_annotations),
        )
        .route(
            "/rest/build-status/1.0/commits/{commit}",
            post(server_build_status),
        )
}

/// Under `/2.0`.
pub(crate) fn cloud_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/repositories/{ws}/{slug}", get(cloud_repository))
        .route(
            "/repositories/{ws}/{slug}/pullrequests/{id}/diffstat",
            get(cloud_diffstat),
        )
        .route(
            "/repositories/{ws}/{slug}/commit/{commit}/reports/{report}",
            put(report).delete(cloud_delete_report),
        )
        .route(
            "/repositories/{ws}/{slug}/commit/{commit}/reports/{report}/annotations",
            post(annotations),
        )
        .route(
            "/repositories/{ws}/{slug}/commit/{commit}/statuses/build",
            post(cloud_build_status),
        )
}

fn not_found(message: &str) -> Response {
    json(
        StatusCode::NOT_FOUND,
        json!({"errors": [{"message": message}], "error": {"message": message}}),
    )
}

fn changes(state: &AppState, repo: RepoRef, id: u64) -> Response {
    let Some(paths) = state.pull_request_paths(&repo, id) else {
        return not_found(&format!("Pull request {id} does not exist"));
    };
    let values: Vec<Value> = paths.iter().map(|p| change_json(&repo, p)).collect();
    match repo {
        RepoRef::Server { .. } => json(
            StatusCode::OK,
            json!({"values": values, "size": values.len(), "start": 0, "limit": 1000, "isLastPage": true}),
        ),
        RepoRef::Cloud { .. } => json(
            StatusCode::OK,
            json!({"values": values, "pagelen": 500, "size": values.len(), "page": 1}),
        ),
    }
}

async fn server_changes(
    State(state): State<Arc<AppState>>,
    Path((project, slug, id)): Path<(String, String, u64)>,
) -> Response {
    changes(&state, RepoRef::Server { project, slug }, id)
}

async fn cloud_diffstat(
    State(state): State<Arc<AppState>>,
    Path((_ws, slug, id)): Path<(String, String, u64)>,
) -> Response {
    changes(&state, RepoRef::Cloud { slug }, id)
}

/// One repository (what a check asks of a pull request's fork): 404 for
/// one not in the data set, as for a repository the account cannot see.
fn repository(state: &AppState, repo: &RepoRef) -> Response {
    match state.repo_json(repo) {
        Ok(body) => json(StatusCode::OK, body),
        Err(_) => not_found("Repository does not exist or you do not have permission to see it"),
    }
}

async fn server_repository(
    State(state): State<Arc<AppState>>,
    Path((project, slug)): Path<(String, String)>,
) -> Response {
    repository(&state, &RepoRef::Server { project, slug })
}

async fn cloud_repository(
    State(state): State<Arc<AppState>>,
    Path((ws, slug)): Path<(String, String)>,
) -> Response {
    if ws != state.dataset().cloud.slug {
        return not_found("Repository does not exist or you do not have permission to see it");
    }
    repository(&state, &RepoRef::Cloud { slug })
}

impl AppState {
    fn record(&self, posted: PostedCheck) {
        let mut kept = self.posted.lock();
        if kept.len() >= MAX_KEPT {
            kept.clear();
        }
        kept.push(posted);
    }
}

/// Drops what was posted of report `key` on `commit` of `repository`: its
/// annotations, and the report too when `report` is set.
fn deleted(state: &AppState, repository: &str, commit: &str, key: &str, report: bool) -> Response {
    if !state.insights.load(Ordering::Relaxed) {
        return not_found("Code Insights is not available");
    }
    state.posted.lock().retain(|p| {
        let same = p.repository == repository && p.commit == commit && p.key == key;
        !(same && (p.kind == "annotations" || (report && p.kind == "report")))
    });
    json(StatusCode::NO_CONTENT, Value::Null)
}

async fn server_delete_annotations(
    State(state): State<Arc<AppState>>,
    Path((key, slug, commit, report)): Path<(String, String, String, String)>,
) -> Response {
    deleted(&state, &format!("{key}/{slug}"), &commit, &report, false)
}

async fn cloud_delete_report(
    State(state): State<Arc<AppState>>,
    Path((ws, slug, commit, report)): Path<(String, String, String, String)>,
) -> Response {
    deleted(&state, &format!("{ws}/{slug}"), &commit, &report, true)
}

fn posted(
    state: &AppState,
    kind: &str,
    repository: String,
    commit: String,
    key: String,
    body: &Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return json(
            StatusCode::BAD_REQUEST,
            json!({"errors": [{"message": "the body is not JSON"}]}),
        );
    };
    if kind == "report" && !state.insights.load(Ordering::Relaxed) {
        return not_found("Code Insights is not available");
    }
    let answer = body.clone();
    state.record(PostedCheck {
        kind: kind.to_owned(),
        repository,
        commit,
        key,
        body,
    });
    match kind {
        "report" => json(StatusCode::OK, answer),
        _ => json(StatusCode::NO_CONTENT, Value::Null),
    }
}

/// A report on either flavour: the path is (project key or workspace,
/// slug, commit, report key) on both.
async fn report(
    State(state): State<Arc<AppState>>,
    Path((owner, slug, commit, report)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Response {
    let repository = format!("{owner}/{slug}");
    posted(&state, "report", repository, commit, report, &body)
}

/// A report's annotations, on either flavour (the path as for [`report`]).
async fn annotations(
    State(state): State<Arc<AppState>>,
    Path((owner, slug, commit, report)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Response {
    let repository = format!("{owner}/{slug}");
    posted(&state, "annotations", repository, commit, report, &body)
}

async fn server_build_status(
    State(state): State<Arc<AppState>>,
    Path(commit): Path<String>,
    body: Bytes,
) -> Response {
    posted(
        &state,
        "buildStatus",
        String::new(),
        commit,
        String::new(),
        &body,
    )
}

async fn cloud_build_status(
    State(state): State<Arc<AppState>>,
    Path((ws, slug, commit)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    posted(
        &state,
        "buildStatus",
        format!("{ws}/{slug}"),
        commit,
        String::new(),
        &body,
    )
}
