//! Shared state of a running simulator.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::{Behaviour, RateLimit, SimConfig};
use crate::dataset::{Dataset, RepoRef};
use crate::rng::{fnv1a, mix, unit};
use crate::stats::Recorder;

pub(crate) struct AppState {
    /// Swapped whole by a push (copy on write while handlers hold it).
    dataset: RwLock<Arc<Dataset>>,
    pub(crate) config: SimConfig,
    /// `http://127.0.0.1:PORT`, the prefix of every link we hand out.
    pub(crate) base_url: String,
    pub(crate) behaviour: RwLock<Behaviour>,
    pub(crate) stats: Recorder,
    buckets: Mutex<HashMap<String, Bucket>>,
    /// How many times each request key has been decided, for fault rolls.
    attempts: Mutex<HashMap<String, u64>>,
    /// Exact `Authorization` header values that are accepted.
    accepted_auth: Vec<String>,
    /// Webhooks registered through the API.
    pub(crate) hooks: Mutex<Vec<RegisteredHook>>,
    /// How many times each code search query has started (its first page
    /// asked for), which picks its result order when that is unstable.
    search_walks: Mutex<HashMap<String, u64>>,
    /// Pull requests opened through the simulator.
    pub(crate) pull_requests: Mutex<Vec<crate::pr_state::SimPullRequest>>,
    /// Reports, annotations and build statuses posted, in order.
    pub(crate) posted: Mutex<Vec<crate::pr_state::PostedCheck>>,
    /// Whether Code Insights answers (else reports are 404).
    pub(crate) insights: std::sync::atomic::AtomicBool,
}

/// Distinct queries remembered for [`AppState::search_walk`] before starting over.
const MAX_SEARCH_WALKS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// What the fault roll decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    ServerError(u16),
    Reset,
    Truncate,
    Slow,
}

impl AppState {
    pub(crate) fn new(dataset: Arc<Dataset>, config: SimConfig, base_url: String) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        let accepted_auth = config
            .auth
            .bearer_tokens
            .iter()
            .map(|t| format!("Bearer {t}"))
            .chain(
                config
                    .auth
                    .basic
                    .iter()
                    .map(|(u, p)| format!("Basic {}", b64.encode(format!("{u}:{p}")))),
            )
            .collect();
        Self {
            dataset: RwLock::new(dataset),
            behaviour: RwLock::new(config.behaviour.clone()),
            config,
            base_url,
            stats: Recorder::default(),
            buckets: Mutex::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
            accepted_auth,
            hooks: Mutex::new(Vec::new()),
            search_walks: Mutex::new(HashMap::new()),
            pull_requests: Mutex::new(Vec::new()),
            posted: Mutex::new(Vec::new()),
            insights: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// The number of the current walk through `query`'s results; `starts`
    /// (a first page) begins a new one.
    pub(crate) fn search_walk(&self, query: &str, starts: bool) -> u64 {
        let mut walks = self.search_walks.lock();
        if walks.len() >= MAX_SEARCH_WALKS && !walks.contains_key(query) {
            walks.clear();
        }
        let walk = walks.entry(query.to_owned()).or_insert(0);
        if starts {
            *walk += 1;
        }
        *walk
    }

    /// The data set as it is now.
    pub(crate) fn dataset(&self) -> Arc<Dataset> {
        Arc::clone(&self.dataset.read())
    }

    /// Changes the data set in place (a copy if a handler still holds it).
    pub(crate) fn edit_dataset<T>(&self, edit: impl FnOnce(&mut Dataset) -> T) -> T {
        let mut dataset = self.dataset.write();
        edit(Arc::make_mut(&mut dataset))
    }

    pub(crate) fn behaviour(&self) -> Behaviour {
        self.behaviour.read().clone()
    }

    /// Replaces the behaviour; buckets start full again under a new limit.
    pub(crate) fn set_behaviour(&self, behaviour: Behaviour) {
        *self.behaviour.write() = behaviour;
        self.buckets.lock().clear();
    }

    /// Whether the request's `Authorization` header is acceptable.
    pub(crate) fn authorized(&self, header: Option<&str>) -> bool {
        if !self.config.auth.is_required() {
            return true;
        }
        // Scheme names are case-insensitive; credentials are not.
        header.is_some_and(|h| {
            self.accepted_auth
                .iter()
                .any(|ok| match (h.split_once(' '), ok.split_once(' ')) {
                    (Some((scheme, cred)), Some((ok_scheme, ok_cred))) => {
                        scheme.eq_ignore_ascii_case(ok_scheme) && cred.trim() == ok_cred
                    }
                    _ => false,
                })
        })
    }

    /// Takes a token from `identity`'s bucket. `Err(seconds)` when empty:
    /// how long until one token is back, rounded up, at least 1.
    pub(crate) fn take_token(&self, limit: &RateLimit, identity: &str) -> Result<(), u64> {
        let now = Instant::now();
        let burst = f64::from(limit.burst);
        let mut buckets = self.buckets.lock();
        let bucket = buckets.entry(identity.to_owned()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.per_second).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / limit.per_second;
            // Bounded: per_second > 0 is validated, so wait ≤ 1/per_second.
            Err((wait.ceil() as u64).max(1))
        }
    }

