//! Data Center REST 1.0 over a repository's tree and history: the paged
//! file listing (`files`) and the changed paths between two commits
//! (`changes`, `compare/changes`).

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use crate::dataset::Repo;
use crate::history::{ChangeType, Revision};
use crate::respond::{ApiError, Params, json};
use crate::server_api::{NO_SUCH_PATH, bad_path, find_repo, no_commit, page, window};
use crate::state::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/projects/{key}/repos/{slug}/files", get(files_root))
        .route("/projects/{key}/repos/{slug}/files/{*path}", get(files))
        .route("/projects/{key}/repos/{slug}/changes", get(changes))
        .route("/projects/{key}/repos/{slug}/compare/changes", get(compare))
}

/// The commit `at` names, the head without one.
fn revision(repo: &Repo, at: Option<&str>) -> Result<Revision, ApiError> {
    match at.map(str::trim).filter(|a| !a.is_empty()) {
        Some(at) => repo.resolve(at).ok_or_else(|| no_commit(repo, at)),
        None => Ok(Revision::Head),
    }
}

async fn files_root(
    state: State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: RawQuery,
) -> Result<Response, ApiError> {
    let Path((key, slug)) = path.map_err(bad_path)?;
    list_files(state, key, slug, String::new(), query)
}

async fn files(
    state: State<Arc<AppState>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    query: RawQuery,
) -> Result<Response, ApiError> {
    let Path((key, slug, dir)) = path.map_err(bad_path)?;
    list_files(state, key, slug, dir, query)
}

/// `GET …/files[/{dir}]?at=&start=&limit=`: every file below `dir` at the
/// commit, as paths relative to `dir`, paged.
fn list_files(
    State(state): State<Arc<AppState>>,
    key: String,
    slug: String,
    dir: String,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let dataset = state.dataset();
    let (_, repo) = find_repo(&dataset, &key, &slug)?;
    let params = Params::parse(query.as_deref());
    let (start, limit) = window(&state, &params)?;
    // A pull request's source commit: its files over the head's.
    let at_pull_request = params
        .get("at")
        .and_then(|at| state.pull_request_tree(repo, at.trim()));
    let (tree, hash) = match at_pull_request {
        Some(files) => (Cow::Owned(files), params.get("at").unwrap_or_default()),
        None => {
            let rev = revision(repo, params.get("at"))?;
            (repo.files_at(rev), repo.hash_of(rev))
        }
    };
    let dir = dir.trim_matches('/');
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let paths: Vec<&str> = tree
        .keys()
        .filter_map(|p| p.strip_prefix(prefix.as_str()))
        .collect();
    if paths.is_empty() && !dir.is_empty() {
        return Err(ApiError::server(
            StatusCode::NOT_FOUND,
            format!("The path \"{dir}\" does not exist at revision \"{hash}\""),
            Some(NO_SUCH_PATH),
        ));
    }
    let values = paths
        .iter()
        .skip(start)
        .take(limit)
        .map(|p| json!(p))
        .collect();
    Ok(json(
        StatusCode::OK,
        page(values, start, limit, paths.len()),
    ))
}

/// `GET …/changes?since=<old>&until=<new>`: what `until` changed since
/// `since` (default: `until`'s parent; `until` defaults to the head).
async fn changes(
    state: State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let (new, old) = (params.get("until"), params.get("since"));
    changed_paths(state, path, &params, new, old)
}

/// `GET …/compare/changes?from=<new>&to=<old>`: what `from` has that `to` lacks.
async fn compare(
    state: State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let (new, old) = (params.get("from"), params.get("to"));
    changed_paths(state, path, &params, new, old)
}

fn changed_paths(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    params: &Params,
    new: Option<&str>,
    old: Option<&str>,
) -> Result<Response, ApiError> {
    let Path((key, slug)) = path.map_err(bad_path)?;
    let dataset = state.dataset();
    let (_, repo) = find_repo(&dataset, &key, &slug)?;
    let (start, limit) = window(&state, params)?;
    let new = revision(repo, new)?;
    // Without `since`, the parent; the oldest commit kept has none we know,
    // so it compares with nothing (every file added), as a root commit does.
    let old = match old.map(str::trim).filter(|o| !o.is_empty()) {
        Some(at) => Some(repo.resolve(at).ok_or_else(|| no_commit(repo, at))?),
        None => repo.parent(new),
    };
    let all = repo.changes(old, new);
    let values = all
        .iter()
        .skip(start)
        .take(limit)
        .map(|c| {
            let kind = match c.change {
                ChangeType::Add => "ADD",
                ChangeType::Modify => "MODIFY",
                ChangeType::Delete => "DELETE",
            };
            json!({
                "path": path_json(&c.path),
                "executable": false,
                "percentUnchanged": -1,
                "type": kind,
                "nodeType": "FILE",
                "properties": {"gitChangeType": kind},
            })
        })
        .collect();
    let mut body = page(values, start, limit, all.len());
    body["fromHash"] = json!(old.map(|o| repo.hash_of(o)));
    body["toHash"] = json!(repo.hash_of(new));
    Ok(json(StatusCode::OK, body))
}

/// Data Center's path object.
fn path_json(path: &str) -> Value {
    let components: Vec<&str> = path.split('/').collect();
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    let mut value = json!({
        "components": components,
        "parent": parent,
        "name": name,
        "toString": path,
    });
    if let Some((_, extension)) = name.rsplit_once('.').filter(|(stem, _)| !stem.is_empty()) {
        value["extension"] = json!(extension);
    }
    value
}
