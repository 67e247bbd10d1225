//! The simulator's own endpoints under `/__sim`: never delayed, limited,
//! failed, authenticated or counted.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::config::Behaviour;
use crate::respond::json;
use crate::state::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/__sim/stats", get(stats))
        .route("/__sim/stats/reset", post(reset_stats))
        .route("/__sim/dataset", get(dataset))
        .route("/__sim/dataset/repos", get(dataset_repos))
        .route("/__sim/behaviour", get(behaviour).put(set_behaviour))
}

async fn stats(State(state): State<Arc<AppState>>) -> Response {
    json(StatusCode::OK, json!(state.stats.snapshot()))
}

async fn reset_stats(State(state): State<Arc<AppState>>) -> Response {
    state.stats.reset();
    StatusCode::NO_CONTENT.into_response()
}

async fn dataset(State(state): State<Arc<AppState>>) -> Response {
    let d = &state.dataset;
    json(
        StatusCode::OK,
        json!({
            "seed": d.seed,
            "config": d.config,
            "summary": d.summary(),
            "cloudWorkspace": d.cloud.slug,
        }),
    )
}

/// Every repository with its expected entity refs (file contents left out).
async fn dataset_repos(State(state): State<Arc<AppState>>) -> Response {
    let d = &state.dataset;
    let server: Vec<_> = d.server_repos().collect();
    json(
        StatusCode::OK,
        json!({"server": server, "cloud": d.cloud.repos}),
    )
}

async fn behaviour(State(state): State<Arc<AppState>>) -> Response {
    json(StatusCode::OK, json!(state.behaviour()))
}

async fn set_behaviour(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let parsed: Behaviour = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(err) => {
            return json(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("invalid behaviour JSON: {err}")}),
            );
        }
    };
    if let Err(err) = parsed.validate() {
        return json(StatusCode::BAD_REQUEST, json!({"error": err.to_string()}));
    }
    state.set_behaviour(parsed);
    json(StatusCode::OK, json!(state.behaviour()))
}
