//! Bitbucket Cloud REST 2.0: workspace projects, repositories, code search
//! and `src`, paged with `page`/`pagelen` and an absolute `next` URL.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use crate::cloud_content;
use crate::dataset::{CloudProject, Dataset, Repo};
use crate::fields::Fields;
use crate::respond::{ApiError, Params, json};
use crate::rng::{Rng, fnv1a, mix};
use crate::search::{SearchQuery, segments};
use crate::state::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/workspaces/{ws}/projects", get(projects))
        .route("/repositories/{ws}", get(repositories))
        .route("/workspaces/{ws}/search/code", get(code_search))
        .merge(cloud_content::routes())
}

pub(crate) struct Paging {
    pub(crate) page: usize,
    pub(crate) pagelen: usize,
}

/// `page` (1-based) and `pagelen` (clamped to the maximum); non-numbers and
/// `page=0` are 400s, as Bitbucket Cloud answers malformed pagination.
fn paging(state: &AppState, params: &Params) -> Result<Paging, ApiError> {
    let opts = &state.config.cloud;
    paging_with(params, opts.default_pagelen, opts.max_pagelen)
}

/// [`paging`] with an endpoint's own default and maximum `pagelen`.
pub(crate) fn paging_with(
    params: &Params,
    default_pagelen: usize,
    max_pagelen: usize,
) -> Result<Paging, ApiError> {
    let number = |name: &str| -> Result<Option<usize>, ApiError> {
        match params.get(name) {
            None | Some("") => Ok(None),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Some(n)),
                _ => Err(ApiError::cloud(
                    StatusCode::BAD_REQUEST,
                    format!("Invalid {name}: {v}"),
                )),
            },
        }
    };
    Ok(Paging {
        page: number("page")?.unwrap_or(1),
        pagelen: number("pagelen")?
            .unwrap_or(default_pagelen)
            .min(max_pagelen),
    })
}

/// The request's own URL with `page` replaced: Cloud's absolute `next`.
fn page_url(state: &AppState, uri: &axum::http::Uri, params: &Params, page: usize) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.pairs().iter().filter(|(k, _)| k != "page") {
        query.append_pair(k, v);
    }
    query.append_pair("page", &page.to_string());
    format!("{}{}?{}", state.base_url, uri.path(), query.finish())
}

/// The page envelope around `values` (already cut by the caller).
pub(crate) fn cloud_page(
    state: &AppState,
    uri: &axum::http::Uri,
    params: &Params,
    paging: &Paging,
    values: Vec<Value>,
    size: usize,
    has_next: bool,
) -> Value {
    let mut body = json!({
        "pagelen": paging.pagelen,
        "size": size,
        "page": paging.page,
        "values": values,
    });
    if has_next {
        body["next"] = json!(page_url(state, uri, params, paging.page + 1));
    }
    if paging.page > 1 {
        body["previous"] = json!(page_url(state, uri, params, paging.page - 1));
    }
    body
}

pub(crate) fn no_workspace(ws: &str) -> ApiError {
    ApiError::cloud(
        StatusCode::NOT_FOUND,
        format!("No workspace with identifier '{ws}'."),
    )
}

pub(crate) fn bad_path(rejection: PathRejection) -> ApiError {
    ApiError::cloud(StatusCode::NOT_FOUND, rejection.body_text())
}

/// The workspace path parameter, checked against the data set.
fn workspace(state: &AppState, path: Result<Path<String>, PathRejection>) -> Result<(), ApiError> {
    let dataset = state.dataset();
    let Path(ws) = path.map_err(bad_path)?;
    if dataset.is_cloud_workspace(&ws) {
        Ok(())
    } else {
        Err(no_workspace(&ws))
    }
}

fn project_json(base: &str, ws: &str, p: &CloudProject) -> Value {
    json!({
        "type": "project",
        "key": p.key,
        "uuid": p.uuid,
        "name": p.name,
        "is_private": true,
        "links": {"html": {"href": format!("{base}/{ws}/workspace/projects/{}", p.key)}},
    })
}

