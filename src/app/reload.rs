//! Reloading the config without a restart, on SIGHUP or (opt-in,
//! `backend.reload.watch`) when a config file changes: the same files and
//! `APP_CONFIG_*` variables, the same validation as `config check`. An
//! invalid config is refused whole; a valid one replaces the providers
//! whose settings changed (after their run in progress, if any), adds new
//! ones on their schedule and hands removed ones to the deletion guard.
//! Keys read only at start-up are named and left alone.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{AppError, Sources, build_sources, register_metrics, sources_on};
use crate::api::ConfigReloads;
use crate::bitbucket::HttpPool;
use crate::catalog::Catalog;
use crate::config::{Config, Environment};
use crate::discovery::Source;
use crate::scheduler::{Applier, Departure, Scheduler, SourceRunner};
use crate::store::CatalogStore;
use crate::webhooks::Webhooks;

/// How often watched config files are looked at.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Keys read once at start-up: a reload names them and leaves them alone.
const RESTART_ONLY: &[(&str, &str)] = &[
    ("/backend/listen", "backend.listen"),
    (
        "/backend/database",
        "backend.database (and the replicas sharing it)",
    ),
    ("/backend/auth", "backend.auth"),
    ("/backend/apiRateLimit", "backend.apiRateLimit"),
    ("/catalog/locations", "catalog.locations"),
    ("/catalog/locationSchedule", "catalog.locationSchedule"),
    ("/catalog/changes", "catalog.changes"),
    (
        "/catalog/maxRegisteredLocations",
        "catalog.maxRegisteredLocations",
    ),
    (
        "/catalog/registrationsPerMinute",
        "catalog.registrationsPerMinute",
    ),
];

/// Where the config comes from, and what a reload changes.
pub(crate) struct Reloader {
    files: Vec<PathBuf>,
    env: Environment,
    /// The config started with: restart-only keys are compared to it.
    started: Config,
    /// The config in force; held for a whole reload, so reloads queue.
    current: tokio::sync::Mutex<Config>,
    /// The integrations' HTTP clients in force: kept while `integrations`
    /// does not change, so providers keep sharing one pace per Bitbucket.
    http: parking_lot::Mutex<Arc<HttpPool>>,
    parts: Parts,
}

/// What runners are made of, and where a reload is reported.
#[derive(Clone)]
pub(super) struct Parts {
    pub catalog: Arc<Catalog>,
    pub store: Arc<dyn CatalogStore>,
    pub applier: Arc<Applier>,
    pub scheduler: Arc<Scheduler>,
    pub shutdown: CancellationToken,
    pub reloads: Arc<ConfigReloads>,
    /// Checks webhook signatures: takes reloaded secrets.
    pub webhooks: Arc<Webhooks>,
    /// The integrations' HTTP clients at start-up.
    pub http: Arc<HttpPool>,
}

/// Why a reload was refused; the daemon keeps the config in force.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Build(#[from] AppError),
}

impl Refused {
    /// What the status page (open to anyone who reaches the port) says:
    /// the file and key, not the message, which may quote a value.
    fn public(&self) -> String {
        use crate::config::ConfigError;
        match self {
            Refused::Config(ConfigError::Invalid {
                origin: Some(origin),
                key,
                ..
            }) => format!("{origin}: {key} is invalid (the log says why)"),
            Refused::Config(ConfigError::Invalid { key, .. }) => {
                format!("{key} is invalid (the log says why)")
            }
            Refused::Config(ConfigError::Parse { path, .. }) => {
                format!("{} is not valid YAML (the log says where)", path.display())
            }
            Refused::Config(ConfigError::Read { path, .. }) => {
                format!("{} cannot be read (the log says why)", path.display())
            }
            Refused::Build(_) => "the providers cannot be built (the log says why)".to_owned(),
        }
    }
}

/// Every `webhookSecret` under `integrations`, as written.
fn webhook_secrets(config: &Config) -> Vec<&serde_json::Value> {
    [
        "/integrations/bitbucketServer",
        "/integrations/bitbucketCloud",
    ]
    .into_iter()
    .filter_map(|pointer| config.tree.pointer(pointer).and_then(|v| v.as_array()))
    .flatten()
    .map(|integration| {
        integration
            .get("webhookSecret")
            .unwrap_or(&serde_json::Value::Null)
    })
    .collect()
}

impl Reloader {
    pub(super) fn new(files: Vec<PathBuf>, env: Environment, config: Config, parts: Parts) -> Self {
        crate::metrics::register_config_reloads();
        Self {
            files,
            env,
            started: config.clone(),
            current: tokio::sync::Mutex::new(config),
            http: parking_lot::Mutex::new(Arc::clone(&parts.http)),
            parts,
        }
    }

