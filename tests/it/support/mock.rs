//! What the two wiremock fakes share.

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockBuilder, MockServer};

/// A `GET path` mock that, when `authorization` is set, requires exactly that
/// `Authorization` header (so a request without it gets wiremock's 404).
pub(super) fn get(authorization: Option<&str>, p: String) -> MockBuilder {
    let builder = Mock::given(method("GET")).and(path(p));
    match authorization {
        Some(value) => builder.and(header("authorization", value)),
        None => builder,
    }
}

/// How many requests reached `server` whose path ends with `suffix`.
pub(super) async fn requests_to(server: &MockServer, suffix: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().ends_with(suffix))
        .count()
}
