//! Locations given by URL, as the API sees them: static ones from
//! `catalog.locations`, those registered over HTTP (kept in the store, read
//! again on the location schedule, removable), and the files providers
//! discovered. Registering reads the target at once, so a location that
//! cannot be read is never stored.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::bitbucket::RequestStats;
use crate::catalog::{Catalog, Entity};
use crate::config::RegistrationLimits;
use crate::discovery::location::{
    LocationContext, LocationError, LocationOrigin, LocationRead, LocationSource, location_id,
    location_json, source_id,
};
use crate::discovery::{Problem, Source, now_rfc3339};
use crate::scheduler::{Applier, Scheduler, SourceRunner};
use crate::store::{CatalogStore, RegisteredLocation, StoreError};

/// Why a registration was refused. Each maps to one of Backstage's errors.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// A bad request: wrong type, or a target this daemon does not read.
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// Bitbucket could not be read (or not in time); nothing was stored.
    #[error("{0}")]
    Unavailable(String),
    /// `catalog.maxRegisteredLocations` are registered already.
    #[error("{0}")]
    Full(String),
    /// Over `catalog.registrationsPerMinute`; try again later.
    #[error("{0}")]
    TooFrequent(String),
    #[error("the location was read but cannot be stored: {0}")]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("{0}")]
    NotFound(String),
    #[error("the location cannot be removed from the store: {0}")]
    Store(#[from] StoreError),
}

/// What a registration (or a dry run of one) came to.
#[derive(Debug)]
pub struct Registration {
    /// `{id, type, target, entityRef}`.
    pub location: Value,
    /// The generated Location entity first, then what the target yields.
    pub entities: Vec<Entity>,
    /// Whether the target already was a location (dry run).
    pub exists: bool,
    /// What the target's files got wrong (our addition to Backstage's body).
    pub problems: Vec<Problem>,
}

pub struct Locations {
    context: LocationContext,
    catalog: Arc<Catalog>,
    store: Arc<dyn CatalogStore>,
    applier: Arc<Applier>,
    scheduler: Arc<Scheduler>,
    shutdown: CancellationToken,
    /// Serialises registrations and removals (each checks, then changes).
    writes: tokio::sync::Mutex<()>,
    limits: RegistrationLimits,
    pace: governor::DefaultDirectRateLimiter,
}

impl Locations {
    pub fn new(
        context: LocationContext,
        catalog: Arc<Catalog>,
        store: Arc<dyn CatalogStore>,
        applier: Arc<Applier>,
        scheduler: Arc<Scheduler>,
        shutdown: CancellationToken,
        limits: RegistrationLimits,
    ) -> Self {
        let per_minute = NonZeroU32::new(limits.per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            context,
            catalog,
            store,
            applier,
            scheduler,
            shutdown,
            writes: tokio::sync::Mutex::new(()),
            limits,
            pace: governor::RateLimiter::direct(governor::Quota::per_minute(per_minute)),
        }
    }

    /// Static, registered and discovered locations, one per target, by target.
    pub fn list(&self) -> Vec<Value> {
        let mut targets = BTreeSet::new();
        for runner in self.scheduler.runners() {
            if let Some(location) = runner.source().as_location() {
                targets.insert(location.target().to_owned());
            }
        }
        for entity in self.catalog.snapshot().iter() {
            targets.extend(entity.origin.clone());
        }
        targets.iter().map(|t| location_json(t)).collect()
    }

    pub fn get(&self, id: &str) -> Option<Value> {
        self.list().into_iter().find(|l| l["id"] == id)
    }

    /// The runner of the static or registered location for `target`.
    fn runner_for(&self, target: &str) -> Option<Arc<SourceRunner>> {
        self.scheduler.runner(&source_id(&location_id(target)))
    }

    /// Whether a provider already reads `target` (its entities' origin).
    fn discovered(&self, target: &str) -> bool {
        self.catalog
            .snapshot()
            .iter()
            .any(|e| e.origin.as_deref() == Some(target))
    }

