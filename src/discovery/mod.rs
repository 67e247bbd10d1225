//! Discovery: sources list what a Bitbucket has, read catalog files and
//! hand each repository's result to a [`RunSink`] as it comes, with a
//! report of what the run did.
//!
//! - [`provider`]: the one provider pipeline (list → filter → plan → read →
//!   process → apply) over a [`provider::Flavour`]: [`server`] for
//!   `catalog.providers.bitbucketServer`, [`cloud`] for `bitbucketCloud`.
//! - [`plan`]: which repositories a run reads, in which order.
//! - `fan_out`: how many repository reads a provider has under way (it
//!   follows the integration's adaptive concurrency and pace).
//! - [`progress`]: what a run has done so far, for the status API.
//! - [`location`]: one location given by URL (`catalog.locations` or
//!   registered over HTTP).
//! - [`pipeline`]: what every source does with a catalog file's bytes.
//! - [`report`]: the account of one run.
//! - `hooks`: the webhooks a provider's `webhooks.url` asks for.
//! - `record`: what is kept per repository ([`RepositoryRecord`]) and
//!   what a read hands over ([`UnitUpdate`]); `run`: what a run works with
//!   ([`RunContext`]) and where its results go ([`RunSink`]).
//! - `source`: [`Source`], any of them, as the scheduler runs them.
//! - [`listing_sweep`]: what a listing alone shows (Data Center sweep).
//! - [`commit_reads`], [`at_commit`]: reading a repository's catalog
//!   files at a pull request's source commit (fork included), for checks.

pub(crate) mod at_commit;
pub(crate) mod cloud;
mod codeowners;
pub(crate) mod commit_reads;
mod fan_out;
pub(crate) mod generated;
mod glob;
mod hooks;
pub(crate) mod listing_sweep;
pub(crate) mod location;
pub(crate) mod pipeline;
pub(crate) mod plan;
pub(crate) mod plan_diff;
pub(crate) mod progress;
pub(crate) mod provider;
mod record;
pub(crate) mod report;
mod run;
pub(crate) mod server;
mod source;

pub(crate) use self::progress::Progress;
pub use self::record::UnitUpdate;
pub(crate) use self::record::{CatalogFile, RepositoryRecord};
pub use self::report::RunReport;
pub(crate) use self::report::{Outcome, Trigger};
pub(crate) use self::run::{Held, RunContext, RunSink};
pub(crate) use self::source::Source;
pub(crate) use crate::catalog::problem::{Problem, ProblemKind};
pub(crate) use crate::integrations::RepoRef;
