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
//!   and Cloud (paging by `next`, code search, `src` files) over one counted
//!   HTTP layer, and the one reader that maps a file's web URL to the API of
//!   the integration whose host matches (refusing any other host).
//! - [`discovery`]: sources — the Server and Cloud providers (list, filter,
//!   read each repository's catalog file) and locations given by URL —
//!   which the scheduler runs alike.
//! - [`catalog`]: untrusted YAML → entities under explicit budgets, processed
//!   as Backstage's catalog does (validation, `catalog.rules`, annotations,
//!   Location targets, placeholders, relations), and the in-memory catalog
//!   each provider's run replaces atomically.
//! - [`scheduler`]: runs sources on their schedules, never overlapping,
//!   cancelled at their timeout; registered locations join and leave.
//! - [`store`]: SQLite persistence of each source's entities and of the
//!   locations registered over HTTP.
//! - [`locations`]: static, registered and discovered locations as the API
//!   shows them; registration (catalog-import) and removal.
//! - [`api`]: the axum router (`/api/catalog/...`, health), with the token
//!   check on write endpoints.
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
