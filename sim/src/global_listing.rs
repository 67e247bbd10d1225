//! Data Center's global repository listing, `GET /rest/api/{1.0,latest}/repos`:
//! every repository the caller can see (personal ones too, whether or not
//! `GET /projects` lists their project), in project order, paged like the
//! other listings (`limit` capped at `max_page_size`). `archived` is
//! `ACTIVE` (the default), `ARCHIVED` or `ALL`; `projectname` (exact,
//! any case) and `name` (a part of the name, any case) narrow it.
//! [`ServerOptions::global_listing`](crate::ServerOptions) off answers 404,
//! as an older server or a proxy that blocks the route would.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use crate::dataset::{Repo, ServerProject};
use crate::respond::{ApiError, Params, json};
use crate::server_api::{listed_repo_json, page, window};
use crate::state::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/repos", get(repos))
}

/// Which repositories `archived` asks for.
#[derive(Debug, Clone, Copy)]
enum Shown {
    Active,
    Archived,
    All,
}

impl Shown {
    fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value.map(str::trim) {
            None | Some("") => Ok(Self::Active),
            Some(v) if v.eq_ignore_ascii_case("ACTIVE") => Ok(Self::Active),
            Some(v) if v.eq_ignore_ascii_case("ARCHIVED") => Ok(Self::Archived),
            Some(v) if v.eq_ignore_ascii_case("ALL") => Ok(Self::All),
            Some(v) => Err(ApiError::server(
                StatusCode::BAD_REQUEST,
                format!("Invalid value for 'archived': '{v}'; expected ACTIVE, ARCHIVED or ALL."),
                None,
            )),
        }
    }

    fn keeps(self, repo: &Repo) -> bool {
        match self {
            Self::Active => !repo.archived,
            Self::Archived => repo.archived,
            Self::All => true,
        }
    }
}

async fn repos(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if !state.config.server.global_listing {
        return Err(ApiError::server(
            StatusCode::NOT_FOUND,
            "No resource found at /repos.",
            None,
        ));
    }
    let params = Params::parse(query.as_deref());
    let (start, limit) = window(&state, &params)?;
    let archived = Shown::parse(params.get("archived"))?;
    let project_name = params
        .get("projectname")
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let name = params
        .get("name")
        .map(|n| n.trim().to_lowercase())
        .filter(|n| !n.is_empty());
    let dataset = state.dataset();
    let matching: Vec<(&ServerProject, &Repo)> = dataset
        .server_projects
        .iter()
        .filter(|p| project_name.is_none_or(|n| p.name.eq_ignore_ascii_case(n)))
        .flat_map(|p| p.repos.iter().map(move |r| (p, r)))
        .filter(|(_, r)| archived.keeps(r))
        .filter(|(_, r)| {
            name.as_deref()
                .is_none_or(|n| r.name.to_lowercase().contains(n))
        })
        .collect();
    let values = matching
        .iter()
        .skip(start)
        .take(limit)
        .map(|(p, r)| listed_repo_json(&state, p, r))
        .collect();
    Ok(json(
        StatusCode::OK,
        page(values, start, limit, matching.len()),
    ))
}
