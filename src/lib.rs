//! bitbucket-catalogd discovers Backstage catalog entities in Bitbucket and
//! serves them over the Backstage catalog REST API. The repository is the
//! unit of state and of change: each one's catalog file is read, applied,
//! persisted and served on its own.
//!
//! A run flows through the modules in this order:
//!
//! - [`config`]: reads Backstage-style `app-config.yaml` files (`${VAR}`,
//!   `$env`, `$file`, layering, `APP_CONFIG_*`) into a validated [`config::Config`].
//! - [`integrations`]: where each Bitbucket lives and how to authenticate
//!   ([`secret`] keeps credentials out of every output).
//! - [`bitbucket`]: REST clients for Bitbucket Server (paging, raw files)
//!   and Cloud (paging by `next`, code search, `src` files) over one counted
//!   HTTP layer that paces itself to the server's rate limit, and the one
//!   reader that maps a file's web URL to the API of the integration whose
//!   host matches (refusing any other host).
//! - [`discovery`]: sources — one provider pipeline (list → filter → plan →
//!   read → process) for Server and Cloud, and locations given by URL —
//!   handing each repository's result on as it is read.
//! - [`catalog`]: untrusted YAML → entities under explicit budgets, processed
//!   as Backstage's catalog does (validation, `catalog.rules`, annotations,
//!   Location targets, placeholders, relations), and the in-memory catalog:
//!   owned per repository, re-stitched only where a change touches it,
//!   every change numbered.
//! - [`scheduler`]: runs sources on their schedules, never overlapping,
//!   stopped at their timeout; applies results batch by batch through the
//!   deletion guard; registered locations join and leave.
//! - [`store`]: SQLite (embedded) or PostgreSQL (shared) persistence of
//!   what is served (per entity, with its owner and change number), of each
//!   provider's repositories and of the locations registered over HTTP.
//! - [`replica`]: several daemons on one PostgreSQL database: one leader
//!   (advisory lock) talks to Bitbucket, the others follow its changes and
//!   hand it their writes.
//! - [`locations`]: static, registered and discovered locations as the API
//!   shows them; registration (catalog-import) and removal.
//! - [`webhooks`]: Bitbucket's push, move and delete events, verified by
//!   their signature and queued as single-repository reads on the
//!   providers they concern.
//! - [`api`]: the axum router (`/api/catalog/...`, health, the status page
//!   at `/`), with the token check on write endpoints.
//! - [`app`]: [`app::Application`] wires it all together; [`cli`] is what the
//!   binary calls.
//!
//! Leaves, used from anywhere: [`metrics`] (Prometheus, plain values in),
//! [`telemetry`] (logging set-up).

pub mod api;
pub mod app;
pub mod bitbucket;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod integrations;
mod iso_duration;
pub mod locations;
pub mod metrics;
pub mod replica;
pub mod scheduler;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod webhooks;

pub use app::Application;

#[cfg(test)]
mod architecture;
