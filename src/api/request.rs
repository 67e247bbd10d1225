//! The request as handlers see it: its line for Backstage's error body
//! ([`Req`]), whether the leader replays it for a follower
//! ([`Forwarded`]), and its bearer token.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};

use super::error::ApiError;

/// Marks a request the leader replays for a follower, which has checked
/// its token already (an extension: a client cannot set it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forwarded;

/// The client's address, set by the server on each request (an
/// extension: a client cannot set it), from which [`Caller`] is found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub Option<IpAddr>);

impl Peer {
    pub(crate) fn of(stream: &tokio::net::TcpStream) -> Self {
        Self(stream.peer_addr().ok().map(|addr| addr.ip()))
    }
}

/// Who a request is from (an extension set by [`super::caller::identify`]: a client
/// cannot set it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Caller {
    /// The subject of a `backend.auth.externalAccess` token it presented.
    Subject(Arc<str>),
    /// The client's address.
    Address(IpAddr),
    /// Not known (e.g. a request the leader replays for a follower).
    Unknown,
}

impl From<Option<IpAddr>> for Caller {
    fn from(address: Option<IpAddr>) -> Self {
        address.map_or(Self::Unknown, Self::Address)
    }
}

/// The request line, for Backstage's error body, and who sent it.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub method: Method,
    pub uri: Uri,
    /// Replayed for a follower, which checked the caller's token.
    pub forwarded: bool,
    /// Who it is from, for fairness and paces (see [`super::caller`]).
    pub caller: Caller,
}

impl Req {
    /// A bad parameter or body: 400 `InputError`.
    pub(crate) fn input(&self, message: impl Into<String>) -> ApiError {
        self.error(StatusCode::BAD_REQUEST, "InputError", message)
    }

    pub(crate) fn not_found(&self, message: impl Into<String>) -> ApiError {
        self.error(StatusCode::NOT_FOUND, "NotFoundError", message)
    }

    pub(crate) fn error(
        &self,
        status: StatusCode,
        name: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError::new(status, name, message.into(), &self.method, &self.uri)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Req {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let uri = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or_else(|| parts.uri.clone(), |original| original.0.clone());
        let peer = parts.extensions.get::<Peer>().and_then(|peer| peer.0);
        Ok(Self {
            method: parts.method.clone(),
            uri,
            forwarded: parts.extensions.get::<Forwarded>().is_some(),
            caller: parts
                .extensions
                .get::<Caller>()
                .cloned()
                .unwrap_or_else(|| Caller::from(peer)),
        })
    }
}

/// The `Authorization: Bearer` token, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
}
