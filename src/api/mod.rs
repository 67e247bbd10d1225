//! The HTTP API: the Backstage catalog REST dialect under `/api/catalog`
//! and Backstage's health endpoints.

mod error;
mod problems;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{OriginalUri, Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower_http::trace::TraceLayer;

use crate::catalog::{Catalog, EntityKey};
use crate::scheduler::ProviderRunner;
pub use error::ApiError;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub catalog: Arc<Catalog>,
    /// Set once the catalog is loaded and the listener is up.
    pub ready: Arc<AtomicBool>,
    pub providers: Vec<Arc<ProviderRunner>>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/catalog/entities", get(list_entities))
        .route(
            "/api/catalog/entities/by-name/{kind}/{namespace}/{name}",
            get(entity_by_name),
        )
        .route("/api/catalog/providers", get(list_providers))
        .merge(problems::routes())
        .route("/.backstage/health/v1/liveness", get(liveness))
        .route("/.backstage/health/v1/readiness", get(readiness))
        .fallback(not_found)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn list_entities(State(state): State<ApiState>) -> Response {
    let entities = state.catalog.entities();
    let refs: Vec<&crate::catalog::Entity> = entities.iter().map(AsRef::as_ref).collect();
    Json(refs).into_response()
}

async fn entity_by_name(
    State(state): State<ApiState>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
    method: Method,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    match state.catalog.get(&EntityKey::new(&kind, &namespace, &name)) {
        Some(entity) => Ok(Json(entity.as_ref()).into_response()),
        None => Err(ApiError::not_found(
            format!(
                "No entity named '{name}' found, with kind '{kind}' in namespace '{namespace}'"
            ),
            &method,
            &uri,
        )),
    }
}

/// Each provider's configuration summary, last run and whether one is running.
async fn list_providers(State(state): State<ApiState>) -> Response {
    let providers: Vec<_> = state
        .providers
        .iter()
        .map(|runner| {
            json!({
                "id": runner.id(),
                "type": "bitbucketServer",
                "target": runner.target(),
                "schedule": runner.schedule(),
                "inProgress": runner.in_progress(),
                "entities": state.catalog.source_len(runner.id()),
                "lastRun": runner.last_report(),
            })
        })
        .collect();
    Json(providers).into_response()
}

async fn liveness() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn readiness(State(state): State<ApiState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        Json(json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "error", "message": "starting up"})),
        )
            .into_response()
    }
}

async fn not_found(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(
        format!("No route for {method} {}", uri.path()),
        &method,
        &uri,
    )
}