    /// Registers `target` (`type` must be `url`): reads it now, stores it
    /// and serves its entities. `dry_run` only reads. An existing static or
    /// registered location is a conflict unless `refresh`, which reads it
    /// again; a file a provider discovers is always a conflict.
    pub async fn register(
        &self,
        type_: &str,
        target: &str,
        dry_run: bool,
        refresh: bool,
    ) -> Result<Registration, RegisterError> {
        if type_ != "url" {
            return Err(RegisterError::Input(format!(
                "location type '{type_}' is not supported; register {{\"type\": \"url\", \"target\": <Bitbucket file URL>}}"
            )));
        }
        self.context
            .check(target)
            .map_err(|e| RegisterError::Input(e.to_string()))?;
        if self.pace.check().is_err() {
            return Err(RegisterError::TooFrequent(format!(
                "more than {} registrations in a minute (catalog.registrationsPerMinute); try again in a minute",
                self.limits.per_minute
            )));
        }
        let _writes = self.writes.lock().await;
        let existing = self.runner_for(target);
        let exists = existing.is_some() || self.discovered(target);
        if dry_run {
            let source =
                LocationSource::new(target, LocationOrigin::Registered, self.context.clone());
            let run = self.read(&source).await?;
            return Ok(self.registration(target, &run, exists));
        }
        if let Some(runner) = existing {
            let Some(location) = runner.source().as_location().filter(|_| refresh) else {
                return Err(RegisterError::Conflict(format!(
                    "Location url:{target} already exists (id {}); pass onConflict=refresh to read it again",
                    location_id(target)
                )));
            };
            let _exclusive = runner.exclusive().await;
            let run = self.read(location).await?;
            let registration = self.registration(target, &run, true);
            runner.apply_location_read(run).await;
            return Ok(registration);
        }
        if exists {
            return Err(RegisterError::Conflict(format!(
                "Location url:{target} is already read by a provider's discovery; its entities are in the catalog (refresh the provider instead)"
            )));
        }
        let registered = self.store.locations().await?.len();
        if registered >= self.limits.max_registered {
            return Err(RegisterError::Full(format!(
                "{registered} locations are registered, the most catalog.maxRegisteredLocations allows; remove one (DELETE /api/catalog/locations/{{id}}) or raise the limit"
            )));
        }
        let source = LocationSource::new(target, LocationOrigin::Registered, self.context.clone());
        let run = self.read(&source).await?;
        // Another source's entities would not be served from here: say so
        // rather than answer 201 for entities that never appear.
        let snapshot = self.catalog.snapshot();
        let held: Vec<String> = run
            .entities
            .iter()
            .flatten()
            .filter(|e| snapshot.get(&e.key()).is_some())
            .map(Entity::entity_ref)
            .collect();
        if !held.is_empty() {
            return Err(RegisterError::Conflict(format!(
                "{} of the entities at {target} already come from another source ({}{}); nothing was registered",
                held.len(),
                held.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                if held.len() > 5 { ", …" } else { "" }
            )));
        }
        self.store
            .add_location(&RegisteredLocation {
                id: source.location_id().to_owned(),
                type_: "url".into(),
                target: target.to_owned(),
                created_at: now_rfc3339(),
            })
            .await?;
        let registration = self.registration(target, &run, false);
        let runner = Arc::new(self.runner(source));
        runner.apply_location_read(run).await;
        self.scheduler.add(runner);
        tracing::info!(url = target, "location registered");
        Ok(registration)
    }

    /// Takes on the locations another replica registered or removed (as
    /// stored), so this one lists them and reads them once it leads. Their
    /// entities come with the changes it follows.
    pub async fn follow_registered(&self) -> Result<(), StoreError> {
        let _writes = self.writes.lock().await;
        let registered = self.store.locations().await?;
        for runner in self.scheduler.runners() {
            let Some(location) = runner.source().as_location() else {
                continue;
            };
            if location.origin() == LocationOrigin::Registered
                && !registered.iter().any(|r| r.target == location.target())
            {
                runner.retire();
                self.scheduler.remove(runner.id());
            }
        }
        for location in registered {
            if self.runner_for(&location.target).is_none() {
                let source = LocationSource::new(
                    &location.target,
                    LocationOrigin::Registered,
                    self.context.clone(),
                );
                self.scheduler.add(Arc::new(self.runner(source)));
            }
        }
        Ok(())
    }

    /// A runner for a location source, wired like every other source.
    pub fn runner(&self, source: LocationSource) -> SourceRunner {
        SourceRunner::new(
            Source::Location(source),
            Arc::clone(&self.catalog),
            Arc::clone(&self.store),
            Arc::clone(&self.applier),
            self.shutdown.child_token(),
        )
    }

    /// Reads a location within the location schedule's timeout; a target
    /// that yields nothing is an error (nothing is stored).
    async fn read(&self, source: &LocationSource) -> Result<LocationRead, RegisterError> {
        let timeout = self.context.schedule.timeout;
        let stats = Arc::new(RequestStats::default());
        let run = tokio::time::timeout(timeout, source.read(&stats))
            .await
            .map_err(|_| {
                RegisterError::Unavailable(format!(
                    "reading {} took longer than catalog.locationSchedule.timeout ({}s); nothing was registered",
                    source.target(),
                    timeout.as_secs()
                ))
            })?;
        match run.error {
            None => Ok(run),
            Some(LocationError::Refused(err)) => Err(RegisterError::Input(err.to_string())),
            Some(err @ LocationError::NotFound(_)) => Err(RegisterError::NotFound(err.to_string())),
            Some(err @ LocationError::Read { .. }) => Err(RegisterError::Unavailable(format!(
                "{err}; nothing was registered"
            ))),
        }
    }

    fn registration(&self, target: &str, run: &LocationRead, exists: bool) -> Registration {
        Registration {
            location: location_json(target),
            entities: run.entities.clone().unwrap_or_default(),
            exists,
            problems: run.report.problems.clone(),
        }
    }

    /// Removes the registered location `id` and its entities.
    pub async fn remove(&self, id: &str) -> Result<(), RemoveError> {
        let _writes = self.writes.lock().await;
        let source = source_id(id);
        let runner = self
            .scheduler
            .runner(&source)
            .filter(|r| {
                r.source()
                    .as_location()
                    .is_some_and(|l| l.origin() == LocationOrigin::Registered)
            })
            .ok_or_else(|| {
                let message = match self.get(id) {
                    Some(location) => format!(
                        "Location {id} ({}) was not registered over HTTP: it comes from catalog.locations or a provider's discovery, so change the configuration instead",
                        location["target"].as_str().unwrap_or_default()
                    ),
                    None => format!("Found no location with ID {id}"),
                };
                RemoveError::NotFound(message)
            })?;
        // No run is half-way while the location goes.
        let _exclusive = runner.exclusive().await;
        self.store.remove_location(id, &source).await?;
        runner.retire();
        self.scheduler.remove(&source);
        for problem in self.applier.remove_source(&source).await {
            tracing::error!(url = runner.target(), "{}", problem.message);
        }
        tracing::info!(url = runner.target(), "location removed");
        Ok(())
    }
}