    /// Rolls the fault for this attempt of `request_key`: a pure function of
    /// the seed, the key and the attempt number.
    pub(crate) fn roll_fault(&self, behaviour: &Behaviour, request_key: &str) -> Fault {
        let f = &behaviour.faults;
        if f.server_error + f.reset + f.truncate + f.slow <= 0.0 {
            return Fault::None;
        }
        let attempt = {
            let mut attempts = self.attempts.lock();
            let n = attempts.entry(request_key.to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        let bits = mix(self.config.seed
            ^ fnv1a(request_key.as_bytes())
            ^ attempt.wrapping_mul(0xA24B_AED4_963E_E407));
        let x = unit(bits);
        let mut edge = f.server_error;
        if x < edge {
            // Vary the status so clients cannot special-case one code.
            return Fault::ServerError(match mix(bits) % 3 {
                0 => 500,
                1 => 502,
                _ => 503,
            });
        }
        edge += f.reset;
        if x < edge {
            return Fault::Reset;
        }
        edge += f.truncate;
        if x < edge {
            return Fault::Truncate;
        }
        edge += f.slow;
        if x < edge {
            return Fault::Slow;
        }
        Fault::None
    }
}

/// Where a webhook applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HookScope {
    /// Every repository of a Data Center project.
    Project(String),
    /// One Data Center repository: project key, slug.
    Repository(String, String),
    /// Every repository of a Cloud workspace.
    Workspace(String),
}

/// A webhook registered with the simulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredHook {
    pub scope: HookScope,
    pub id: u64,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
    /// As registered (the simulator keeps it to sign what it sends).
    pub secret: Option<String>,
}

impl RegisteredHook {
    /// Whether it covers `repo` and is subscribed to `event`.
    pub fn covers(&self, repo: &RepoRef, event: &str) -> bool {
        let scoped = match (&self.scope, repo) {
            (HookScope::Project(key), RepoRef::Server { project, .. }) => {
                key.eq_ignore_ascii_case(project)
            }
            (HookScope::Repository(key, slug), RepoRef::Server { project, slug: s }) => {
                key.eq_ignore_ascii_case(project) && slug.eq_ignore_ascii_case(s)
            }
            (HookScope::Workspace(_), RepoRef::Cloud { .. }) => true,
            _ => false,
        };
        scoped && self.active && self.events.iter().any(|e| e == event)
    }

    pub(crate) fn server_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "events": self.events,
            "active": self.active,
            "configuration": {},
        })
    }

    pub(crate) fn cloud_json(&self) -> Value {
        json!({
            "uuid": cloud_uuid(self.id),
            "description": self.name,
            "url": self.url,
            "events": self.events,
            "active": self.active,
        })
    }
}

fn cloud_uuid(id: u64) -> String {
    format!("{{00000000-0000-4000-8000-{id:012}}}")
}
