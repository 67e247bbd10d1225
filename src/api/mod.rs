//! The HTTP API: the Backstage catalog REST dialect under `/api/catalog`,
//! provider status and control, Prometheus metrics and Backstage's health
//! endpoints.
//!
//! - [`routes`]: every route, mounted once; the OpenAPI document and the
//!   write permissions come from that one declaration.
//! - [`state`]: what the handlers share ([`ApiState`], the request line).
//! - [`entities`]: entities, by-query, by-refs, by-name, by-uid, facets.
//! - [`locations`]: locations: list, register (catalog-import), remove.
//! - [`providers`]: source status and refresh.
//! - [`previews`]: open pull requests' check results.
//! - [`refresh`]: per-entity refresh.
//! - [`validate`]: `validate-entity`, checked as discovery would.
//! - [`changes`]: the entity change feed.
//! - [`events`]: Bitbucket's webhooks.
//! - [`ops`]: health checks, metrics, the replica's role.
//! - [`writes`]: a write route's token check, and its hand-over to the
//!   leader on a follower ([`forward`]).
//! - [`openapi`] and [`schema`]: the OpenAPI document's frame and shapes.
//! - [`layers`]: the request span (continuing a caller's `traceparent`),
//!   body deadline, latency metric, unknown routes.
//! - [`server`]: the connection loop (cap, timeouts, graceful shutdown).
//! - [`status_page`]: `GET /`, the operator's page, built once per change
//!   ([`status_cache`]).
//! - [`error`]: Backstage's error body; domain errors reach it through
//!   [`error::HttpError`] and `?`.

mod caller;
mod changes;
mod classify;
mod config_reload;
mod entities;
mod error;
mod events;
pub(crate) mod forward;
mod layers;
mod locations;
mod openapi;
mod ops;
mod pace;
mod params;
mod previews;
mod providers;
mod query_pool;
mod refresh;
mod removals;
mod request;
mod routes;
mod schema;
pub(crate) mod server;
mod state;
mod status_cache;
mod status_page;
mod stream;
mod validate;
mod writes;

pub(crate) use config_reload::ConfigReloads;
pub(crate) use routes::router;
pub(crate) use state::{ApiState, evaluators};
