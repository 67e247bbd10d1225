//! `GET /api/catalog/previews/{provider}/{project}/{repository}/{pullRequest}`:
//! what merging an open pull request would change in the catalog, as its
//! check found it (Cloud: `project` is the workspace).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::schema::{ERROR, ErrorBody};
use super::state::{ApiState, Req};
use crate::checks::PreviewKey;

#[utoipa::path(get, path = "/api/catalog/previews/{provider}/{project}/{repository}/{pullRequest}",
    summary = "What merging an open pull request would change: entities added, changed (which fields) and removed, problems with file and line, pass or fail",
    params(("provider" = String, Path), ("project" = String, Path, description = "Data Center project key, or Cloud workspace"), ("repository" = String, Path), ("pullRequest" = u64, Path)),
    responses((status = 200, description = "Preview", body = Object), (status = 404, description = ERROR, body = ErrorBody)))]
pub(super) async fn get_one(
    State(state): State<ApiState>,
    req: Req,
    Path((provider, project, repository, pull_request)): Path<(String, String, String, u64)>,
) -> Result<Response, ApiError> {
    let key = PreviewKey::new(&provider, &project, &repository, pull_request);
    match state.scheduler.previews().get(&key) {
        Some(preview) => Ok(Json(preview.as_ref()).into_response()),
        None => Err(req.not_found(format!(
            "No preview of pull request {pull_request} of {project}/{repository} for provider '{provider}': it was not checked (pullRequests.checks off, no catalog file changed, another branch), or it is merged or declined"
        ))),
    }
}
