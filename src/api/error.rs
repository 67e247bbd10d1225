//! Backstage's error body:
//! `{"error": {"name", "message"}, "request": {"method", "url"}, "response": {"statusCode"}}`.

use axum::Json;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

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
