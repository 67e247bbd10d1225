//! Bitbucket Cloud REST 2.0 over a repository's tree and history: `src`
//! (a file, or a directory listing with `max_depth`) at a commit, a branch
//! (`refs/branches/{name}`) and the changed files between two commits
//! (`diffstat/{new}..{old}`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use crate::cloud_api::{Paging, bad_path, cloud_page, no_workspace, ok_with_fields, paging_with};
use crate::dataset::{Dataset, Repo};
use crate::history::{ChangeType, Revision};
use crate::respond::{ApiError, Params, text};
use crate::state::AppState;

/// Cloud's diffstat pages: 500 entries by default and at most.
const DIFFSTAT_PAGELEN: usize = 500;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/repositories/{ws}/{slug}/src/{commit}", get(src_root))
        .route("/repositories/{ws}/{slug}/src/{commit}/", get(src_root))
        .route("/repositories/{ws}/{slug}/src/{commit}/{*path}", get(src))
        .route(
            "/repositories/{ws}/{slug}/refs/branches/{*name}",
            get(branch),
        )
        .route("/repositories/{ws}/{slug}/diffstat/{spec}", get(diffstat))
}

fn find_repo<'a>(dataset: &'a Dataset, ws: &str, slug: &str) -> Result<&'a Repo, ApiError> {
    if !dataset.is_cloud_workspace(ws) {
        return Err(no_workspace(ws));
    }
    dataset.cloud_repo(slug).ok_or_else(|| {
        ApiError::cloud(
            StatusCode::NOT_FOUND,
            format!("Repository {ws}/{slug} not found"),
        )
    })
}

fn resolve(repo: &Repo, at: &str) -> Result<Revision, ApiError> {
    repo.resolve(at)
        .ok_or_else(|| ApiError::cloud(StatusCode::NOT_FOUND, format!("Commit not found: {at}")))
}

/// One request's context for building links and pages.
struct Ctx<'a> {
    state: &'a AppState,
    ws: &'a str,
    repo: &'a Repo,
}

impl Ctx<'_> {
    fn repo_api(&self) -> String {
        format!(
            "{}/2.0/repositories/{}/{}",
            self.state.base_url, self.ws, self.repo.slug
        )
    }

    fn commit_json(&self, hash: &str) -> Value {
        json!({
            "type": "commit",
            "hash": hash,
            "links": {"self": {"href": format!("{}/commit/{hash}", self.repo_api())}},
        })
    }

    fn src_href(&self, hash: &str, path: &str) -> String {
        format!("{}/src/{hash}/{path}", self.repo_api())
    }
}

async fn src_root(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Path((ws, slug, commit)) = path.map_err(bad_path)?;
    src_at(&state, &ws, &slug, &commit, "/", &uri, query.as_deref())
}

async fn src(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String, String, String)>, PathRejection>,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Path((ws, slug, commit, file)) = path.map_err(bad_path)?;
    src_at(&state, &ws, &slug, &commit, &file, &uri, query.as_deref())
}

/// A file's content, or, for a directory (a path ending in `/`, or one
/// that names no file but has files below it), its paged listing.
fn src_at(
    state: &AppState,
    ws: &str,
    slug: &str,
    commit: &str,
    file: &str,
    uri: &Uri,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let dataset = state.dataset();
    let repo = find_repo(&dataset, ws, slug)?;
    // A pull request's source commit: its files over the head's.
    if !file.ends_with('/') {
        if let Some(found) = state.pull_request_file(repo, commit, file) {
            return found.map(text).ok_or_else(|| {
                ApiError::cloud(
                    StatusCode::NOT_FOUND,
                    format!("No such file or directory: {file}"),
                )
            });
        }
    }
    let (tree, hash) = match state.pull_request_tree(repo, commit) {
        Some(files) => (Cow::Owned(files), commit),
        None => {
            let rev = resolve(repo, commit)?;
            (repo.files_at(rev), repo.hash_of(rev))
        }
    };
    let path = file.trim_matches('/');
    if !file.ends_with('/') {
        if let Some(content) = tree.get(path) {
            return Ok(text(content.clone()));
        }
    }
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let below: Vec<(&str, usize)> = tree
        .iter()
        .filter_map(|(p, c)| p.strip_prefix(prefix.as_str()).map(|rest| (rest, c.len())))
        .collect();
    if below.is_empty() && !path.is_empty() {
        return Err(ApiError::cloud(
            StatusCode::NOT_FOUND,
            format!("No such file or directory: {file}"),
        ));
    }
    let params = Params::parse(query);
    let depth = match params.get("max_depth") {
        None | Some("") => 1,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|d| *d >= 1)
            .ok_or_else(|| {
                ApiError::cloud(StatusCode::BAD_REQUEST, format!("Invalid max_depth: {v}"))
            })?,
    };
    // Path → `Some(size)` for a file, `None` for a directory, by path.
    let mut entries: BTreeMap<String, Option<usize>> = BTreeMap::new();
    for (rest, size) in below {
        let parts: Vec<&str> = rest.split('/').collect();
        for level in 1..=depth.min(parts.len()) {
            let entry = format!("{prefix}{}", parts[..level].join("/"));
            let is_file = level == parts.len();
            entries.insert(entry, is_file.then_some(size));
        }
    }
    let opts = &state.config.cloud;
    let paging = paging_with(&params, opts.default_pagelen, opts.max_pagelen)?;
    let ctx = Ctx { state, ws, repo };
    let start = (paging.page - 1).saturating_mul(paging.pagelen);
    let values = entries
        .iter()
        .skip(start)
        .take(paging.pagelen)
        .map(|(p, size)| match size {
            Some(size) => json!({
                "type": "commit_file",
                "path": p,
                "escaped_path": p,
                "attributes": [],
                "size": size,
                "mimetype": null,
                "commit": ctx.commit_json(hash),
                "links": {
                    "self": {"href": ctx.src_href(hash, p)},
                    "meta": {"href": format!("{}?format=meta", ctx.src_href(hash, p))},
                },
            }),
            None => json!({
                "type": "commit_directory",
                "path": p,
                "commit": ctx.commit_json(hash),
                "links": {
                    "self": {"href": format!("{}/", ctx.src_href(hash, p))},
                    "meta": {"href": format!("{}/?format=meta", ctx.src_href(hash, p))},
                },
            }),
        })
        .collect();
    let has_next = start.saturating_add(paging.pagelen) < entries.len();
    listing(state, uri, &params, &paging, values, has_next)
}

