//! Who a request is from, for the query pool's fairness and the paces of
//! requests that read Bitbucket: the subject of a known token when one is
//! presented, else the client's address. That address is the connection's
//! peer, or, when the peer is one of `backend.trustedProxies`, the one its
//! `X-Forwarded-For` names (a sidecar behind an ingress otherwise sees
//! every client as the ingress). An unknown token counts as no token, so
//! inventing tokens does not make a client many callers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use super::request::{Caller, Peer, bearer};
use super::state::ApiState;
use crate::config::{ExternalAccess, TrustedProxies};

/// Hops of `X-Forwarded-For` walked back at most.
const MAX_HOPS: usize = 32;

/// Middleware: records the request's [`Caller`].
pub(super) async fn identify(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request.extensions().get::<Peer>().and_then(|peer| peer.0);
    let caller = of(
        &state.access,
        &state.trusted_proxies,
        peer,
        request.headers(),
    );
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The caller of a request from `peer` with `headers`.
pub(crate) fn of(
    access: &ExternalAccess,
    trusted: &TrustedProxies,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
) -> Caller {
    if let Some(subject) = bearer(headers).and_then(|token| access.subject_of(token)) {
        return Caller::Subject(Arc::from(subject));
    }
    Caller::from(peer.map(|peer| client_address(peer, headers, trusted)))
}

/// The client's address: `peer`, or, from a trusted proxy, the last
/// `X-Forwarded-For` hop that is not itself a trusted proxy (hops are
/// appended by each proxy, so those left of it are the client's to write).
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev().take(MAX_HOPS) {
        // An unreadable hop: the proxy that added it is the client we know.
        let Some(address) = parse_hop(hop) else {
            break;
        };
        client = address;
        if !trusted.contains(address) {
            break;
        }
    }
    client
}

/// One hop: an address, possibly with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|address| address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn trusted(ranges: &[&str]) -> TrustedProxies {
        TrustedProxies::new(ranges.iter().map(|r| r.parse().unwrap()).collect())
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_honoured_only_from_trusted_proxies() {
        let proxies = trusted(&["10.0.0.0/8", "fd00::1/128"]);
        let headers = forwarded(&["203.0.113.9, 198.51.100.7", "10.1.1.1"]);
        // From a trusted proxy: the nearest untrusted hop.
        assert_eq!(
            client_address(ip("10.0.0.2"), &headers, &proxies),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(ip("fd00::1"), &headers, &proxies),
            ip("198.51.100.7")
        );
        // From anyone else: the header is the client's to write.
        assert_eq!(
            client_address(ip("192.0.2.1"), &headers, &proxies),
            ip("192.0.2.1")
        );
        // Nothing trusted: never honoured.
        assert_eq!(
            client_address(ip("10.0.0.2"), &headers, &TrustedProxies::default()),
            ip("10.0.0.2")
        );
        // No header, or an unreadable hop: the proxy itself.
        assert_eq!(
            client_address(ip("10.0.0.2"), &HeaderMap::new(), &proxies),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &forwarded(&["1.2.3.4, junk"]), &proxies),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &forwarded(&["[2001:db8::5]:443"]), &proxies),
            ip("2001:db8::5")
        );
    }
}
