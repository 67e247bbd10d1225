//! What every handler shares: the state ([`ApiState`]), the request line
//! for Backstage's error body ([`Req`], re-exported from `request`), and the off-worker evaluation of
//! queries over the whole catalog.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::ApiError;
pub(crate) use super::request::{Forwarded, Req};
use super::status_cache::StatusPageCache;
use crate::bitbucket::HttpPool;
use crate::catalog::{Catalog, EntityKey};
use crate::config::ExternalAccess;
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
    /// Queries evaluated at once (see [`evaluate`]).
    pub evaluators: Arc<Semaphore>,
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
}

/// How many queries may be evaluated at once: one core fewer than the
/// machine has (at least one), so health checks, by-name reads and
/// discovery keep a core whatever the query load.
pub(crate) fn evaluators() -> Arc<Semaphore> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    Arc::new(Semaphore::new(cores.saturating_sub(1).max(1)))
}

/// Runs `work` (a query over the whole catalog) on the blocking pool,
/// bounded by [`ApiState::evaluators`], so it never holds up the async
/// workers. The permit lives as long as the work, even if the client
/// leaves.
pub(crate) async fn evaluate(
    state: &ApiState,
    req: &Req,
    work: impl FnOnce() -> Result<Response, ApiError> + Send + 'static,
) -> Result<Response, ApiError> {
    let failed = || {
        req.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "the query could not be evaluated; see the daemon's log",
        )
    };
    let permit = Arc::clone(&state.evaluators)
        .acquire_owned()
        .await
        .map_err(|_| failed())?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|err| {
        tracing::error!(error = %err, "query evaluation panicked or was cancelled");
        failed()
    })?
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