/// A page without `size`: Cloud does not count `src` listings.
fn listing(
    state: &AppState,
    uri: &Uri,
    params: &Params,
    paging: &Paging,
    values: Vec<Value>,
    has_next: bool,
) -> Result<Response, ApiError> {
    let mut body = cloud_page(state, uri, params, paging, values, 0, has_next);
    if let Some(fields) = body.as_object_mut() {
        fields.remove("size");
    }
    ok_with_fields(params, body)
}

/// `GET …/refs/branches/{name}`: the default branch (the only one the
/// simulator serves) with its head commit as `target.hash`.
async fn branch(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Path((ws, slug, name)) = path.map_err(bad_path)?;
    let dataset = state.dataset();
    let repo = find_repo(&dataset, &ws, &slug)?;
    if name != repo.default_branch {
        return Err(ApiError::cloud(
            StatusCode::NOT_FOUND,
            format!("Branch \"{name}\" not found"),
        ));
    }
    let ctx = Ctx {
        state: &state,
        ws: &ws,
        repo,
    };
    let base = &state.base_url;
    let mut target = ctx.commit_json(&repo.commit);
    target["date"] = json!("2026-01-01T00:00:00+00:00");
    target["message"] = json!("Generated by bitbucket-sim\n");
    let body = json!({
        "type": "branch",
        "name": repo.default_branch,
        "target": target,
        "merge_strategies": ["merge_commit", "squash", "fast_forward"],
        "default_merge_strategy": "merge_commit",
        "links": {
            "self": {"href": format!("{}/refs/branches/{name}", ctx.repo_api())},
            "commits": {"href": format!("{}/commits/{name}", ctx.repo_api())},
            "html": {"href": format!("{base}/{}/{}/branch/{name}", dataset.cloud.slug, repo.slug)},
        },
    });
    ok_with_fields(&Params::parse(query.as_deref()), body)
}

/// `GET …/diffstat/{new}..{old}` (or `{commit}`: against its parent): the
/// files that differ, paged.
async fn diffstat(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Path((ws, slug, spec)) = path.map_err(bad_path)?;
    let dataset = state.dataset();
    let repo = find_repo(&dataset, &ws, &slug)?;
    let (new, old) = match spec.split_once("..") {
        Some((new, old)) => (resolve(repo, new)?, Some(resolve(repo, old)?)),
        None => {
            let new = resolve(repo, &spec)?;
            (new, repo.parent(new))
        }
    };
    let params = Params::parse(query.as_deref());
    let paging = paging_with(&params, DIFFSTAT_PAGELEN, DIFFSTAT_PAGELEN)?;
    let ctx = Ctx {
        state: &state,
        ws: &ws,
        repo,
    };
    let (before, after) = (old.map(|o| repo.files_at(o)), repo.files_at(new));
    let side = |rev: Option<Revision>, path: &str| {
        rev.map(|r| {
            json!({
                "type": "commit_file",
                "path": path,
                "escaped_path": path,
                "links": {"self": {"href": ctx.src_href(repo.hash_of(r), path)}},
            })
        })
    };
    let all = repo.changes(old, new);
    let start = (paging.page - 1).saturating_mul(paging.pagelen);
    let values = all
        .iter()
        .skip(start)
        .take(paging.pagelen)
        .map(|c| {
            let old_text = before.as_ref().and_then(|b| b.get(&c.path));
            let (added, removed) = line_counts(
                old_text.map_or("", String::as_str),
                after.get(&c.path).map_or("", String::as_str),
            );
            let (status, old_side, new_side) = match c.change {
                ChangeType::Add => ("added", None, side(Some(new), &c.path)),
                ChangeType::Delete => ("removed", side(old, &c.path), None),
                ChangeType::Modify => ("modified", side(old, &c.path), side(Some(new), &c.path)),
            };
            json!({
                "type": "diffstat",
                "status": status,
                "lines_added": added,
                "lines_removed": removed,
                "old": old_side,
                "new": new_side,
            })
        })
        .collect();
    let has_next = start.saturating_add(paging.pagelen) < all.len();
    let body = cloud_page(&state, &uri, &params, &paging, values, all.len(), has_next);
    ok_with_fields(&params, body)
}

/// Lines only in `new` and lines only in `old` (as multisets: close enough
/// to a diff for counting).
fn line_counts(old: &str, new: &str) -> (usize, usize) {
    let mut counts: BTreeMap<&str, isize> = BTreeMap::new();
    for line in new.lines() {
        *counts.entry(line).or_insert(0) += 1;
    }
    for line in old.lines() {
        *counts.entry(line).or_insert(0) -= 1;
    }
    let added = counts
        .values()
        .filter(|n| **n > 0)
        .map(|n| n.unsigned_abs())
        .sum();
    let removed = counts
        .values()
        .filter(|n| **n < 0)
        .map(|n| n.unsigned_abs())
        .sum();
    (added, removed)
}