    /// Reloads the config (`why`: what asked for it); `true` if applied.
    pub(crate) async fn reload(&self, why: &str) -> bool {
        let mut current = self.current.lock().await;
        let files = self.file_list();
        tracing::info!(
            trigger = why,
            config = files,
            "reloading the config ({why})"
        );
        let now = chrono::Utc::now();
        let at = crate::rfc3339::format(&now);
        match self.apply(&mut current).await {
            Ok(summary) => {
                crate::metrics::record_config_reload("applied", now.timestamp() as f64);
                tracing::info!(trigger = why, "config reloaded: {summary}");
                (self.parts.reloads)
                    .record(true, format!("Config reloaded at {at} ({why}): {summary}."));
                true
            }
            Err(err) => {
                crate::metrics::record_config_reload("refused", now.timestamp() as f64);
                tracing::error!(
                    trigger = why,
                    config = files,
                    "config reload refused, the daemon keeps running on the config it had: {err}"
                );
                (self.parts.reloads).record(
                    false,
                    format!(
                        "Config reload at {at} ({why}) refused; the previous config stays in force: {}",
                        err.public()
                    ),
                );
                false
            }
        }
    }

    fn file_list(&self) -> String {
        let files: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
        files.join(", ")
    }

    /// Loads, validates and applies the config; what changed, in words.
    async fn apply(&self, current: &mut Config) -> Result<String, Refused> {
        let loaded = Config::load(&self.files, &self.env)?;
        for warning in &loaded.warnings {
            tracing::warn!("{warning}");
        }
        let new = loaded.config;
        // Built before anything changes: an integration missing or a CA
        // bundle that cannot be read refuses the reload whole.
        let integrations_changed = current.tree.pointer("/integrations")
            != new.tree.pointer("/integrations")
            || current.extra_ca_file != new.extra_ca_file;
        let Sources { sources, locations } = if integrations_changed {
            build_sources(&new)?
        } else {
            let http = Arc::clone(&self.http.lock());
            sources_on(&new, http)?
        };
        let restart = self.restart_only_changes(&new);
        // Integrations (credentials, pace) and catalog rules reach every
        // provider through its runner.
        let shared_changed = integrations_changed
            || format!("{:?}", current.catalog) != format!("{:?}", new.catalog);
        let providers = self
            .reconcile_providers(sources, current, &new, shared_changed)
            .await?;
        // Events are checked against the new secrets from now on; a list
        // (`[new, old]`) lets Bitbucket's webhooks change without a 401.
        let secrets_changed = webhook_secrets(current) != webhook_secrets(&new);
        if secrets_changed {
            self.parts.webhooks.reload(&new.integrations);
        }
        *current = new;
        *self.http.lock() = locations.http;
        Ok(providers.summary(secrets_changed, &restart))
    }

