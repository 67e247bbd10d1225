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

pub(super) async fn metrics(State(state): State<ApiState>) -> Response {
    record_current(&state);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        crate::metrics::render(),
    )
        .into_response()
}

/// Gauges of what is true now (paces, runs in progress, the replica
/// role), read from the state at each scrape rather than kept in step.
fn record_current(state: &ApiState) {
    for (host, pace) in state.integrations.paces() {
        crate::metrics::record_concurrency(&host, pace.concurrency, pace.in_flight);
        crate::metrics::record_integration(
            &host,
            pace.pace_per_second,
            pace.blocked,
            pace.answered,
            pace.rate_limited,
        );
        crate::metrics::record_integration_budget(
            &host,
            pace.share,
            pace.ceiling_per_second,
            pace.refill_per_second,
            pace.used_per_second,
        );
    }
    for runner in state.scheduler.runners() {
        let progress =
            runner
                .progress()
                .map_or_else(Default::default, |p| crate::metrics::RunProgress {
                    listed: p.listed,
                    unchanged: p.unchanged,
                    to_read: p.to_read,
                    read: p.read,
                    remaining: p.remaining,
                    reads_per_second: p.reads_per_second,
                });
        crate::metrics::record_run_progress(runner.id(), runner.in_progress(), progress);
    }
    match &state.replica {
        Some(replica) => replica.record_metrics(),
        None => crate::metrics::record_standalone(),
    }
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
