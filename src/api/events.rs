//! Bitbucket's webhooks, at the routes Backstage's events backend uses
//! (`POST /api/events/http/{bitbucketServer,bitbucketCloud}`): verified,
//! answered `202` at once and read asynchronously.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;
use super::state::{ApiState, Req};
use crate::integrations::Product;
use crate::webhooks::{Accepted, Rejected};

/// Bodies over this are refused (413): Bitbucket's events are far smaller.
pub(super) const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// `POST /api/events/http/{topic}`: `bitbucketServer` or `bitbucketCloud`.
pub(super) async fn receive_topic(
    State(state): State<ApiState>,
    Path(topic): Path<String>,
    req: Req,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Ok(flavour) = topic.parse::<Product>() else {
        return Err(req.not_found(format!(
            "no event topic '{topic}': Bitbucket's webhooks go to /api/events/http/bitbucketServer or /api/events/http/bitbucketCloud"
        )));
    };
    receive(&state, flavour, &req, &headers, body).await
}

async fn receive(
    state: &ApiState,
    flavour: Product,
    req: &Req,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let too_large = || {
        crate::metrics::record_event_outcome(flavour.topic(), "unknown", "rejected");
        req.error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeError",
            format!("the event body is over {MAX_EVENT_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_EVENT_BYTES as u64) {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, MAX_EVENT_BYTES)
        .await
        .map_err(|err| {
            let over = std::error::Error::source(&err)
                .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
            if over {
                too_large()
            } else {
                crate::metrics::record_event_outcome(flavour.topic(), "unknown", "rejected");
                req.input(format!("the event body could not be read: {err}"))
            }
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
        .map_err(|rejected| refused(req, rejected))?;
    Ok(match accepted {
        Accepted::Ping => (StatusCode::OK, Json(json!({"status": "ok"}))).into_response(),
        Accepted::Queued(_) | Accepted::Ignored(_) => {
            (StatusCode::ACCEPTED, Json(json!({"status": "accepted"}))).into_response()
        }
    })
}

fn refused(req: &Req, rejected: Rejected) -> ApiError {
    match rejected {
        Rejected::Unauthenticated(message) => req.error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            message.to_string(),
        ),
        Rejected::Invalid(message) => req.input(message.to_string()),
        rejected @ Rejected::NoIntegration(_) => req.not_found(rejected.to_string()),
    }
}

/// On a follower, before an event is handed to the leader: refused here
/// (as the leader would refuse it) unless signed by a configured secret
/// and well formed, so nothing forged or unsigned reaches the database.
/// Returns the event's body, read once.
pub(super) async fn verified_on_follower(
    state: &ApiState,
    req: &Req,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, ApiError> {
    let topic = req.uri.path().rsplit('/').next().unwrap_or_default();
    let Ok(flavour) = topic.parse::<Product>() else {
        return Err(req.not_found(format!(
            "no event topic '{topic}': Bitbucket's webhooks go to /api/events/http/bitbucketServer or /api/events/http/bitbucketCloud"
        )));
    };
    let body = axum::body::to_bytes(body, MAX_EVENT_BYTES)
        .await
        .map_err(|_| {
            req.error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLargeError",
                format!("the event body is over {MAX_EVENT_BYTES} bytes or was not sent in time"),
            )
        })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    state
        .webhooks
        .verify(
            flavour,
            header("x-event-key"),
            header("x-hub-signature"),
            &body,
        )
        .map_err(|rejected| {
            crate::metrics::record_event_outcome(flavour.topic(), "unknown", "rejected");
            refused(req, rejected)
        })?;
    Ok(body)
}
