//! What happens to every API request before and after its handler:
//! latency, authentication, the token bucket, fault injection and counting.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, stream};
use tokio::sync::Notify;

use crate::respond::ApiError;
use crate::state::{AppState, Fault};
use crate::stats::{EndpointKind, Outcome, classify};

/// Long enough for hyper to write what it has before a body error.
const FLUSH_PAUSE: Duration = Duration::from_millis(20);

/// Put into each request's extensions by the connection task: notifying it
/// drops the connection with an RST and no response.
#[derive(Clone)]
pub(crate) struct ConnAbort(pub(crate) Arc<Notify>);

pub(crate) async fn pipeline(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let Some(kind) = classify(&path) else {
        return next.run(request).await;
    };
    let key = format!(
        "{} {}",
        request.method(),
        request
            .uri()
            .path_and_query()
            .map_or(path.as_str(), |pq| pq.as_str())
    );
    let behaviour = state.behaviour();
    let in_flight = state.stats.enter();
    let latency = behaviour.latency
        + behaviour
            .latency_per_in_flight
            .saturating_mul(u32::try_from(in_flight.now).unwrap_or(u32::MAX));
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if !state.authorized(authorization.as_deref()) {
        let response = unauthorized(&path);
        return finish(&state, &key, kind, response, Fault::None, &behaviour).await;
    }

    if let Some(limit) = &behaviour.rate_limit {
        // Data Center keeps one bucket per user; the credential stands for the user.
        let identity = authorization.as_deref().unwrap_or("anonymous");
        if let Err(retry_after) = state.take_token(limit, identity) {
            let response = too_many_requests(&path, retry_after);
            return finish(&state, &key, kind, response, Fault::None, &behaviour).await;
        }
    }

    match state.roll_fault(&behaviour, &key) {
        Fault::ServerError(code) => {
            state.stats.server_error_injected();
            let response = injected_server_error(&path, code);
            finish(&state, &key, kind, response, Fault::None, &behaviour).await
        }
        Fault::Reset => {
            state.stats.record(&key, kind, Outcome::Reset, 0);
            if let Some(abort) = request.extensions().get::<ConnAbort>() {
                abort.0.notify_one();
                // The connection task drops this future along with the connection.
                std::future::pending::<()>().await;
            }
            // Served without our connection loop (e.g. a bare tower call):
            // a body that fails at once is the nearest thing to a reset.
            Response::new(Body::from_stream(stream::once(async {
                Err::<Bytes, io::Error>(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "injected connection reset",
                ))
            })))
        }
        fault => {
            let response = next.run(request).await;
            finish(&state, &key, kind, response, fault, &behaviour).await
        }
    }
}

/// Counts the answer and applies body faults (truncation, slowness).
async fn finish(
    state: &AppState,
    key: &str,
    kind: EndpointKind,
    response: Response,
    fault: Fault,
    behaviour: &crate::config::Behaviour,
) -> Response {
    let (mut parts, body) = response.into_parts();
    // Our handlers build bodies in memory, so collecting cannot be large or fail
    // in practice; if it ever did, an empty body is still a well-formed answer.
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let status = parts.status.as_u16();
    let full_len = bytes.len();
    match fault {
        Fault::Truncate => {
            let kept = full_len / 2;
            state
                .stats
                .record(key, kind, Outcome::Truncated, kept as u64);
            // Promise the whole body (at least one byte), deliver half, then fail:
            // the client sees a body that ends early.
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(full_len.max(1)));
            let head = bytes.slice(..kept);
            let chunks = stream::iter([Ok(head)]).chain(stream::once(async {
                // Pause so hyper flushes the headers and the first half before
                // the error makes it drop the connection.
                tokio::time::sleep(FLUSH_PAUSE).await;
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "injected truncation",
                ))
            }));
            Response::from_parts(parts, Body::from_stream(chunks))
        }
        Fault::Slow => {
            state.stats.slow_injected();
            state
                .stats
                .record(key, kind, Outcome::Status(status), full_len as u64);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(full_len));
            Response::from_parts(parts, slow_body(bytes, behaviour.faults.slow_body))
        }
        Fault::None | Fault::ServerError(_) | Fault::Reset => {
            state
                .stats
                .record(key, kind, Outcome::Status(status), full_len as u64);
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}

/// The body in (at most) ten pieces spread over `total`.
fn slow_body(bytes: Bytes, total: Duration) -> Body {
    const PIECES: usize = 10;
    let piece = bytes.len().div_ceil(PIECES).max(1);
    let pause = total / PIECES as u32;
    let chunks = stream::unfold((bytes, true), move |(rest, first)| async move {
        if rest.is_empty() {
            return None;
        }
        if !first {
            tokio::time::sleep(pause).await;
        }
        let take = piece.min(rest.len());
        let head = rest.slice(..take);
        let tail = rest.slice(take..);
        Some((Ok::<Bytes, io::Error>(head), (tail, false)))
    });
    Body::from_stream(chunks)
}

fn unauthorized(path: &str) -> Response {
    let error = if path.starts_with("/2.0") {
        ApiError::cloud(StatusCode::UNAUTHORIZED, "Unauthorized")
    } else {
        ApiError::server(
            StatusCode::UNAUTHORIZED,
            "Authentication failed. Please check your credentials and try again.",
            Some("com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException"),
        )
    };
    let mut response = error.into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Bitbucket\""),
    );
    response
}

fn too_many_requests(path: &str, retry_after: u64) -> Response {
    let mut response = ApiError::for_path(
        path,
        StatusCode::TOO_MANY_REQUESTS,
        format!("Rate limit exceeded. Retry after {retry_after} seconds."),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

fn injected_server_error(path: &str, code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        ApiError::for_path(
            path,
            status,
            "An unexpected error occurred (injected by bitbucket-sim).",
        )
        .into_response()
    } else {
        // 502/503 usually come from a proxy in front: HTML, not JSON.
        let reason = status.canonical_reason().unwrap_or("Error");
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            format!(
                "<html><head><title>{code} {reason}</title></head><body><h1>{code} {reason}</h1></body></html>\n"
            ),
        )
            .into_response()
    }
}
