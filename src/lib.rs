//! bitbucket-catalogd discovers Backstage catalog entities in Bitbucket and
//! serves them over the Backstage catalog REST API.
//!
//! A run flows through the modules in this order:
//!
//! - [`config`]: reads Backstage-style `app-config.yaml` files (`${VAR}`,
//!   `$env`, `$file`, layering, `APP_CONFIG_*`) into a validated [`config::Config`].
//! - [`integrations`]: where each Bitbucket lives and how to authenticate
//!   ([`secret`] keeps credentials out of every output).
//! - [`bitbucket`]: REST clients for Bitbucket Server (paging, raw files)
//!   over one counted HTTP layer.
//! - [`discovery`]: providers that list projects and repositories, apply the
//!   filters and read each repository's catalog file.
//! - [`catalog`]: untrusted YAML → entities under explicit budgets, processed
//!   as Backstage's catalog does (validation, `catalog.rules`, annotations,
//!   Location targets, placeholders, relations), and the in-memory catalog
//!   each provider's run replaces atomically.
//! - [`scheduler`]: runs providers on their schedules, never overlapping,
//!   cancelled at their timeout.
//! - [`api`]: the axum router (`/api/catalog/...`, health).
//! - [`app`]: [`app::Application`] wires it all together; [`cli`] is what the
//!   binary calls.

pub mod api;
pub mod app;
pub mod bitbucket;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod integrations;
pub mod locations;
pub mod metrics;
pub mod scheduler;
pub mod secret;
pub mod store;
pub mod telemetry;

pub use app::Application;
