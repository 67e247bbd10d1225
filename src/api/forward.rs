//! Writes on a follower: checked here (token and permission, as the leader
//! would), then carried out by the leader through the database (see
//! [`crate::replica::requests`]); the caller gets the leader's answer, or a
//! `503` with `Retry-After` when no leader takes the request in time.

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::Unavailable;
use super::{ApiState, MAX_BODY_BYTES, Req};
use crate::config::WritePermission;
use crate::replica::requests::{CLAIM_TIMEOUT, ForwardedAnswer, ForwardedRequest, Forwarding};

/// Marks a request the leader replays for a follower, which has checked
/// its token already (an extension: a client cannot set it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forwarded;

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

/// Which requests the leader carries out, and the permissions each needs
/// (none here for a webhook, checked by its signature on the leader). The
/// leader trusts a forwarded request's authorization, so they are checked
/// here. `None`: served here.
fn write_of(method: &Method, route: &str) -> Option<&'static [WritePermission]> {
    use WritePermission::*;
    match (method.as_str(), route) {
        (
            "POST",
            "/api/catalog/locations"
            | "/api/catalog/analyze-location"
            | "/api/catalog/validate-entity",
        ) => Some(&[LocationCreate]),
        ("PUT", "/api/catalog/locations/{id}") => Some(&[LocationCreate, LocationDelete]),
        ("DELETE", "/api/catalog/locations/{id}") => Some(&[LocationDelete]),
        ("DELETE", "/api/catalog/entities/by-uid/{uid}") => Some(&[EntityDelete]),
        ("POST", "/api/catalog/providers/{id}/refresh" | "/api/catalog/refresh") => {
            Some(&[EntityRefresh])
        }
        ("POST", "/api/events/http/{topic}") => Some(&[]),
        _ => None,
    }
}

pub(crate) async fn forward_writes(
    State(state): State<ApiState>,
    req: Req,
    request: Request,
    next: Next,
) -> Response {
    let Some(replica) = state.replica.as_ref().filter(|r| !r.is_leader()) else {
        return next.run(request).await;
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let Some(permissions) = write_of(request.method(), &route) else {
        return next.run(request).await;
    };
    for permission in permissions {
        if let Err(err) = req.authorize(&state, request.headers(), *permission) {
            return err.into_response();
        }
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return req
                .error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PayloadTooLargeError",
                    format!(
                        "the request body is over {MAX_BODY_BYTES} bytes or was not sent in time"
                    ),
                )
                .into_response();
        }
    };
    let forwarded = ForwardedRequest {
        method: parts.method.as_str().to_owned(),
        uri: req.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect(),
        body: body.to_vec(),
    };
    match replica.forward(&forwarded, replica.answer_timeout()).await {
        Ok(Forwarding::Answered(answer)) => response_of(answer),
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
        headers: parts
            .headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect(),
        body: body.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new write endpoint that is not forwarded would be carried out by
    /// followers themselves: every non-GET operation of the API document is
    /// either forwarded or a query that only reads memory.
    #[test]
    fn every_write_operation_is_forwarded_to_the_leader() {
        const READS: [&str; 4] = [
            "POST /api/catalog/entities/by-query",
            "POST /api/catalog/entities/by-refs",
            "POST /api/catalog/entity-facets",
            "POST /api/catalog/locations/by-query",
        ];
        let document = crate::api::openapi::build();
        let paths = document["paths"].as_object().expect("paths");
        let mut checked = 0;
        for (path, operations) in paths {
            let route = format!("/api/catalog{path}");
            for method in operations.as_object().expect("operations").keys() {
                let method = method.to_uppercase();
                if method == "GET" || READS.contains(&format!("{method} {route}").as_str()) {
                    continue;
                }
                let parsed = Method::from_bytes(method.as_bytes()).expect("method");
                assert!(
                    write_of(&parsed, &route).is_some(),
                    "{method} {route} is not forwarded to the leader"
                );
                checked += 1;
            }
        }
        assert!(checked >= 8, "only {checked} write operations found");
        assert!(write_of(&Method::POST, "/api/events/http/{topic}").is_some());
    }
}
