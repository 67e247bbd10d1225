//! The operator's endpoints: Backstage's health checks, Prometheus
//! metrics and this replica's role.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::state::ApiState;

/// Backstage's health endpoints (answered even over the connection cap).
pub(super) const LIVENESS: &str = "/.backstage/health/v1/liveness";
pub(super) const READINESS: &str = "/.backstage/health/v1/readiness";

pub(super) async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        crate::metrics::render(),
    )
        .into_response()
}

pub(super) async fn liveness() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

pub(super) async fn readiness(State(state): State<ApiState>) -> Response {
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
pub(super) async fn replica(State(state): State<ApiState>) -> Response {
    match &state.replica {
        Some(replica) => Json(replica.status()).into_response(),
        None => Json(json!({"role": "standalone"})).into_response(),
    }
}
