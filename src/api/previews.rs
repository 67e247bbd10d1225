//! `GET /api/catalog/previews/{provider}/{project}/{repository}/{pullRequest}`:
//! what merging an open pull request would change in the catalog, as its
//! check found it (Cloud: `project` is the workspace). The leader serves
//! its own from memory; a follower reads the leader's from the store (each
//! read served again for two seconds, a few at a time: see `Previews`).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Unavailable};
use super::schema::{ERROR, ErrorBody};
use super::state::{ApiState, Req, raw_json};
use crate::checks::PreviewKey;

#[utoipa::path(get, path = "/api/catalog/previews/{provider}/{project}/{repository}/{pullRequest}",
    summary = "What merging an open pull request would change: entities added, changed (which fields) and removed, problems with file and line, pass or fail",
    params(("provider" = String, Path), ("project" = String, Path, description = "Data Center project key, or Cloud workspace"), ("repository" = String, Path), ("pullRequest" = u64, Path)),
    responses((status = 200, description = "Preview", body = Object), (status = 404, description = ERROR, body = ErrorBody), (status = 503, description = ERROR, body = ErrorBody)))]
pub(super) async fn get_one(
    State(state): State<ApiState>,
    req: Req,
    Path((provider, project, repository, pull_request)): Path<(String, String, String, u64)>,
) -> Result<Response, ApiError> {
    let key = PreviewKey::new(&provider, &project, &repository, pull_request);
    let previews = state.scheduler.previews();
    let follower = state.replica.as_ref().is_some_and(|r| !r.is_leader());
    let found = if follower {
        match previews.read_stored(&key).await {
            Ok(body) => body.map(|body| raw_json(body.to_string())),
            Err(err) => {
                tracing::error!(error = %err, "cannot read a pull-request preview from the store");
                return Err(Unavailable(format!(
                    "the preview cannot be read from the catalog database now ({err}); retry shortly"
                ))
                .into());
            }
        }
    } else {
        previews
            .get(&key)
            .map(|preview| Json(preview.as_ref()).into_response())
    };
    found.ok_or_else(|| req.not_found(format!(
        "No preview of pull request {pull_request} of {project}/{repository} for provider '{provider}': it was not checked (pullRequests.checks off, no catalog file changed, another branch), or it is merged or declined"
    )))
}
