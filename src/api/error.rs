//! Backstage's error body:
//! `{"error": {"name", "message"}, "request": {"method", "url"}, "response": {"statusCode"}}`.

use axum::Json;
use axum::extract::Request;
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The most of a framework error's text body kept as the message.
const MAX_REWRITTEN_MESSAGE: usize = 1024;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    name: &'static str,
    message: String,
    method: String,
    url: String,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        name: &'static str,
        message: String,
        method: &Method,
        uri: &Uri,
    ) -> Self {
        Self {
            status,
            name,
            message,
            method: method.to_string(),
            url: uri.to_string(),
        }
    }

    pub fn not_found(message: String, method: &Method, uri: &Uri) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFoundError", message, method, uri)
    }

    /// A bad parameter or body: 400 `InputError`.
    pub fn input(message: impl Into<String>, method: &Method, uri: &Uri) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InputError",
            message.into(),
            method,
            uri,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {"name": self.name, "message": self.message},
            "request": {"method": self.method, "url": self.url},
            "response": {"statusCode": self.status.as_u16()},
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Rewrites error answers that axum produces itself (extractor rejections
/// such as 413 for a body over the limit, 400 for a path that is not UTF-8,
/// 405) into Backstage's error shape; our own JSON errors pass untouched.
pub async fn backstage_shape(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    // A 405 says which methods there are; clients rely on it.
    let allow = response.headers().get(header::ALLOW).cloned();
    let text = axum::body::to_bytes(response.into_body(), MAX_REWRITTEN_MESSAGE)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let name = match status {
        StatusCode::BAD_REQUEST => "InputError",
        StatusCode::NOT_FOUND => "NotFoundError",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowedError",
        StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLargeError",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaTypeError",
        _ => "Error",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut rewritten = ApiError::new(status, name, message, &method, &uri).into_response();
    if let Some(allow) = allow {
        rewritten.headers_mut().insert(header::ALLOW, allow);
    }
    rewritten
}