pub(crate) fn repo_json(base: &str, dataset: &Dataset, r: &Repo) -> Value {
    let ws = &dataset.cloud.slug;
    let project = dataset
        .cloud
        .projects
        .iter()
        .find(|p| p.key == r.project_key);
    json!({
        "type": "repository",
        "uuid": r.uuid,
        "slug": r.slug,
        "name": r.name,
        "full_name": format!("{ws}/{}", r.slug),
        "is_private": true,
        "scm": "git",
        "project": {
            "type": "project",
            "key": r.project_key,
            "uuid": project.map(|p| p.uuid.as_str()),
            "name": project.map(|p| p.name.as_str()),
        },
        "mainbranch": {"type": "branch", "name": r.default_branch},
        "links": {
            "html": {"href": format!("{base}/{ws}/{}", r.slug)},
            "self": {"href": format!("{base}/2.0/repositories/{ws}/{}", r.slug)},
        },
    })
}

/// Applies `fields=` and answers 200.
pub(crate) fn ok_with_fields(params: &Params, mut body: Value) -> Result<Response, ApiError> {
    if let Some(spec) = params.get("fields") {
        Fields::parse(spec).apply(&mut body);
    }
    Ok(json(StatusCode::OK, body))
}

async fn projects(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let dataset = state.dataset();
    workspace(&state, path)?;
    let params = Params::parse(query.as_deref());
    let paging = paging(&state, &params)?;
    let all = &dataset.cloud.projects;
    let start = (paging.page - 1).saturating_mul(paging.pagelen);
    let values = all
        .iter()
        .skip(start)
        .take(paging.pagelen)
        .map(|p| project_json(&state.base_url, &dataset.cloud.slug, p))
        .collect();
    let has_next = start.saturating_add(paging.pagelen) < all.len();
    let body = cloud_page(&state, &uri, &params, &paging, values, all.len(), has_next);
    ok_with_fields(&params, body)
}

/// The subset of Cloud's `q` language the simulator understands:
/// `project.key="KEY"`. Anything else is a 400 rather than a silent no-op.
fn repo_filter(q: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    let compact: String = q.chars().filter(|c| !c.is_whitespace()).collect();
    compact
        .strip_prefix("project.key=\"")
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|key| !key.contains('"'))
        .map(|key| Some(key.to_owned()))
        .ok_or_else(|| {
            ApiError::cloud(
                StatusCode::BAD_REQUEST,
                format!("Invalid query (the simulator supports only project.key=\"KEY\"): {q}"),
            )
        })
}

async fn repositories(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let dataset = state.dataset();
    workspace(&state, path)?;
    let params = Params::parse(query.as_deref());
    let paging = paging(&state, &params)?;
    let project = repo_filter(params.get("q"))?;
    let all: Vec<&Repo> = dataset
        .cloud
        .repos
        .iter()
        .filter(|r| {
            project
                .as_ref()
                .is_none_or(|k| k.eq_ignore_ascii_case(&r.project_key))
        })
        .collect();
    let start = (paging.page - 1).saturating_mul(paging.pagelen);
    let values = all
        .iter()
        .skip(start)
        .take(paging.pagelen)
        .map(|r| repo_json(&state.base_url, &dataset, r))
        .collect();
    let has_next = start.saturating_add(paging.pagelen) < all.len();
    let body = cloud_page(&state, &uri, &params, &paging, values, all.len(), has_next);
    ok_with_fields(&params, body)
}

