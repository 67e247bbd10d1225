//! Backstage's error body:
//! `{"error": {"name", "message"}, "request": {"method", "url"}, "response": {"statusCode"}}`,
//! and how domain errors become one ([`HttpError`]).

use axum::Json;
use axum::extract::Request;
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::locations::{LocationQueryError, RegisterError, RemoveError};

/// The most of a framework error's text body kept as the message.
const MAX_REWRITTEN_MESSAGE: usize = 1024;

#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    name: &'static str,
    message: String,
    /// The request line; `None` for an error converted from a domain
    /// error, which [`backstage_shape`] completes.
    request: Option<(String, String)>,
}

/// A domain error's place in HTTP: its status (a bad parameter or body by
/// default), which names it as Backstage does. The message is its `Display`.
pub(crate) trait HttpError: std::error::Error {
    fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    /// Logs what the operator must see (a failing store); the caller only
    /// gets the message.
    fn report(&self) {}
}

impl<E: HttpError> From<E> for ApiError {
    fn from(err: E) -> Self {
        err.report();
        Self {
            status: err.status(),
            name: backstage_name(err.status()),
            message: err.to_string(),
            request: None,
        }
    }
}

/// `IntoResponse` for domain errors, through [`HttpError`].
macro_rules! http_errors {
    ($($error:ty),* $(,)?) => {$(
        impl IntoResponse for $error {
            fn into_response(self) -> Response {
                ApiError::from(self).into_response()
            }
        }
    )*};
}

/// What [`backstage_shape`] needs to complete an error raised without its
/// request line.
#[derive(Debug, Clone)]
struct Incomplete {
    name: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(
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
            request: Some((method.to_string(), uri.to_string())),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (method, url) = self.request.clone().unwrap_or_default();
        let body = json!({
            "error": {"name": self.name, "message": self.message},
            "request": {"method": method, "url": url},
            "response": {"statusCode": self.status.as_u16()},
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.request.is_none() {
            response.extensions_mut().insert(Incomplete {
                name: self.name,
                message: self.message,
            });
        }
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
/// 405) into Backstage's error shape, and completes our errors raised
/// without their request line; other JSON errors pass untouched.
pub(super) async fn backstage_shape(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let mut response = next.run(request).await;
    let status = response.status();
    if let Some(incomplete) = response.extensions_mut().remove::<Incomplete>() {
        let error = ApiError::new(status, incomplete.name, incomplete.message, &method, &uri);
        let (parts, _) = response.into_parts();
        let (_, body) = error.into_response().into_parts();
        return Response::from_parts(parts, body);
    }
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
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut rewritten =
        ApiError::new(status, backstage_name(status), message, &method, &uri).into_response();
    if let Some(allow) = allow {
        rewritten.headers_mut().insert(header::ALLOW, allow);
    }
    rewritten
}

/// What cannot be done now (503), e.g. a store or queue that is unavailable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Unavailable(pub(crate) String);

impl HttpError for Unavailable {
    fn status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

impl HttpError for super::params::ParamsError {}
impl HttpError for crate::catalog::query::QueryError {}
impl HttpError for crate::catalog::paging::PagingError {
    fn status(&self) -> StatusCode {
        match self {
            Self::OverBudget(err) => err.status(),
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A query stopped past its evaluation budget: the daemon declined the
/// work, as for any other limit on what it serves at once.
impl HttpError for crate::catalog::budget::OverBudget {
    fn status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }
}
impl HttpError for LocationQueryError {}

impl HttpError for RegisterError {
    fn status(&self) -> StatusCode {
        match self {
            RegisterError::Input(_) => StatusCode::BAD_REQUEST,
            RegisterError::Conflict(_) => StatusCode::CONFLICT,
            RegisterError::NotFound(_) => StatusCode::NOT_FOUND,
            RegisterError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            RegisterError::Full(_) => StatusCode::FORBIDDEN,
            RegisterError::TooFrequent(_) => StatusCode::TOO_MANY_REQUESTS,
            RegisterError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn report(&self) {
        if let RegisterError::Store(_) = self {
            tracing::error!(error = %self, "changing a location failed");
        }
    }
}

impl HttpError for RemoveError {
    fn status(&self) -> StatusCode {
        match self {
            RemoveError::NotFound(_) => StatusCode::NOT_FOUND,
            RemoveError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn report(&self) {
        if let RemoveError::Store(_) = self {
            tracing::error!(error = %self, "removing a location failed");
        }
    }
}

/// Backstage's error name for a status our domain errors, or axum's own
/// rejections, answer with.
fn backstage_name(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "InputError",
        StatusCode::NOT_FOUND => "NotFoundError",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowedError",
        StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLargeError",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaTypeError",
        StatusCode::CONFLICT => "ConflictError",
        StatusCode::FORBIDDEN => "NotAllowedError",
        StatusCode::TOO_MANY_REQUESTS => "TooManyRequestsError",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailableError",
        _ => "Error",
    }
}

http_errors!(
    super::params::ParamsError,
    crate::catalog::query::QueryError,
    crate::catalog::paging::PagingError,
    LocationQueryError,
    RegisterError,
    RemoveError,
    Unavailable,
);
