//! The HTTP API: the Backstage catalog REST dialect under `/api/catalog`,
//! provider status and control, Prometheus metrics and Backstage's health
//! endpoints.
//!
//! - [`entities`]: entities, by-query, by-refs, by-name, by-uid, facets.
//! - [`locations`]: locations: list, register (catalog-import), remove.
//! - [`providers`]: source status and refresh.
//! - [`refresh`]: per-entity refresh.
//! - [`validate`]: `validate-entity`, checked as discovery would.
//! - [`changes`]: the entity change feed.
//! - [`events`]: Bitbucket's webhooks.
//! - [`forward`]: writes on a follower replica, carried out by the leader.
//! - [`openapi`]: the OpenAPI document for all of the above.
//! - [`server`]: the connection loop (cap, timeouts, graceful shutdown).
//! - [`status_page`]: `GET /`, the operator's page.
//! - [`error`]: Backstage's error body; domain errors reach it through
//!   [`error::HttpError`] and `?`.

mod changes;
mod entities;
mod error;
mod events;
pub(crate) mod forward;
mod locations;
mod openapi;
mod params;
mod providers;
mod refresh;
pub(crate) mod server;
mod status_page;
mod validate;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::trace::TraceLayer;

use tokio::sync::Semaphore;

use crate::bitbucket::HttpPool;
use crate::catalog::Catalog;
use crate::config::{Denied, ExternalAccess, WritePermission};
use crate::locations::Locations;
use crate::replica::Replica;
use crate::scheduler::Scheduler;
use crate::webhooks::Webhooks;
pub(crate) use error::ApiError;

/// The largest request body read (queries, by-refs, registrations): what
/// a client can make the daemon hold and parse per request.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The longest a client may take to send a whole body: a slow body would
/// otherwise hold a connection (and its descriptor) for as long as it
/// trickles.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Backstage's health endpoints (answered even over the connection cap).
const LIVENESS: &str = "/.backstage/health/v1/liveness";
const READINESS: &str = "/.backstage/health/v1/readiness";

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

pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/catalog/entities", get(entities::list))
        .route(
            "/api/catalog/entities/by-query",
            get(entities::query_get).post(entities::query_post),
        )
        .route("/api/catalog/entities/by-refs", post(entities::by_refs))
        .route(
            "/api/catalog/entities/by-name/{kind}/{namespace}/{name}",
            get(entities::by_name),
        )
        .route(
            "/api/catalog/entities/by-name/{kind}/{namespace}/{name}/ancestry",
            get(entities::ancestry),
        )
        .route(
            "/api/catalog/entities/by-uid/{uid}",
            get(entities::by_uid).delete(entities::delete_by_uid),
        )
        .route(
            "/api/catalog/entity-facets",
            get(entities::facets).post(entities::facets_post),
        )
        .route(
            "/api/catalog/validate-entity",
            post(validate::validate_entity),
        )
        .route("/api/catalog/analyze-location", post(locations::analyze))
        .route(
            "/api/catalog/locations",
            get(locations::list).post(locations::create),
        )
        .route(
            "/api/catalog/locations/{id}",
            get(locations::get_one)
                .put(locations::update)
                .delete(locations::delete),
        )
        .route("/api/catalog/locations/by-query", post(locations::by_query))
        .route(
            "/api/catalog/locations/by-entity/{kind}/{namespace}/{name}",
            get(locations::by_entity),
        )
        .route("/api/catalog/providers", get(providers::list))
        .route("/api/catalog/providers/{id}", get(providers::get_one))
        .route("/api/catalog/providers/{id}/errors", get(providers::errors))
        .route(
            "/api/catalog/providers/{id}/repositories",
            get(providers::repositories),
        )
        .route(
            "/api/catalog/providers/{id}/refresh",
            post(providers::refresh),
        )
        .route("/api/catalog/refresh", post(refresh::refresh_entity))
        .route("/api/catalog/changes", get(changes::changes))
        .route("/api/events/http/{topic}", post(events::receive_topic))
        .route("/api/catalog/openapi.json", get(openapi::document))
        .route("/api/catalog/replica", get(replica))
        .route("/metrics", get(metrics))
        .route("/", get(status_page::page))
        .route(status_page::STYLESHEET_PATH, get(status_page::stylesheet))
        .route(status_page::ICON_PATH, get(status_page::icon))
        .route(LIVENESS, get(liveness))
        .route(READINESS, get(readiness))
        .fallback(not_found)
        .route_layer(middleware::from_fn(record_latency))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            forward::forward_writes,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::map_request(body_deadline))
        .layer(middleware::from_fn(error::backstage_shape))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The source runner that serves `key`, and the unit (repository or
/// location) it comes from.
pub(crate) fn owning_runner(
    state: &ApiState,
    key: &crate::catalog::EntityKey,
) -> Option<(Arc<crate::scheduler::SourceRunner>, String)> {
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
    pub(crate) fn key(&self) -> crate::catalog::EntityKey {
        crate::catalog::EntityKey::new(&self.kind, &self.namespace, &self.name)
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

/// The request line, for Backstage's error body.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub method: Method,
    pub uri: Uri,
    /// Replayed for a follower, which checked the caller's token.
    forwarded: bool,
}

impl Req {
    pub(crate) fn input(&self, message: impl Into<String>) -> ApiError {
        ApiError::input(message, &self.method, &self.uri)
    }

    pub(crate) fn not_found(&self, message: impl Into<String>) -> ApiError {
        ApiError::not_found(message.into(), &self.method, &self.uri)
    }

    pub(crate) fn error(
        &self,
        status: StatusCode,
        name: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError::new(status, name, message.into(), &self.method, &self.uri)
    }

    /// Checks the caller's `Authorization: Bearer` token for a write when
    /// `backend.auth.externalAccess` is configured: 401 without a known
    /// token, 403 when its `accessRestrictions` do not grant `permission`.
    /// The token never reaches a log; the subject does.
    pub(crate) fn authorize(
        &self,
        state: &ApiState,
        headers: &HeaderMap,
        permission: WritePermission,
    ) -> Result<(), ApiError> {
        if self.forwarded {
            return Ok(());
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        match state.access.authorize(presented, permission) {
            Ok(subject) => {
                if let Some(subject) = subject {
                    tracing::info!(subject, permission = permission.name(), method = %self.method, path = self.uri.path(), "authorized write");
                }
                Ok(())
            }
            Err(Denied::Unauthenticated) => Err(self.error(
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
                if presented.is_some() {
                    "Illegal token: it is not one of backend.auth.externalAccess"
                } else {
                    "Missing credentials: send Authorization: Bearer <token> (backend.auth.externalAccess)"
                },
            )),
            Err(Denied::Forbidden) => Err(self.error(
                StatusCode::FORBIDDEN,
                "NotAllowedError",
                format!(
                    "this token's accessRestrictions do not grant {}",
                    permission.name()
                ),
            )),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Req {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let uri = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or_else(|| parts.uri.clone(), |original| original.0.clone());
        Ok(Self {
            method: parts.method.clone(),
            uri,
            forwarded: parts.extensions.get::<forward::Forwarded>().is_some(),
        })
    }
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

/// Bounds the whole request body in time (tower-http's body timeout
/// restarts at every frame, so a trickle would never end).
async fn body_deadline(request: Request) -> Request {
    let deadline = tokio::time::Instant::now() + BODY_TIMEOUT;
    request.map(|body| {
        axum::body::Body::new(Deadline {
            body,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
        })
    })
}

struct Deadline {
    body: axum::body::Body,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl axum::body::HttpBody for Deadline {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        if self.sleep.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Some(Err(axum::Error::new(format!(
                "the request body took longer than {} s",
                BODY_TIMEOUT.as_secs()
            )))));
        }
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

async fn record_latency(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    crate::metrics::record_api_request(
        method_label(&method),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The method as a metrics label: any other method a client invents is
/// `other`, so labels cannot grow without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        crate::metrics::render(),
    )
        .into_response()
}

async fn liveness() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn readiness(State(state): State<ApiState>) -> Response {
    if state.replica.as_ref().is_some_and(|r| !r.is_ready()) {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "error", "message": "not ready: catching up with the leader's changes"}))).into_response();
    }
    if state.ready.load(Ordering::Acquire) {
        Json(json!({"status": "ok"})).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "error", "message": "not ready: loading the stored catalog or shutting down"}))).into_response()
    }
}

/// This replica's role, the leader's identity and how far behind it is.
async fn replica(State(state): State<ApiState>) -> Response {
    match &state.replica {
        Some(replica) => Json(replica.status()).into_response(),
        None => Json(json!({"role": "standalone"})).into_response(),
    }
}

async fn not_found(req: Req) -> ApiError {
    let message = format!("No route for {} {}", req.method, req.uri.path());
    req.not_found(message)
}
