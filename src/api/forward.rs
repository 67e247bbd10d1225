//! Writes on a follower: checked by [`super::writes`] (token and
//! permission; a webhook by its signature, here), then carried out by the
//! leader through the database (see [`crate::replica::requests`]), which
//! checks the token again against its own configuration by its digest
//! ([`TOKEN_DIGEST`]); the caller gets the leader's answer, or a `503` with
//! `Retry-After` when no leader takes the request in time or too many wait.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::Unavailable;
use super::state::{ApiState, Forwarded, MAX_BODY_BYTES, Req};
use crate::replica::Replica;
use crate::replica::requests::{CLAIM_TIMEOUT, ForwardedAnswer, ForwardedRequest, Forwarding};

/// The header a follower records for the leader instead of the caller's
/// token: its SHA-256 (see [`crate::config::token_digest`]).
pub(crate) const TOKEN_DIGEST: &str = "x-catalogd-token-sha256";

/// The largest answer recorded for a follower (a registration lists its
/// entities).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Headers of the leader's answer not copied into this one: those
/// describing a connection, and credentials. (What reaches the leader is
/// the allow-list `Replica::forward` records.)
const DROPPED: &[HeaderName] = &[
    header::AUTHORIZATION,
    header::COOKIE,
    header::HOST,
    header::CONTENT_LENGTH,
    header::CONNECTION,
    header::TRANSFER_ENCODING,
];

/// Has the leader carry out `request`, a write this follower has checked
/// (see [`super::writes`]), and answers with the leader's answer.
pub(super) async fn to_leader(
    state: &ApiState,
    replica: &Replica,
    req: &Req,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = if req.uri.path().starts_with("/api/events/http/") {
        super::events::verified_on_follower(state, req, &parts.headers, body).await
    } else {
        axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                req.error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PayloadTooLargeError",
                    format!(
                        "the request body is over {MAX_BODY_BYTES} bytes or was not sent in time"
                    ),
                )
            })
    };
    let body = match body {
        Ok(body) => body,
        Err(err) => return err.into_response(),
    };
    let mut headers = text_headers(&parts.headers);
    // Only this replica says what token the caller showed.
    headers.retain(|(name, _)| name != TOKEN_DIGEST);
    if let Some(token) = super::request::bearer(&parts.headers) {
        headers.push((TOKEN_DIGEST.to_owned(), crate::config::token_digest(token)));
    }
    let forwarded = ForwardedRequest {
        method: parts.method.as_str().to_owned(),
        uri: req.uri.to_string(),
        headers,
        body: body.to_vec(),
    };
    match replica.forward(&forwarded, replica.answer_timeout()).await {
        Ok(Forwarding::Answered(answer)) => response_of(answer),
        Ok(Forwarding::Full) => no_leader(
            "too many writes are waiting for the leading replica; nothing was done, try again",
        ),
        Ok(Forwarding::Unclaimed) => no_leader(
            "no leading replica took this write in time (one is taking over); nothing was done, try again",
        ),
        Ok(Forwarding::Abandoned) => no_leader(
            "the leading replica stopped (or did not answer in time) while carrying out this write; it may have been applied: check, then try again",
        ),
        Err(err) => {
            tracing::error!(error = %err, "cannot hand a write to the leader");
            no_leader(
                "this replica cannot reach the database to hand the write to the leader; try again",
            )
        }
    }
}

/// The headers whose values are text, as recorded in the database.
fn text_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

/// Completed with the request line by [`super::error::backstage_shape`].
fn no_leader(message: &str) -> Response {
    let mut response = Unavailable(message.to_owned()).into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(CLAIM_TIMEOUT.as_secs()),
    );
    response
}

fn response_of(answer: ForwardedAnswer) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) && !DROPPED.contains(&name)
        {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// Answers `request` as this (leading) replica's `router` does, for a follower.
pub(crate) async fn replay(router: axum::Router, request: ForwardedRequest) -> ForwardedAnswer {
    use hyper::service::Service;

    let failed = |message: &str| ForwardedAnswer {
        status: 500,
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::json!({"error": {"name": "Error", "message": message}})
            .to_string()
            .into_bytes(),
    };
    let mut builder = axum::http::Request::builder()
        .method(request.method.as_str())
        .uri(request.uri.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let Ok(mut http) = builder.body(Body::from(request.body)) else {
        return failed("the forwarded request could not be rebuilt");
    };
    http.extensions_mut().insert(Forwarded);
    let service = hyper_util::service::TowerToHyperService::new(router);
    let Ok(response) = service.call(http).await;
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_ANSWER_BYTES).await else {
        return failed("the answer was too large to hand back; see the leader's log");
    };
    ForwardedAnswer {
        status: parts.status.as_u16(),
        headers: text_headers(&parts.headers),
        body: body.to_vec(),
    }
}
