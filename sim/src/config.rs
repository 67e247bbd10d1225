//! What the simulator serves and how it misbehaves.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::SimError;

/// Everything [`crate::Simulator::start`] needs. `SimConfig::default()` is a
/// small, well-behaved Bitbucket; override fields with `..Default::default()`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Address to bind. Only loopback addresses are accepted.
    pub bind: IpAddr,
    /// Port; 0 picks a free one (what tests want).
    pub port: u16,
    /// Seeds the data set and the fault decisions.
    pub seed: u64,
    pub dataset: DatasetConfig,
    pub server: ServerOptions,
    pub cloud: CloudOptions,
    /// Latency, rate limit, faults, code search: changeable at run time with
    /// [`crate::Simulator::set_behaviour`].
    pub behaviour: Behaviour,
    pub auth: AuthConfig,
    /// The `webhookSecret` the printed config fragment sets, and what
    /// `POST /__sim/push` signs its events with unless told otherwise.
    pub webhook_secret: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            seed: 1,
            dataset: DatasetConfig::default(),
            server: ServerOptions::default(),
            cloud: CloudOptions::default(),
            behaviour: Behaviour::default(),
            auth: AuthConfig::default(),
            webhook_secret: None,
        }
    }
}

/// The generated data set's shape. The same seed and config always give the
/// same data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetConfig {
    /// Regular Server projects (`P0001`, …).
    pub projects: usize,
    pub repos_per_project: usize,
    /// Personal Server projects (`~USER001`, …).
    pub personal_projects: usize,
    pub repos_per_personal_project: usize,
    /// Fraction of repositories with a `catalog-info.yaml` (any shape).
    pub catalog_ratio: f64,
    /// Fraction of Server repositories marked archived (independent of files).
    pub archived_ratio: f64,
    /// Relative weights of catalog file shapes among repos that have one.
    pub mix: FileMix,
    /// The Cloud workspace slug.
    pub cloud_workspace: String,
    pub cloud_projects: usize,
    pub cloud_repos_per_project: usize,
    /// Fraction of repositories that are monorepos: besides their root file
    /// (whatever `catalog_ratio` gave them) they hold `monorepo_files`
    /// nested `catalog-info.yaml` files and a few decoys. 0 by default, so
    /// the data set is the simple estate.
    #[serde(default)]
    pub monorepo_ratio: f64,
    /// Nested catalog files per monorepo, inclusive bounds.
    #[serde(default = "default_monorepo_files")]
    pub monorepo_files: (usize, usize),
    /// Fraction of repositories with a `.bitbucket/CODEOWNERS` file. 0 by default.
    #[serde(default)]
    pub codeowners_ratio: f64,
}

fn default_monorepo_files() -> (usize, usize) {
    (100, 300)
}

impl Default for DatasetConfig {
    fn default() -> Self {
        Self {
            projects: 4,
            repos_per_project: 10,
            personal_projects: 0,
            repos_per_personal_project: 2,
            catalog_ratio: 0.6,
            archived_ratio: 0.05,
            mix: FileMix::default(),
            cloud_workspace: "acme".into(),
            cloud_projects: 3,
            cloud_repos_per_project: 10,
            monorepo_ratio: 0.0,
            monorepo_files: default_monorepo_files(),
            codeowners_ratio: 0.0,
        }
    }
}

impl DatasetConfig {
    /// `projects` × `repos_per_project` Server repositories, each with one
    /// plain Component file and none archived: every repository's read is
    /// one request and yields one entity, so requests and entities are easy
    /// to count.
    pub fn components_only(projects: usize, repos_per_project: usize) -> Self {
        Self {
            projects,
            repos_per_project,
            catalog_ratio: 1.0,
            archived_ratio: 0.0,
            mix: FileMix::components_only(),
            ..Self::default()
        }
    }
}

/// Weights (not necessarily summing to 1) of the catalog file shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileMix {
    pub component: f64,
    pub multi_document: f64,
    pub location_tree: f64,
    pub broken_yaml: f64,
    pub invalid_entity: f64,
}

impl FileMix {
    /// Only plain one-Component files: each repository's read is one
    /// request and yields one entity.
    pub fn components_only() -> Self {
        Self {
            component: 1.0,
            multi_document: 0.0,
            location_tree: 0.0,
            broken_yaml: 0.0,
            invalid_entity: 0.0,
        }
    }
}