fn search_result(state: &AppState, repo: &Repo, path: &str, content: &str, term: &str) -> Value {
    let dataset = state.dataset();
    let base = &state.base_url;
    let ws = &dataset.cloud.slug;
    let path_matches: Vec<Value> = segments(path, term)
        .into_iter()
        .map(|(text, hit)| {
            if hit {
                json!({"text": text, "match": true})
            } else {
                json!({"text": text})
            }
        })
        .collect();
    let term_lower = term.to_lowercase();
    let hits: Vec<(usize, &str)> = if term_lower.is_empty() {
        Vec::new()
    } else {
        content
            .lines()
            .enumerate()
            .filter(|(_, line)| line.to_lowercase().contains(&term_lower))
            .collect()
    };
    let content_matches: Vec<Value> = hits
        .iter()
        .take(3)
        .map(|(n, line)| {
            let segs: Vec<Value> = segments(line, term)
                .into_iter()
                .map(|(text, hit)| {
                    if hit {
                        json!({"text": text, "match": true})
                    } else {
                        json!({"text": text})
                    }
                })
                .collect();
            json!({"lines": [{"line": n + 1, "segments": segs}]})
        })
        .collect();
    let repo_api = format!("{base}/2.0/repositories/{ws}/{}", repo.slug);
    json!({
        "type": "code_search_result",
        "content_match_count": hits.len(),
        "content_matches": content_matches,
        "path_matches": path_matches,
        "file": {
            "path": path,
            "type": "commit_file",
            "links": {"self": {"href": format!("{repo_api}/src/{}/{path}", repo.commit)}},
            "commit": {
                "type": "commit",
                "hash": repo.commit,
                "links": {
                    "self": {"href": format!("{repo_api}/commit/{}", repo.commit)},
                    "html": {"href": format!("{base}/{ws}/{}/commits/{}", repo.slug, repo.commit)},
                },
                "repository": repo_json(base, &dataset, repo),
            },
        },
    })
}

async fn code_search(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let dataset = state.dataset();
    workspace(&state, path)?;
    let behaviour = state.behaviour().code_search;
    if !behaviour.enabled {
        let status =
            StatusCode::from_u16(behaviour.disabled_status).unwrap_or(StatusCode::NOT_FOUND);
        return Err(ApiError::cloud(
            status,
            "Search is not enabled for the requested workspace, navigate to the workspace's search page to turn it on",
        ));
    }
    let params = Params::parse(query.as_deref());
    let paging = paging(&state, &params)?;
    let raw_query = params.get("search_query").ok_or_else(|| {
        ApiError::cloud(StatusCode::BAD_REQUEST, "Missing search_query parameter")
    })?;
    let search = SearchQuery::parse(raw_query)
        .map_err(|message| ApiError::cloud(StatusCode::BAD_REQUEST, message))?;
    let term = search.terms.first().cloned().unwrap_or_default();
    let mut hits: Vec<(&Repo, &str, &str)> = dataset
        .cloud
        .repos
        .iter()
        .filter(|r| search.repo_matches(&dataset.cloud.slug, r))
        .flat_map(|r| {
            r.files
                .iter()
                .map(move |(p, c)| (r, p.as_str(), c.as_str()))
        })
        .filter(|(_, p, c)| search.file_matches(p, c))
        .collect();
    // `size` counts every match; the results stop at `max_results`.
    let matches = hits.len();
    if behaviour.unstable_order {
        let walk = state.search_walk(raw_query, paging.page == 1);
        shuffle(
            &mut hits,
            state.config.seed ^ fnv1a(raw_query.as_bytes()) ^ mix(walk),
        );
    }
    hits.truncate(behaviour.max_results);
    // BCLOUD-23644: every page after the first repeats the previous page's tail.
    let repeat = behaviour
        .repeat_per_page
        .min(paging.pagelen.saturating_sub(1));
    let step = paging.pagelen - repeat;
    let start = (paging.page - 1).saturating_mul(step);
    if paging.page > 1 && start >= behaviour.max_results {
        return Err(ApiError::cloud(
            StatusCode::BAD_REQUEST,
            format!(
                "Cannot fetch results past result number {}",
                behaviour.max_results
            ),
        ));
    }
    let values = hits
        .iter()
        .skip(start)
        .take(paging.pagelen)
        .map(|(r, p, c)| search_result(&state, r, p, c, &term))
        .collect();
    let has_next = start.saturating_add(paging.pagelen) < hits.len();
    let mut body = cloud_page(&state, &uri, &params, &paging, values, matches, has_next);
    body["query_substituted"] = json!(false);
    ok_with_fields(&params, body)
}

/// Fisher–Yates with a seeded stream: one order per walk of a query.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = Rng::new(seed);
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}