    /// The keys read only at start-up that `new` changes (warned about).
    fn restart_only_changes(&self, new: &Config) -> Vec<&'static str> {
        let restart: Vec<&str> = RESTART_ONLY
            .iter()
            .filter(|(pointer, _)| self.started.tree.pointer(pointer) != new.tree.pointer(pointer))
            .map(|(_, key)| *key)
            .collect();
        if !restart.is_empty() {
            tracing::warn!(
                keys = restart.join(", "),
                "the reloaded config changes keys read only at start-up; they stay as they were until a restart: {}",
                restart.join(", ")
            );
        }
        restart
    }

    /// Adds, replaces and removes providers' runners so they match `sources`
    /// (locations stay as they are).
    async fn reconcile_providers(
        &self,
        sources: Vec<Source>,
        current: &Config,
        new: &Config,
        shared_changed: bool,
    ) -> Result<ProviderChanges, Refused> {
        let scheduler = &self.parts.scheduler;
        let mut changes = ProviderChanges::default();
        let providers: Vec<Source> = sources
            .into_iter()
            .filter(|s| s.as_location().is_none())
            .collect();
        let ids: Vec<String> = providers.iter().map(|s| s.id().to_owned()).collect();
        for source in providers {
            let id = source.id().to_owned();
            match scheduler.runner(&id) {
                None => {
                    scheduler.left().returned(&id);
                    let runner = self.runner(source);
                    register_metrics(&runner);
                    runner.count_repositories().await;
                    scheduler
                        .add_provider(runner, true)
                        .await
                        .map_err(AppError::from)?;
                    changes.added.push(id);
                }
                Some(old)
                    if shared_changed || provider_text(current, &id) != provider_text(new, &id) =>
                {
                    self.replace(old, self.runner(source)).await;
                    changes.changed.push(id);
                }
                Some(_) => {}
            }
        }
        for old in scheduler.runners() {
            if old.source().as_location().is_none() && !ids.iter().any(|id| id == old.id()) {
                changes.removed.push(old.id().to_owned());
                self.remove(old).await;
            }
        }
        Ok(changes)
    }

    fn runner(&self, source: Source) -> Arc<SourceRunner> {
        let parts = &self.parts;
        Arc::new(SourceRunner::new(
            source,
            Arc::clone(&parts.catalog),
            Arc::clone(&parts.store),
            Arc::clone(&parts.applier),
            parts.shutdown.child_token(),
        ))
    }

    /// Puts `new` in `old`'s place once `old`'s run in progress, if any,
    /// has ended: that run finishes on the old settings, the next one uses
    /// the new. `old` keeps serving status and refreshes meanwhile.
    async fn replace(&self, old: Arc<SourceRunner>, new: Arc<SourceRunner>) {
        let scheduler = Arc::clone(&self.parts.scheduler);
        let busy = old.in_progress();
        let swap = async move {
            let running = old.exclusive().await;
            old.retire();
            if let Some(report) = old.last_report() {
                new.restore_report(report);
            }
            new.count_repositories().await;
            if let Err(err) = scheduler.replace_provider(new).await {
                tracing::error!(provider = old.id(), error = %err, "cannot schedule a changed provider; restart the daemon");
            }
            drop(running);
        };
        self.now_or_after_its_run(busy, swap).await;
    }

    /// Takes `old` out of the schedule once its run in progress, if any, has
    /// ended; its entities leave under the deletion guard (on the leader).
    async fn remove(&self, old: Arc<SourceRunner>) {
        let parts = self.parts.clone();
        let busy = old.in_progress();
        let removal = async move {
            let running = old.exclusive().await;
            old.retire();
            let id = old.id().to_owned();
            parts.scheduler.remove_provider(&id).await;
            drop(running);
            if !parts.scheduler.leading() {
                return;
            }
            let entities = parts.catalog.source_len(&id);
            let limits = old.source().deletion_guard();
            if parts.scheduler.left().leave(&id, entities, limits) == Departure::Removed {
                parts.scheduler.left().remove(&id).await;
            }
        };
        self.now_or_after_its_run(busy, removal).await;
    }

    /// Runs `change` within the reload when its provider is idle (so the
    /// next request already sees it), else in the background once the run
    /// in progress has ended.
    async fn now_or_after_its_run(
        &self,
        busy: bool,
        change: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        if busy {
            self.parts.applier.tracker().spawn(change);
        } else {
            change.await;
        }
    }

    /// Reloads on SIGHUP and, when `watch`, when a config file changes,
    /// until `shutdown`.
    pub(super) fn spawn(self: Arc<Self>, watch: bool, shutdown: CancellationToken) {
        #[cfg(unix)]
        {
            let this = Arc::clone(&self);
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let kind = tokio::signal::unix::SignalKind::hangup();
                let mut hangups = match tokio::signal::unix::signal(kind) {
                    Ok(signal) => signal,
                    Err(err) => {
                        tracing::error!(error = %err, "cannot listen for SIGHUP; the config reloads only on a restart");
                        return;
                    }
                };
                loop {
                    tokio::select! {
                        received = hangups.recv() => {
                            if received.is_none() {
                                break;
                            }
                            this.reload("SIGHUP").await;
                        }
                        () = stop.cancelled() => break,
                    }
                }
            });
        }
        if watch {
            tokio::spawn(async move { self.watch(shutdown).await });
        }
    }

    /// Polls the config files' contents (a symlink swap changes them
    /// without touching the link's mtime) and reloads when they change.
    async fn watch(&self, shutdown: CancellationToken) {
        tracing::info!(
            config = self.file_list(),
            "watching the config files (backend.reload.watch)"
        );
        let mut seen = self.fingerprint().await;
        let mut ticks = tokio::time::interval(WATCH_EVERY);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let now = self.fingerprint().await;
            if now != seen {
                seen = now;
                self.reload("a config file changed").await;
            }
        }
    }

    /// A hash of each config file's content (`None` if it cannot be read).
    async fn fingerprint(&self) -> Vec<Option<u64>> {
        let mut prints = Vec::with_capacity(self.files.len());
        for file in &self.files {
            let content = tokio::fs::read(file).await.ok();
            prints.push(content.map(|bytes| {
                use std::hash::{Hash, Hasher};
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut hasher);
                hasher.finish()
            }));
        }
        prints
    }
}

/// A provider's settings as text, to tell whether a reload changed them.
fn provider_text(config: &Config, id: &str) -> Option<String> {
    let server = config.providers.iter().find(|p| p.id == id);
    let cloud = config.cloud_providers.iter().find(|p| p.id == id);
    server
        .map(|p| format!("{p:?}"))
        .or_else(|| cloud.map(|p| format!("{p:?}")))
}

/// The providers a reload added, changed and removed, by id.
#[derive(Debug, Default)]
struct ProviderChanges {
    added: Vec<String>,
    changed: Vec<String>,
    removed: Vec<String>,
}

impl ProviderChanges {
    /// What changed, in words, for the log and the status page.
    fn summary(&self, secrets_changed: bool, restart: &[&str]) -> String {
        let list = |ids: &[String]| {
            if ids.is_empty() {
                "none".to_owned()
            } else {
                ids.join(", ")
            }
        };
        let mut summary = format!(
            "providers added: {}; changed: {}; removed: {}",
            list(&self.added),
            list(&self.changed),
            list(&self.removed)
        );
        if secrets_changed {
            summary.push_str("; webhook secrets: reloaded");
        }
        if !restart.is_empty() {
            summary.push_str(&format!("; need a restart: {}", restart.join(", ")));
        }
        summary
    }
}