impl Default for FileMix {
    fn default() -> Self {
        Self {
            component: 0.6,
            multi_document: 0.15,
            location_tree: 0.1,
            broken_yaml: 0.05,
            invalid_entity: 0.1,
        }
    }
}

/// Server REST 1.0 paging and listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerOptions {
    /// Bitbucket's `page.max.limit`-style cap on `limit` (default 1000).
    pub max_page_size: usize,
    /// `limit` when the request has none (Bitbucket: 25).
    pub default_page_size: usize,
    /// Whether `GET /projects` lists personal (`~USER`) projects; their repos
    /// are reachable either way.
    pub list_personal_projects: bool,
    /// What `/application-properties` says (project webhooks need 8.8+).
    pub version: String,
    /// Whether repository listings carry `defaultBranch` (older Data
    /// Center versions leave it out).
    pub listing_default_branch: bool,
    /// Whether the global listing `GET /repos` is served (off: 404, as an
    /// older server or a proxy that blocks it answers).
    pub global_listing: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_page_size: 1000,
            default_page_size: 25,
            list_personal_projects: true,
            version: "8.19.0".into(),
            listing_default_branch: true,
            global_listing: true,
        }
    }
}

/// Cloud REST 2.0 paging.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudOptions {
    /// Cap on `pagelen` (Bitbucket Cloud: 100).
    pub max_pagelen: usize,
    /// `pagelen` when absent (Bitbucket Cloud: 10).
    pub default_pagelen: usize,
}

impl Default for CloudOptions {
    fn default() -> Self {
        Self {
            max_pagelen: 100,
            default_pagelen: 10,
        }
    }
}

/// Run-time behaviour: how slow, limited and unreliable the simulator is.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Behaviour {
    /// Added before answering every API request.
    #[serde(with = "duration_ms")]
    pub latency: Duration,
    /// Added on top of `latency` for each API request in flight (this one
    /// included): a server that slows down with load.
    #[serde(with = "duration_ms")]
    pub latency_per_in_flight: Duration,
    /// `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    pub faults: Faults,
    pub code_search: CodeSearch,
}

/// A token bucket per credential (Bitbucket Data Center limits per user).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Bucket size; a fresh bucket is full.
    pub burst: u32,
    /// Tokens added per second.
    pub per_second: f64,
}

impl RateLimit {
    /// Bitbucket Data Center's default: 60 tokens, 5 per second.
    pub fn data_center_default() -> Self {
        Self {
            burst: 60,
            per_second: 5.0,
        }
    }
}

/// Injected failures, as fractions of API requests (they must sum to ≤ 1).
/// Whether the n-th attempt of a given request fails is a pure function of
/// the seed, the request and n: runs are reproducible whatever the
/// concurrency, and a retried request is decided afresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// 500/502/503 answers.
    pub server_error: f64,
    /// The connection closes (RST) without any response.
    pub reset: f64,
    /// Headers with the full `Content-Length`, then half the body and a close.
    pub truncate: f64,
    /// The complete body, dribbled out over `slow_body`.
    pub slow: f64,
    #[serde(with = "duration_ms")]
    pub slow_body: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            server_error: 0.0,
            reset: 0.0,
            truncate: 0.0,
            slow: 0.0,
            slow_body: Duration::from_secs(2),
        }
    }
}

impl Faults {
    fn validate(&self) -> Result<(), SimError> {
        let ratios = [
            ("server_error", self.server_error),
            ("reset", self.reset),
            ("truncate", self.truncate),
            ("slow", self.slow),
        ];
        for (name, ratio) in ratios {
            check_ratio(&format!("faults.{name}"), ratio)?;
        }
        let sum: f64 = ratios.iter().map(|(_, r)| r).sum();
        if sum > 1.0 + 1e-9 {
            return Err(SimError::Config(format!(
                "fault ratios add up to {sum}, more than 1"
            )));
        }
        Ok(())
    }
}

/// Cloud code search behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CodeSearch {
    /// When false, code search answers `disabled_status` as for a workspace
    /// where search was never turned on.
    pub enabled: bool,
    /// Bitbucket documents 404 for "search is not enabled".
    pub disabled_status: u16,
    /// Each page after the first starts with this many results of the
    /// previous page (Bitbucket bug BCLOUD-23644); clamped below `pagelen`.
    pub repeat_per_page: usize,
    /// One query stops here (Bitbucket: 1000 results; `size` still counts
    /// every match and a page past the cap is a 400).
    pub max_results: usize,
    /// Results come in a different order each time a query starts again
    /// (its first page), as Bitbucket's do; the pages of one walk agree.
    /// Seeded, so runs repeat. Off by default.
    pub unstable_order: bool,
}

