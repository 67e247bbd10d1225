//! Bitbucket's webhooks, at the routes Backstage's events backend uses
//! (`POST /api/events/http/{bitbucketServer,bitbucketCloud}`): verified,
//! answered `202` at once and read asynchronously.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiError, ApiState, Req};
use crate::bitbucket::webhooks::EventFlavour;
use crate::webhooks::{Accepted, Rejected};

/// Bodies over this are refused (413): Bitbucket's events are far smaller.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

pub async fn bitbucket_server(
    State(state): State<ApiState>,
    req: Req,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    receive(&state, EventFlavour::Server, &req, &headers, body).await
}

pub async fn bitbucket_cloud(
    State(state): State<ApiState>,
    req: Req,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    receive(&state, EventFlavour::Cloud, &req, &headers, body).await
}

async fn receive(
    state: &ApiState,
    flavour: EventFlavour,
    req: &Req,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = axum::body::to_bytes(body, MAX_EVENT_BYTES)
        .await
        .map_err(|_| {
            crate::metrics::record_event_outcome(flavour.topic(), "unknown", "rejected");
            req.error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLargeError",
                format!("the event body is over {MAX_EVENT_BYTES} bytes or could not be read"),
            )
        })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let accepted = state
        .webhooks
        .receive(
            flavour,
            header("x-event-key"),
            header("x-hub-signature"),
            &body,
        )
        .map_err(|rejected| match rejected {
            Rejected::Unauthenticated(message) => {
                req.error(StatusCode::UNAUTHORIZED, "AuthenticationError", message)
            }
            Rejected::Invalid(message) => req.input(message),
            rejected @ Rejected::NoIntegration(_) => req.not_found(rejected.to_string()),
        })?;
    Ok(match accepted {
        Accepted::Ping => (StatusCode::OK, Json(json!({"status": "ok"}))).into_response(),
        Accepted::Queued(_) | Accepted::Ignored(_) => {
            (StatusCode::ACCEPTED, Json(json!({"status": "accepted"}))).into_response()
        }
    })
}
