//! Response helpers in each product's own error dialect, and query parsing
//! that never fails.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Query pairs, percent-decoded; malformed encodings decode lossily rather
/// than failing, as Bitbucket's servlet container does.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        Self(
            raw.map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default(),
        )
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

pub(crate) fn json(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

pub(crate) fn text(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// An error answer in the dialect of the API it belongs to.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// Bitbucket Server's `{"errors": [{context, message, exceptionName}]}`.
    Server {
        status: StatusCode,
        message: String,
        exception: Option<&'static str>,
    },
    /// Bitbucket Cloud's `{"type": "error", "error": {"message"}}`.
    Cloud { status: StatusCode, message: String },
}

impl ApiError {
    pub(crate) fn server(
        status: StatusCode,
        message: impl Into<String>,
        exception: Option<&'static str>,
    ) -> Self {
        Self::Server {
            status,
            message: message.into(),
            exception,
        }
    }

    pub(crate) fn cloud(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Cloud {
            status,
            message: message.into(),
        }
    }

    /// The dialect of whichever API `path` belongs to.
    pub(crate) fn for_path(path: &str, status: StatusCode, message: impl Into<String>) -> Self {
        if path.starts_with("/2.0") {
            Self::cloud(status, message)
        } else {
            Self::server(status, message, None)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Server {
                status,
                message,
                exception,
            } => json(
                status,
                json!({"errors": [{"context": null, "message": message, "exceptionName": exception}]}),
            ),
            ApiError::Cloud { status, message } => json(
                status,
                json!({"type": "error", "error": {"message": message}}),
            ),
        }
    }
}

/// Answers unknown paths like the product would: a JSON 404.
pub(crate) async fn fallback(uri: axum::http::Uri) -> ApiError {
    ApiError::for_path(
        uri.path(),
        StatusCode::NOT_FOUND,
        format!("No resource found at {}", uri.path()),
    )
}