impl Default for CodeSearch {
    fn default() -> Self {
        Self {
            enabled: true,
            disabled_status: 404,
            repeat_per_page: 0,
            max_results: 1000,
            unstable_order: false,
        }
    }
}

/// Required credentials. Empty lists: anonymous access works.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuthConfig {
    /// Accepted `Authorization: Bearer <token>` values.
    pub bearer_tokens: Vec<String>,
    /// Accepted Basic `(username, password)` pairs.
    pub basic: Vec<(String, String)>,
}

impl AuthConfig {
    pub fn is_required(&self) -> bool {
        !self.bearer_tokens.is_empty() || !self.basic.is_empty()
    }
}

fn check_ratio(name: &str, value: f64) -> Result<(), SimError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(SimError::Config(format!(
            "{name} must be between 0 and 1, got {value}"
        )))
    }
}

impl Behaviour {
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        self.faults.validate()?;
        if let Some(limit) = &self.rate_limit {
            if limit.burst == 0 || !(limit.per_second > 0.0 && limit.per_second.is_finite()) {
                return Err(SimError::Config(format!(
                    "rate limit needs burst ≥ 1 and a positive refill, got {limit:?}"
                )));
            }
        }
        if !(400..=599).contains(&self.code_search.disabled_status) {
            return Err(SimError::Config(format!(
                "code_search.disabled_status must be a 4xx/5xx status, got {}",
                self.code_search.disabled_status
            )));
        }
        Ok(())
    }
}

/// Keeps one monorepo's generated files (and the memory) bounded.
const MAX_MONOREPO_FILES: usize = 5000;

impl DatasetConfig {
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        check_ratio("dataset.catalog_ratio", self.catalog_ratio)?;
        check_ratio("dataset.archived_ratio", self.archived_ratio)?;
        check_ratio("dataset.monorepo_ratio", self.monorepo_ratio)?;
        check_ratio("dataset.codeowners_ratio", self.codeowners_ratio)?;
        let (least, most) = self.monorepo_files;
        if least > most || most > MAX_MONOREPO_FILES {
            return Err(SimError::Config(format!(
                "dataset.monorepo_files must be (min, max) with min ≤ max ≤ {MAX_MONOREPO_FILES}, got ({least}, {most})"
            )));
        }
        let m = &self.mix;
        let weights = [
            m.component,
            m.multi_document,
            m.location_tree,
            m.broken_yaml,
            m.invalid_entity,
        ];
        if weights.iter().any(|w| !(w.is_finite() && *w >= 0.0))
            || weights.iter().sum::<f64>() <= 0.0
        {
            return Err(SimError::Config(format!(
                "dataset.mix weights must be non-negative with a positive sum, got {m:?}"
            )));
        }
        let ws = &self.cloud_workspace;
        if ws.is_empty()
            || !ws
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(SimError::Config(format!(
                "dataset.cloud_workspace must be a non-empty slug of letters, digits, - and _, got {ws:?}"
            )));
        }
        // Keys and slugs are numbered with fixed widths; past these the
        // names would stop being unique and sortable.
        if self.projects > 9999 || self.personal_projects > 999 || self.cloud_projects > 999 {
            return Err(SimError::Config(
                "at most 9999 projects, 999 personal projects and 999 Cloud projects".into(),
            ));
        }
        if self.repos_per_project > 9999
            || self.repos_per_personal_project > 9999
            || self.cloud_repos_per_project > 9999
        {
            return Err(SimError::Config(
                "at most 9999 repositories per project".into(),
            ));
        }
        Ok(())
    }
}

impl SimConfig {
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        if !self.bind.is_loopback() {
            return Err(SimError::NotLoopback(self.bind));
        }
        self.dataset.validate()?;
        self.behaviour.validate()?;
        if self.server.max_page_size == 0 || self.server.default_page_size == 0 {
            return Err(SimError::Config("server page sizes must be ≥ 1".into()));
        }
        if self.cloud.max_pagelen == 0 || self.cloud.default_pagelen == 0 {
            return Err(SimError::Config("cloud page lengths must be ≥ 1".into()));
        }
        Ok(())
    }
}

/// Durations as whole milliseconds in JSON (the stats and behaviour endpoints).
mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
