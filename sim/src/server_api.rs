//! Bitbucket Server / Data Center REST 1.0: projects, repositories, raw
//! files and default branches, paged as Bitbucket pages.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use crate::dataset::{Dataset, Repo, ServerProject};
use crate::history::Revision;
use crate::respond::{ApiError, Params, json, text};
use crate::state::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/projects", get(projects))
        .route("/projects/{key}/repos", get(repos))
        .route("/projects/{key}/repos/{slug}/raw/{*path}", get(raw))
        .route(
            "/projects/{key}/repos/{slug}/default-branch",
            get(default_branch),
        )
        .route(
            "/projects/{key}/repos/{slug}/branches/default",
            get(default_branch),
        )
}

const NO_SUCH_PROJECT: &str = "com.atlassian.bitbucket.project.NoSuchProjectException";
const NO_SUCH_REPO: &str = "com.atlassian.bitbucket.repository.NoSuchRepositoryException";
pub(crate) const NO_SUCH_PATH: &str = "com.atlassian.bitbucket.content.NoSuchPathException";
pub(crate) const NO_SUCH_COMMIT: &str = "com.atlassian.bitbucket.commit.NoSuchCommitException";

/// `start` and `limit` as Bitbucket reads them: absent `limit` is the
/// default, an over-large one is clamped to the maximum (and reported back),
/// anything non-numeric is a 400.
pub(crate) fn window(state: &AppState, params: &Params) -> Result<(usize, usize), ApiError> {
    let number = |name: &str| -> Result<Option<usize>, ApiError> {
        match params.get(name) {
            None | Some("") => Ok(None),
            Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
                ApiError::server(
                    StatusCode::BAD_REQUEST,
                    format!("Invalid value for '{name}': '{v}' is not a non-negative integer."),
                    None,
                )
            }),
        }
    };
    let opts = &state.config.server;
    let start = number("start")?.unwrap_or(0);
    let limit = match number("limit")? {
        None | Some(0) => opts.default_page_size,
        Some(n) => n,
    }
    .min(opts.max_page_size);
    Ok((start, limit))
}

/// A Bitbucket page over `total` items of which `values` are those from `start`.
pub(crate) fn page(values: Vec<Value>, start: usize, limit: usize, total: usize) -> Value {
    let size = values.len();
    let is_last = start.saturating_add(size) >= total;
    let mut body = json!({
        "size": size,
        "limit": limit,
        "isLastPage": is_last,
        "values": values,
        "start": start,
    });
    if !is_last {
        body["nextPageStart"] = json!(start + size);
    }
    body
}

fn project_json(base: &str, p: &ServerProject) -> Value {
    let href = if p.personal {
        format!(
            "{base}/users/{}",
            p.key.trim_start_matches('~').to_lowercase()
        )
    } else {
        format!("{base}/projects/{}", p.key)
    };
    json!({
        "key": p.key,
        "id": p.id,
        "name": p.name,
        "description": format!("Generated project {}", p.key),
        "public": false,
        "type": if p.personal { "PERSONAL" } else { "NORMAL" },
        "links": {"self": [{"href": href}]},
    })
}

pub(crate) fn repo_json(base: &str, p: &ServerProject, r: &Repo) -> Value {
    // Bitbucket's web URLs for personal repos live under /users/.
    let web = if p.personal {
        format!(
            "{base}/users/{}/repos/{}",
            p.key.trim_start_matches('~').to_lowercase(),
            r.slug
        )
    } else {
        format!("{base}/projects/{}/repos/{}", p.key, r.slug)
    };
    json!({
        "slug": r.slug,
        "id": r.id,
        "name": r.name,
        "hierarchyId": r.commit.get(..20).unwrap_or(&r.commit),
        "scmId": "git",
        "state": "AVAILABLE",
        "statusMessage": "Available",
        "forkable": true,
        "archived": r.archived,
        "public": false,
        "defaultBranch": r.default_branch,
        "project": project_json(base, p),
        "links": {
            "clone": [{"href": format!("{base}/scm/{}/{}.git", p.key.to_lowercase(), r.slug), "name": "http"}],
            "self": [{"href": format!("{web}/browse")}],
        },
    })
}

/// A repository as a listing page shows it: without `defaultBranch` where
/// the simulated version leaves it out of listings.
pub(crate) fn listed_repo_json(state: &AppState, p: &ServerProject, r: &Repo) -> Value {
    let mut value = repo_json(&state.base_url, p, r);
    if !state.config.server.listing_default_branch
        && let Some(fields) = value.as_object_mut()
    {
        fields.remove("defaultBranch");
    }
    value
}

