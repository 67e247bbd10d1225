//! A Bitbucket simulator for testing and benchmarking bitbucket-catalogd.
//!
//! It serves the subsets of Bitbucket Server/Data Center REST 1.0 and
//! Bitbucket Cloud REST 2.0 the daemon uses, over a deterministic generated
//! [`Dataset`], with optional latency, a per-credential token bucket,
//! injected faults and required credentials, and counts every request.
//!
//! ```no_run
//! # async fn demo() -> Result<(), bitbucket_sim::SimError> {
//! use bitbucket_sim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::default()).await?;
//! println!("{}", sim.server_api_base()); // http://127.0.0.1:PORT/rest/api/1.0
//! let expected = sim.dataset().expected_server_refs(false);
//! // ... run discovery against sim.host() and compare with `expected` ...
//! println!("{} requests", sim.stats().requests);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Modules, in request order: `server` (listener, connections) →
//! `pipeline` (latency, auth, rate limit, faults, counting) →
//! `server_api` / `cloud_api` / `admin` (handlers) over `dataset`; `push`
//! changes the data set and makes the webhook events for it;
//! `pull_requests` opens, updates, merges and declines pull requests (with
//! their events), `insights` serves their changes and records the checks
//! posted on their commits.

use std::net::{IpAddr, SocketAddr};

mod admin;
mod cloud_api;
mod cloud_content;
pub mod config;
pub mod dataset;
mod entity_yaml;
mod estate;
mod fields;
mod global_listing;
pub mod history;
pub mod hooks;
mod insights;
mod pipeline;
mod pr_admin;
mod pr_state;
mod pull_requests;
pub mod push;
mod repo_admin;
mod respond;
mod revisions;
mod rng;
mod search;
mod server;
mod server_api;
mod server_content;
mod state;
pub mod stats;

pub use config::{
    AuthConfig, Behaviour, CloudOptions, CodeSearch, DatasetConfig, Faults, FileMix, RateLimit,
    ServerOptions, SimConfig,
};
pub use dataset::{
    BrokenYaml, CATALOG_PATH, CloudProject, CloudWorkspace, Dataset, DatasetSummary, FileKind,
    InvalidEntity, Repo, RepoRef, ServerProject,
};
pub use estate::{CODEOWNERS_PATH, CodeOwners};
pub use history::HISTORY_DEPTH;
pub use pr_state::PostedCheck;
pub use pull_requests::PullRequestFiles;
pub use push::WebhookEvent;
pub use server::Simulator;
pub use state::{HookScope, RegisteredHook};
pub use stats::{EndpointKind, FaultCounts, KindStats, Stats};

/// Why the simulator could not start or take a setting.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    #[error("refusing to bind {0}: the simulator listens on loopback addresses only")]
    NotLoopback(IpAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A push, rename or webhook delivery that could not be made.
    #[error("{0}")]
    Webhook(String),
}
