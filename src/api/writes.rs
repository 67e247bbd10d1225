//! Write routes. Each one's permissions are stated once, where the router
//! mounts it ([`write`]); that one statement marks it as a write in the
//! OpenAPI document, checks the caller's token ([`guard`]) and, on a
//! follower replica, hands the request to the leader ([`super::forward`]).
//! A route mounted without it is a read: a follower serves it itself.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use utoipa::openapi::security::SecurityRequirement;
use utoipa_axum::router::UtoipaMethodRouter;

use super::error::ApiError;
use super::forward;
use super::state::{ApiState, Req};
use crate::config::{Denied, WritePermission};

/// The security scheme of the OpenAPI document that write routes name.
pub(super) const SCHEME: &str = "externalAccess";

/// What guards a write route with its permissions: the check and the
/// forwarding in production, nothing when only the document is wanted.
pub(super) type Guard<'a> =
    &'a dyn Fn(&'static [WritePermission], MethodRouter<ApiState>) -> MethodRouter<ApiState>;

/// Mounts `route` as a write needing `permissions` (none for a webhook,
/// checked by its signature): guarded, and documented as taking a bearer
/// token when `backend.auth.externalAccess` is set.
pub(super) fn write(
    guard: Guard<'_>,
    permissions: &'static [WritePermission],
    (schemas, mut paths, method_router): UtoipaMethodRouter<ApiState>,
) -> UtoipaMethodRouter<ApiState> {
    for item in paths.paths.values_mut() {
        let operations = [
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            operation.security = Some(vec![
                SecurityRequirement::new(SCHEME, Vec::<String>::new()),
                SecurityRequirement::default(),
            ]);
        }
    }
    (schemas, paths, guard(permissions, method_router))
}

/// The production [`Guard`]: [`guard`] in front of the route's handlers
/// (not its 405 fallback).
pub(super) fn guarded(
    state: &ApiState,
    permissions: &'static [WritePermission],
    route: MethodRouter<ApiState>,
) -> MethodRouter<ApiState> {
    let write = Write {
        state: state.clone(),
        permissions,
    };
    route.route_layer(middleware::from_fn_with_state(write, guard))
}

/// A write route's permissions, with the state to check them against.
#[derive(Clone)]
struct Write {
    state: ApiState,
    permissions: &'static [WritePermission],
}

/// Checks the caller's token for each permission (a request a follower
/// handed over is checked again here, by the digest of its token: the
/// leader's configuration decides), then carries the write out here, or,
/// on a follower, has the leader carry it out.
async fn guard(State(write): State<Write>, req: Req, request: Request, next: Next) -> Response {
    for permission in write.permissions {
        if let Err(err) = authorize(&write.state, &req, request.headers(), *permission) {
            return err.into_response();
        }
    }
    match write.state.replica.as_ref().filter(|r| !r.is_leader()) {
        Some(replica) => forward::to_leader(&write.state, replica, &req, request).await,
        None => next.run(request).await,
    }
}

/// Checks the caller's `Authorization: Bearer` token for a write: 401
/// without a known token (always, when neither `backend.auth.externalAccess`
/// nor `dangerouslyDisableDefaultAuthPolicy` is set), 403 when its
/// `accessRestrictions` do not grant `permission`.
/// The token never reaches a log; the subject does.
fn authorize(
    state: &ApiState,
    req: &Req,
    headers: &HeaderMap,
    permission: WritePermission,
) -> Result<(), ApiError> {
    let (decided, shown) = if req.forwarded {
        let digest = headers
            .get(forward::TOKEN_DIGEST)
            .and_then(|v| v.to_str().ok());
        (
            state.access.authorize_digest(digest, permission),
            digest.is_some(),
        )
    } else {
        let presented = super::request::bearer(headers);
        (
            state.access.authorize(presented, permission),
            presented.is_some(),
        )
    };
    match decided {
        Ok(subject) => {
            if let Some(subject) = subject {
                tracing::info!(subject, permission = permission.name(), method = %req.method, path = req.uri.path(), forwarded = req.forwarded, "authorized write");
            }
            Ok(())
        }
        Err(Denied::Unauthenticated) => Err(req.error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            if shown {
                "Illegal token: it is not one of backend.auth.externalAccess"
            } else {
                "Missing credentials: send Authorization: Bearer <token> (backend.auth.externalAccess)"
            },
        )),
        Err(Denied::NoPolicy) => Err(req.error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            "Missing credentials: writes need a token and none is configured; set backend.auth.externalAccess (type: static), or open writes to anyone with backend.auth.dangerouslyDisableDefaultAuthPolicy: true",
        )),
        Err(Denied::Forbidden) => Err(req.error(
            StatusCode::FORBIDDEN,
            "NotAllowedError",
            format!(
                "this token's accessRestrictions do not grant {}",
                permission.name()
            ),
        )),
    }
}