async fn projects(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let (start, limit) = window(&state, &params)?;
    let dataset = state.dataset();
    let listed = dataset.listed_server_projects(state.config.server.list_personal_projects);
    let values = listed
        .iter()
        .skip(start)
        .take(limit)
        .map(|p| project_json(&state.base_url, p))
        .collect();
    Ok(json(
        StatusCode::OK,
        page(values, start, limit, listed.len()),
    ))
}

fn no_project(key: &str) -> ApiError {
    ApiError::server(
        StatusCode::NOT_FOUND,
        format!("Project {key} does not exist."),
        Some(NO_SUCH_PROJECT),
    )
}

/// Undecodable path segments are answered like a missing resource.
pub(crate) fn bad_path(rejection: PathRejection) -> ApiError {
    ApiError::server(StatusCode::NOT_FOUND, rejection.body_text(), None)
}

async fn repos(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Path(key) = path.map_err(bad_path)?;
    let dataset = state.dataset();
    let project = dataset
        .server_project(&key)
        .ok_or_else(|| no_project(&key))?;
    let params = Params::parse(query.as_deref());
    let (start, limit) = window(&state, &params)?;
    let values = project
        .repos
        .iter()
        .skip(start)
        .take(limit)
        .map(|r| listed_repo_json(&state, project, r))
        .collect();
    Ok(json(
        StatusCode::OK,
        page(values, start, limit, project.repos.len()),
    ))
}

pub(crate) fn find_repo<'a>(
    dataset: &'a Dataset,
    key: &str,
    slug: &str,
) -> Result<(&'a ServerProject, &'a Repo), ApiError> {
    let project = dataset.server_project(key).ok_or_else(|| no_project(key))?;
    let repo = dataset.server_repo(key, slug).ok_or_else(|| {
        ApiError::server(
            StatusCode::NOT_FOUND,
            format!("Repository {key}/{slug} does not exist."),
            Some(NO_SUCH_REPO),
        )
    })?;
    Ok((project, repo))
}

/// Data Center's answer for a commit it does not know.
pub(crate) fn no_commit(repo: &Repo, at: &str) -> ApiError {
    ApiError::server(
        StatusCode::NOT_FOUND,
        format!(
            "Commit '{at}' does not exist in repository '{}'.",
            repo.slug
        ),
        Some(NO_SUCH_COMMIT),
    )
}

async fn raw(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Path((key, slug, file)) = path.map_err(bad_path)?;
    let dataset = state.dataset();
    let (_, repo) = find_repo(&dataset, &key, &slug)?;
    let params = Params::parse(query.as_deref());
    let at = params.get("at").filter(|a| !a.is_empty());
    // A pull request's source commit: its files over the head's.
    if let Some(found) = at.and_then(|at| state.pull_request_file(repo, at, &file)) {
        return found.map(text).ok_or_else(|| {
            ApiError::server(
                StatusCode::NOT_FOUND,
                format!(
                    "The path \"{file}\" does not exist at revision \"{}\"",
                    at.unwrap_or_default()
                ),
                Some(NO_SUCH_PATH),
            )
        });
    }
    let revision = match at {
        Some(at) => repo.resolve(at).ok_or_else(|| no_commit(repo, at))?,
        None => Revision::Head,
    };
    match repo.files_at(revision).get(file.trim_start_matches('/')) {
        Some(content) => Ok(text(content.clone())),
        None => {
            let revision = at.map_or_else(
                || format!("refs/heads/{}", repo.default_branch),
                str::to_owned,
            );
            Err(ApiError::server(
                StatusCode::NOT_FOUND,
                format!("The path \"{file}\" does not exist at revision \"{revision}\""),
                Some(NO_SUCH_PATH),
            ))
        }
    }
}

async fn default_branch(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((key, slug)) = path.map_err(bad_path)?;
    let dataset = state.dataset();
    let (_, repo) = find_repo(&dataset, &key, &slug)?;
    Ok(json(
        StatusCode::OK,
        json!({
            "id": format!("refs/heads/{}", repo.default_branch),
            "displayId": repo.default_branch,
            "type": "BRANCH",
            "latestCommit": repo.commit,
            "latestChangeset": repo.commit,
            "isDefault": true,
        }),
    ))
}
