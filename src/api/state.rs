//! What every handler shares: the state ([`ApiState`]), the request line
//! for Backstage's error body ([`Req`], re-exported from `request`), and the off-worker evaluation of
//! queries over the whole catalog.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::query_pool::{QueryPool, Refused, Turn};
pub(crate) use super::request::{Forwarded, Req};
use super::status_cache::StatusPageCache;
use crate::bitbucket::HttpPool;
use crate::catalog::budget::Budget;
use crate::catalog::{Catalog, EntityKey};
use crate::config::{ExternalAccess, QueryBudget, TrustedProxies};
use crate::locations::Locations;
use crate::replica::Replica;
use crate::scheduler::{Scheduler, SourceRunner};
use crate::webhooks::Webhooks;

/// The largest request body read (queries, by-refs, registrations): what
/// a client can make the daemon hold and parse per request.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub catalog: Arc<Catalog>,
    /// Set once the stored catalog is loaded and the listener is up.
    pub ready: Arc<AtomicBool>,
    pub scheduler: Arc<Scheduler>,
    pub locations: Arc<Locations>,
    /// Who may call the write endpoints (`backend.auth.externalAccess`).
    pub access: Arc<ExternalAccess>,
    pub webhooks: Arc<Webhooks>,
    /// Every integration's HTTP context: pace and 429s for the status page.
    pub integrations: Arc<HttpPool>,
    /// Turns for queries over the whole catalog, fair among callers (see
    /// [`evaluate`]).
    pub evaluators: Arc<QueryPool>,
    /// This daemon's place among replicas sharing a PostgreSQL database.
    pub replica: Option<Arc<Replica>>,
    /// Pace and deletion guard of removals through the API.
    pub removals: Arc<super::removals::ApiRemovals>,
    /// Pace of the requests that read Bitbucket on a caller's behalf.
    pub pace: Arc<super::pace::BitbucketPace>,
    /// `GET /` as last built (see [`StatusPageCache`]).
    pub status_page: Arc<StatusPageCache>,
    /// How the last config reload went, for the status page.
    pub reloads: Arc<super::config_reload::ConfigReloads>,
    /// `backend.queryBudget`: what one evaluation may take.
    pub query_budget: QueryBudget,
    /// `backend.trustedProxies`: whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<TrustedProxies>,
}

/// The query pool: one core fewer than the machine has (at least one),
/// so health checks, by-name reads and discovery keep a core whatever the
/// query load.
pub(crate) fn evaluators() -> Arc<QueryPool> {
    QueryPool::for_this_machine()
}

/// Runs `work` (a query over the whole catalog) on the blocking pool in a
/// turn of [`ApiState::evaluators`], so it never holds up the async
/// workers. The turn lives as long as the work, even if the client leaves.
pub(crate) async fn evaluate(
    state: &ApiState,
    req: &Req,
    work: impl FnOnce() -> Result<Response, ApiError> + Send + 'static,
) -> Result<Response, ApiError> {
    evaluate_within(state, req, move |_| work()).await
}

/// [`evaluate`], with the [`ApiState::query_budget`] the work must check
/// as it goes (started when the work starts, not while it waits for its
/// turn, on the blocking thread that runs it: its CPU time is counted).
pub(crate) async fn evaluate_within<T: Send + 'static>(
    state: &ApiState,
    req: &Req,
    work: impl FnOnce(&Budget) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let turn = take_turn(state, req).await?;
    let limits = state.query_budget;
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        work(&Budget::starting_now(limits))
    })
    .await
    .map_err(|err| {
        tracing::error!(error = %err, "query evaluation panicked or was cancelled");
        not_evaluated(req)
    })?
}

/// A turn in the query pool for the request's client, or its 429.
pub(crate) async fn take_turn(state: &ApiState, req: &Req) -> Result<Turn, ApiError> {
    state
        .evaluators
        .turn(req.caller.clone())
        .await
        .map_err(|refused| {
            let what = match refused {
                Refused::Caller => "query pool, per client",
                Refused::Overall => "query pool, all clients",
            };
            tracing::debug!(limit = what, "query refused: queue full");
            req.error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsError",
                refused.to_string(),
            )
        })
}

/// The 500 of an evaluation that failed unexpectedly.
pub(crate) fn not_evaluated(req: &Req) -> ApiError {
    req.error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Error",
        "the query could not be evaluated; see the daemon's log",
    )
}

/// The source runner that serves `key`, and the unit (repository or
/// location) it comes from.
pub(crate) fn owning_runner(
    state: &ApiState,
    key: &EntityKey,
) -> Option<(Arc<SourceRunner>, String)> {
    let owner = state.catalog.owner(key)?;
    let runner = state.scheduler.runner(&owner.source)?;
    Some((runner, owner.unit.to_string()))
}

/// `{kind}/{namespace}/{name}` of the by-name paths.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct EntityName {
    kind: String,
    namespace: String,
    name: String,
}

impl EntityName {
    pub(crate) fn key(&self) -> EntityKey {
        EntityKey::new(&self.kind, &self.namespace, &self.name)
    }

    /// Backstage's 404 for a name that is not served.
    pub(crate) fn not_found(&self, req: &Req) -> ApiError {
        let Self {
            kind,
            namespace,
            name,
        } = self;
        req.not_found(format!(
            "No entity named '{name}' found, with kind '{kind}' in namespace '{namespace}'"
        ))
    }
}

/// A JSON array of already rendered `items`.
pub(crate) fn json_array(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(","))
}

/// A JSON body rendered from pre-serialised text (entities are stored
/// rendered, so listing them is concatenation, not serialisation).
pub(crate) fn raw_json(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
