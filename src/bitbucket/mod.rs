//! Bitbucket REST clients and the HTTP plumbing they share.
//!
//! - [`server`]: Bitbucket Server / Data Center REST 1.0.
//! - [`cloud`]: Bitbucket Cloud REST 2.0.
//! - [`server_urls`], [`cloud_urls`]: web URLs ↔ REST calls, relative URL
//!   resolution ([`urls`] holds what they share); [`file_url`]: a file's
//!   web URL parsed once; [`refusal`]: why a URL is not read; [`scope`]: a
//!   provider's target scope.
//! - [`reader`]: the one reader for file URLs, by integration host.
//! - [`webhooks`]: signed webhook payloads; [`pull_requests`]: a pull
//!   request's changed paths and where its check is posted.
//!
//! Every request goes through [`Http`] (`http.rs`): credentials, the
//! integration's pace and concurrency cap (`pacing/`), retries with backoff
//! and jitter for connection errors, timeouts and 5xx, `Retry-After` for
//! 429, a count per run ([`RequestStats`], `stats.rs`), and
//! [`BitbucketError`]s (`error.rs`) that say which URL failed and what to
//! check. [`HttpPool`] (`pool.rs`) holds one [`IntegrationHttp`] per
//! configured Bitbucket.

pub(crate) mod cloud;
pub(crate) mod cloud_urls;
mod credential;
mod error;
pub(crate) mod file_url;
mod http;
mod pacing;
mod pool;
pub(crate) mod pull_requests;
pub(crate) mod reader;
pub(crate) mod refusal;
pub(crate) mod scope;
pub(crate) mod server;
pub(crate) mod server_urls;
mod stats;
pub(crate) mod urls;
pub(crate) mod webhooks;

pub(crate) use error::BitbucketError;
pub(crate) use http::{Http, MAX_LISTING_BYTES, MAX_PAGES, too_many_pages};
pub(crate) use pacing::{Lane, PaceView, sweep};
pub(crate) use pool::HttpSetupError;
pub(crate) use pool::{HttpPool, IntegrationHttp};
pub(crate) use stats::RequestStats;
