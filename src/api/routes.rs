//! Every route, each mounted once: a catalog route through `routes!`, which
//! takes its path, method and document from the handler's
//! `#[utoipa::path]`; a write through [`write`] with its permissions.
//! Nothing else lists routes.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::{ApiState, MAX_BODY_BYTES};
use super::writes::{Guard, guarded, write};
use super::{
    caller, changes, classify, entities, error, events, layers, locations, openapi, ops, previews,
    providers, refresh, status_page, validate,
};
use crate::config::WritePermission::{EntityDelete, EntityRefresh, LocationCreate, LocationDelete};

pub(crate) fn router(state: ApiState) -> Router {
    let guard = |permissions, route| guarded(&state, permissions, route);
    let (routes, generated) = routes(&guard).split_for_parts();
    let document = Arc::new(openapi::document(generated));
    let document = move || async move { Json(document.as_ref()).into_response() };
    routes
        .route("/api/catalog/openapi.json", get(document))
        .fallback(layers::not_found)
        .route_layer(middleware::from_fn(layers::record_latency))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            caller::identify,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::map_request(layers::body_deadline))
        .layer(middleware::from_fn(error::backstage_shape))
        .layer(TraceLayer::new(classify::ProbesAreNotFailures).make_span_with(layers::request_span))
        .with_state(state)
}

/// The routes, with each write guarded by `guard`.
fn routes(guard: Guard<'_>) -> OpenApiRouter<ApiState> {
    let write = |permissions, route| write(guard, permissions, route);
    OpenApiRouter::new()
        .routes(routes!(entities::list))
        .routes(routes!(entities::query_get, entities::query_post))
        .routes(routes!(entities::by_refs))
        .routes(routes!(entities::by_name))
        .routes(routes!(entities::ancestry))
        .routes(routes!(entities::by_uid))
        .routes(write(&[EntityDelete], routes!(entities::delete_by_uid)))
        .routes(routes!(entities::facets, entities::facets_post))
        // Both read Bitbucket with the daemon's credentials, as registering does.
        .routes(write(&[LocationCreate], routes!(validate::validate_entity)))
        .routes(write(&[LocationCreate], routes!(locations::analyze)))
        .routes(routes!(locations::list))
        .routes(write(&[LocationCreate], routes!(locations::create)))
        .routes(routes!(locations::get_one))
        // It removes the old location's entities, as DELETE does.
        .routes(write(
            &[LocationCreate, LocationDelete],
            routes!(locations::update),
        ))
        .routes(write(&[LocationDelete], routes!(locations::delete)))
        .routes(routes!(locations::by_query))
        .routes(routes!(locations::by_entity))
        .routes(routes!(providers::list))
        .routes(routes!(providers::get_one))
        .routes(routes!(providers::errors))
        .routes(routes!(providers::repositories))
        .routes(write(&[EntityRefresh], routes!(providers::refresh)))
        .routes(write(&[EntityRefresh], routes!(refresh::refresh_entity)))
        .routes(routes!(changes::changes))
        .routes(routes!(previews::get_one))
        // Not in the catalog's document. A webhook is checked by its
        // signature, on the leader.
        .route(
            "/api/events/http/{topic}",
            guard(&[], post(events::receive_topic)),
        )
        .route("/api/catalog/replica", get(ops::replica))
        .route("/metrics", get(ops::metrics))
        .route("/", get(status_page::page))
        .route(status_page::STYLESHEET_PATH, get(status_page::stylesheet))
        .route(status_page::ICON_PATH, get(status_page::icon))
        .route(ops::LIVENESS, get(ops::liveness))
        .route(ops::READINESS, get(ops::readiness))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::config::WritePermission;

    /// A write mounted without its permissions would go unchecked, and a
    /// follower would carry it out itself: every operation of the document
    /// that is not a GET is mounted through `write` (which documents its
    /// token), or is a query that only reads memory.
    #[test]
    fn every_write_route_declares_its_permissions() {
        const READS: [&str; 4] = [
            "POST /entities/by-query",
            "POST /entities/by-refs",
            "POST /entity-facets",
            "POST /locations/by-query",
        ];
        let guarded: RefCell<Vec<&'static [WritePermission]>> = RefCell::default();
        let guard = |permissions, route| {
            guarded.borrow_mut().push(permissions);
            route
        };
        let (_, generated) = routes(&guard).split_for_parts();
        let document = openapi::document(generated);
        let mut writes = 0;
        for (path, operations) in document["paths"].as_object().expect("paths") {
            for (method, operation) in operations.as_object().expect("operations") {
                let method = method.to_uppercase();
                if method == "GET" || READS.contains(&format!("{method} {path}").as_str()) {
                    continue;
                }
                assert_eq!(
                    operation["security"],
                    serde_json::json!([{"externalAccess": []}, {}]),
                    "{method} {path} is not mounted as a write"
                );
                writes += 1;
            }
        }
        assert_eq!(writes, 8, "the catalog's writes");
        // Plus the webhooks, forwarded without a token.
        let guarded = guarded.into_inner();
        assert_eq!(guarded.len(), writes + 1);
        assert!(guarded.contains(&&[][..]));
    }

    /// Each documented path is served under the server URL, and names its
    /// parameters.
    #[test]
    fn the_document_describes_the_routes() {
        let (_, generated) = routes(&|_, route| route).split_for_parts();
        let document = openapi::document(generated);
        assert_eq!(document["openapi"], "3.0.3");
        let paths = document["paths"].as_object().expect("paths");
        assert_eq!(paths.len(), 21, "{:?}", paths.keys());
        for (path, operations) in paths {
            assert!(
                path.starts_with('/') && !path.starts_with("/api/"),
                "{path}"
            );
            let named = path.matches('{').count();
            for (method, operation) in operations.as_object().expect("operations") {
                let in_path = operation["parameters"]
                    .as_array()
                    .map_or(0, |p| p.iter().filter(|p| p["in"] == "path").count());
                assert_eq!(in_path, named, "{method} {path}");
            }
        }
    }
}
