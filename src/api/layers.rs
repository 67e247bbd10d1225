//! What wraps every route: the request's span (continuing a caller's W3C
//! `traceparent`), a deadline on the whole request body, the latency
//! metric, and the 404 of an unknown route.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use super::state::Req;

/// The longest a client may take to send a whole body: a slow body would
/// otherwise hold a connection (and its descriptor) for as long as it
/// trickles.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The span of one request: method and path only (never the query string
/// or a header, which may carry credentials), a child of the caller's
/// trace when it sent `traceparent`. Debug level: the request log has its
/// own lines; the traces see it.
pub(super) fn request_span(request: &Request) -> tracing::Span {
    let span = tracing::debug_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
        otel.name = %request.method(),
        otel.kind = "server",
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    crate::telemetry::continue_remote_trace(&span, request.headers());
    span
}

/// Bounds the whole request body in time (tower-http's body timeout
/// restarts at every frame, so a trickle would never end).
pub(super) async fn body_deadline(request: Request) -> Request {
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

pub(super) async fn record_latency(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("http.route", route.as_str());
        crate::telemetry::rename(&span, format!("{method} {route}"));
        span.record("http.response.status_code", response.status().as_u16());
    }
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

pub(super) async fn not_found(req: Req) -> ApiError {
    let message = format!("No route for {} {}", req.method, req.uri.path());
    req.not_found(message)
}
