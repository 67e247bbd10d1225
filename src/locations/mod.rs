//! Locations given by URL, as the API sees them: static ones from
//! `catalog.locations`, those registered over HTTP (kept in the store, read
//! again on the location schedule, removable), and the files providers
//! discovered. Registering reads the target at once, so a location that
//! cannot be read is never stored.
//!
//! - [`analyze`]: catalog-import's analysis of a file or repository.
//! - [`model`]: the typed [`Location`] and its [`Origin`].
//! - [`query`]: `POST /locations/by-query` paging.

pub(crate) mod analyze;
mod error;
pub(crate) mod model;
pub(crate) mod query;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::bitbucket::RequestStats;
use crate::bitbucket::reader::{FileReader, Sites};
use crate::catalog::process::FileSource;
use crate::catalog::{Catalog, Entity, PreparedEntity};
use crate::config::{RegistrationLimits, TargetScope};
use crate::discovery::location::{
    LocationContext, LocationError, LocationOrigin, LocationRead, LocationSource, location_id,
    source_id,
};
use crate::discovery::{Problem, Source};
use crate::scheduler::{Applier, Scheduler, SourceRunner};
use crate::store::{CatalogStore, RegisteredLocation, StoreError};

pub(crate) use analyze::Analysis;
use analyze::catalog_file_in;
use error::{BadInput, Conflict, Missing, Unavailable};
pub(crate) use error::{RegisterError, RemoveError};
pub(crate) use model::{Location, Origin};
pub(crate) use query::{LocationPage, LocationQuery, LocationQueryError};

/// What a registration (or a dry run of one) came to.
#[derive(Debug)]
pub(crate) struct Registration {
    pub location: Location,
    /// The generated Location entity first, then what the target yields.
    pub entities: Vec<Entity>,
    /// Whether the target already was a location (dry run).
    pub exists: bool,
    /// What the target's files got wrong (our addition to Backstage's body).
    pub problems: Vec<Problem>,
}

pub(crate) struct Locations {
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
    /// Each provider's `targetScope`, by provider id (`validate-entity`).
    target_scopes: HashMap<String, TargetScope>,
}

impl Locations {
    pub(crate) fn new(
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
            target_scopes: HashMap::new(),
        }
    }

    /// Each provider's `targetScope` (by id), which `validate-entity` keeps to.
    pub(crate) fn with_target_scopes(mut self, scopes: HashMap<String, TargetScope>) -> Self {
        self.target_scopes = scopes;
        self
    }

    /// Static, registered and discovered locations, one per target, by target.
    pub(crate) fn list(&self) -> Vec<Location> {
        let mut targets = BTreeMap::new();
        for runner in self.scheduler.runners() {
            if let Some(location) = runner.source().as_location() {
                let listed = Location::url(location.target(), location.origin().into())
                    .with_id(location.location_id());
                targets.insert(location.target().to_owned(), listed);
            }
        }
        for entity in self.catalog.snapshot().iter() {
            if let Some(origin) = &entity.origin {
                targets
                    .entry(origin.to_string())
                    .or_insert_with(|| Location::url(origin, Origin::Discovered));
            }
        }
        targets.into_values().collect()
    }

    pub(crate) fn get(&self, id: &str) -> Option<Location> {
        self.list().into_iter().find(|l| l.id == id)
    }

    /// The runner of the static or registered location for `target`.
    fn runner_for(&self, target: &str) -> Option<Arc<SourceRunner>> {
        // By target, not by id: a location moved by PUT keeps its old id.
        self.scheduler.runners().into_iter().find(|r| {
            r.source()
                .as_location()
                .is_some_and(|l| l.target() == target)
        })
    }

    /// The id `target` is listed under (derived from it unless a location
    /// moved there by PUT kept its own).
    fn id_of(&self, target: &str) -> String {
        self.runner_for(target)
            .and_then(|r| r.source().as_location().map(|l| l.location_id().to_owned()))
            .unwrap_or_else(|| location_id(target))
    }

    /// Whether `target` is a location already (static, registered or discovered).
    fn known(&self, target: &str) -> bool {
        self.runner_for(target).is_some() || self.discovered(target)
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
    pub(crate) async fn register(
        &self,
        type_: &str,
        target: &str,
        dry_run: bool,
        refresh: bool,
    ) -> Result<Registration, RegisterError> {
        self.check_target(type_, target)?;
        self.paced()?;
        let _writes = self.writes.lock().await;
        let existing = self.runner_for(target);
        let exists = existing.is_some() || self.discovered(target);
        if dry_run {
            let source = self.registered_source(target);
            let run = self.read(&source).await?;
            return Ok(self.registration(&source, &run, exists));
        }
        if let Some(runner) = existing {
            let Some(location) = runner.source().as_location().filter(|_| refresh) else {
                return Err(Conflict::Registered {
                    target: target.to_owned(),
                    id: self.id_of(target),
                }
                .into());
            };
            let _exclusive = runner.exclusive().await;
            let run = self.read(location).await?;
            let registration = self.registration(location, &run, true);
            runner.apply_location_read(run).await;
            return Ok(registration);
        }
        if exists {
            return Err(Conflict::Discovered(target.to_owned()).into());
        }
        let registered = self.store.locations().await?.len();
        if registered >= self.limits.max_registered {
            return Err(RegisterError::Full(registered));
        }
        let source = self.registered_source(target);
        let run = self.read(&source).await?;
        // Another source's entities would not be served from here: say so
        // rather than answer 201 for entities that never appear.
        self.refuse_held(target, &run, None)?;
        let registration = self.registration(&source, &run, false);
        self.store.add_location(&stored(&source)).await?;
        self.serve(source, run).await;
        tracing::info!(url = target, "location registered");
        Ok(registration)
    }

    /// A `url` target on a configured Bitbucket (no request is made).
    fn check_target(&self, type_: &str, target: &str) -> Result<(), RegisterError> {
        if type_ != "url" {
            return Err(BadInput::RegisterType(type_.to_owned()).into());
        }
        self.context
            .check(target)
            .map_err(|e| BadInput::Refused(e).into())
    }

    /// `catalog.registrationsPerMinute`.
    fn paced(&self) -> Result<(), RegisterError> {
        if self.pace.check().is_err() {
            return Err(RegisterError::TooFrequent(self.limits.per_minute));
        }
        Ok(())
    }

    /// Takes on the locations another replica registered or removed (as
    /// stored), so this one lists them and reads them once it leads. Their
    /// entities come with the changes it follows.
    pub(crate) async fn follow_registered(&self) -> Result<(), StoreError> {
        let _writes = self.writes.lock().await;
        let registered = self.store.locations().await?;
        for runner in self.scheduler.runners() {
            let Some(location) = runner.source().as_location() else {
                continue;
            };
            if location.origin() == LocationOrigin::Registered
                && !registered
                    .iter()
                    .any(|r| r.target == location.target() && r.id == location.location_id())
            {
                runner.retire();
                self.scheduler.remove(runner.id());
            }
        }
        for location in registered {
            if self.runner_for(&location.target).is_none() {
                let source = LocationSource::with_id(
                    &location.id,
                    &location.target,
                    LocationOrigin::Registered,
                    self.context.clone(),
                );
                self.scheduler.add(Arc::new(self.runner(source)));
            }
        }
        Ok(())
    }

    /// A location registered over HTTP (or to be) at `target`, under the id
    /// derived from it, or, when a location moved by PUT holds that id, one
    /// derived from both (still stable across replicas).
    fn registered_source(&self, target: &str) -> LocationSource {
        let mut id = location_id(target);
        while self.scheduler.runner(&source_id(&id)).is_some() {
            id = location_id(&format!("{id} {target}"));
        }
        LocationSource::with_id(
            &id,
            target,
            LocationOrigin::Registered,
            self.context.clone(),
        )
    }

    /// A runner for a location source, wired like every other source.
    pub(crate) fn runner(&self, source: LocationSource) -> SourceRunner {
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
            .map_err(|_| Unavailable::Timeout {
                target: source.target().to_owned(),
                seconds: timeout.as_secs(),
            })?;
        match run.error {
            None => Ok(run),
            Some(LocationError::Refused(err)) => Err(BadInput::Refused(err).into()),
            Some(err @ LocationError::NotFound(_)) => Err(Missing::Target(err).into()),
            Some(err @ LocationError::Read { .. }) => Err(Unavailable::Read(err).into()),
        }
    }

    fn registration(
        &self,
        source: &LocationSource,
        run: &LocationRead,
        exists: bool,
    ) -> Registration {
        Registration {
            location: Location::url(source.target(), Origin::Registered)
                .with_id(source.location_id()),
            entities: run
                .entities
                .iter()
                .flatten()
                .map(|p| p.entity.clone())
                .collect(),
            exists,
            problems: run.report.problems.clone(),
        }
    }

    /// Removes the registered location `id` and its entities.
    pub(crate) async fn remove(&self, id: &str) -> Result<(), RemoveError> {
        let _writes = self.writes.lock().await;
        let runner = self.registered(id)?;
        // No run is half-way while the location goes.
        let _exclusive = runner.exclusive().await;
        self.store.remove_location(id, runner.id()).await?;
        self.retire(&runner).await;
        Ok(())
    }

    /// The runner of the location registered over HTTP as `id`; a static or
    /// discovered one cannot be changed over HTTP (404, as Backstage answers
    /// for a location it does not hold).
    fn registered(&self, id: &str) -> Result<Arc<SourceRunner>, RemoveError> {
        self.scheduler
            .runner(&source_id(id))
            .filter(|r| {
                r.source()
                    .as_location()
                    .is_some_and(|l| l.origin() == LocationOrigin::Registered)
            })
            .ok_or_else(|| {
                RemoveError::NotFound(match self.get(id) {
                    Some(location) => Missing::NotRegistered {
                        id: id.to_owned(),
                        target: location.target,
                    },
                    None => Missing::Id(id.to_owned()),
                })
            })
    }

    /// Stops serving a registered location the store no longer holds.
    async fn retire(&self, runner: &SourceRunner) {
        runner.retire();
        self.scheduler.remove(runner.id());
        for problem in self.applier.remove_source(runner.id()).await {
            tracing::error!(url = runner.target(), "{}", problem.message);
        }
        tracing::info!(url = runner.target(), "location removed");
    }

    /// Points the registered location `id` at `target` (`PUT
    /// /locations/{id}`): the new target is read first (a failed read
    /// changes nothing), then the old location and its entities go and the
    /// new one is stored and served under the same id (catalog-client's
    /// `updateLocation` then `getLocationById` finds it).
    pub(crate) async fn update(
        &self,
        id: &str,
        type_: &str,
        target: &str,
    ) -> Result<Location, RegisterError> {
        self.check_target(type_, target)?;
        let _writes = self.writes.lock().await;
        let runner = self.registered(id)?;
        if runner.target() == target {
            let Some(location) = runner.source().as_location() else {
                return Err(Missing::Id(id.to_owned()).into());
            };
            let _exclusive = runner.exclusive().await;
            let run = self.read(location).await?;
            runner.apply_location_read(run).await;
            return Ok(Location::url(target, Origin::Registered).with_id(id));
        }
        self.paced()?;
        if self.known(target) {
            return Err(Conflict::TargetTaken {
                target: target.to_owned(),
                id: self.id_of(target),
            }
            .into());
        }
        let source =
            LocationSource::with_id(id, target, LocationOrigin::Registered, self.context.clone());
        let run = self.read(&source).await?;
        self.refuse_held(target, &run, Some(runner.id()))?;
        {
            // One transaction: a store error keeps the old location.
            let _exclusive = runner.exclusive().await;
            let new = Some(&stored(&source));
            self.store
                .replace_location(Some((id, runner.id())), new)
                .await?;
            self.retire(&runner).await;
        }
        self.serve(source, run).await;
        tracing::info!(id, url = target, "location updated");
        Ok(Location::url(target, Origin::Registered).with_id(id))
    }

    /// Refuses a read whose entities another source serves (`except`: the
    /// source being replaced).
    fn refuse_held(
        &self,
        target: &str,
        run: &LocationRead,
        except: Option<&str>,
    ) -> Result<(), RegisterError> {
        let snapshot = self.catalog.snapshot();
        let held: Vec<String> = run
            .entities
            .iter()
            .flatten()
            .map(|p| &p.entity)
            .filter(|e| snapshot.get(&e.key()).is_some())
            .filter(|e| {
                except.is_none_or(|source| {
                    self.catalog
                        .owner(&e.key())
                        .is_none_or(|owner| &*owner.source != source)
                })
            })
            .map(Entity::entity_ref)
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        Err(Conflict::Held {
            target: target.to_owned(),
            held,
        }
        .into())
    }

    /// Serves a stored registered location's read.
    async fn serve(&self, source: LocationSource, run: LocationRead) {
        let runner = Arc::new(self.runner(source));
        runner.apply_location_read(run).await;
        self.scheduler.add(runner);
    }

    /// The listed location an entity's `managed-by-location` names
    /// (`GET /locations/by-entity`): its discovered file, or the static or
    /// registered location it was read through.
    pub(crate) fn by_entity(&self, entity: &PreparedEntity) -> Option<Location> {
        let target = entity.location.as_deref()?;
        let runner = self.runner_for(target);
        if let Some(location) = runner.as_ref().and_then(|r| r.source().as_location()) {
            return Some(
                Location::url(target, location.origin().into()).with_id(location.location_id()),
            );
        }
        let listed = entity.origin.as_deref() == Some(target) || self.discovered(target);
        listed.then(|| Location::url(target, Origin::Discovered))
    }

    /// `POST /analyze-location` (catalog-import's first step): for a file,
    /// or a repository's `catalog_filename` (default `catalog-info.yaml`),
    /// the entities it holds and whether the file is already a location;
    /// for a repository without one, a suggested Component. Only targets on
    /// a configured Bitbucket are read.
    pub(crate) async fn analyze(
        &self,
        type_: &str,
        target: &str,
        catalog_filename: Option<&str>,
    ) -> Result<Analysis, RegisterError> {
        // It reads Bitbucket as registering does, so it counts against the same pace.
        self.paced()?;
        if type_ != "url" {
            return Err(BadInput::AnalyzeType(type_.to_owned()).into());
        }
        let (file, slug) = match self.context.check(target) {
            Ok(()) => (target.to_owned(), None),
            Err(_) => {
                let filename = catalog_filename
                    .map(|f| f.trim_start_matches('/'))
                    .filter(|f| !f.is_empty())
                    .unwrap_or("catalog-info.yaml");
                let (file, slug) = catalog_file_in(target, filename)
                    .ok_or_else(|| BadInput::NotRepositoryOrFile(target.to_owned()))?;
                self.context.check(&file).map_err(BadInput::Refused)?;
                (file, Some(slug))
            }
        };
        match self.read(&self.registered_source(&file)).await {
            Ok(run) => {
                let registered = self.known(&file);
                // The first entity is the generated Location entity.
                let entities = run
                    .entities
                    .unwrap_or_default()
                    .into_iter()
                    .skip(1)
                    .map(|p| p.entity);
                Ok(Analysis::existing(&file, registered, entities))
            }
            Err(RegisterError::NotFound(missing)) => match slug {
                Some(slug) => Ok(Analysis::suggested(&slug)),
                None => Err(RegisterError::NotFound(missing)),
            },
            Err(err) => Err(err),
        }
    }

    /// A page of locations (`POST /locations/by-query`).
    pub(crate) fn query(&self, query: &LocationQuery) -> Result<LocationPage, LocationQueryError> {
        query.page(self.list())
    }

    /// Resolves a Location target against the file it is written in, as
    /// discovery does (no request is made): `resolver(target, base)`.
    pub(crate) fn resolver(&self) -> impl Fn(&str, &str) -> Option<String> + use<> {
        let stats = Arc::new(RequestStats::default());
        let reader = FileReader::new(Sites::all(&self.context.integrations, None), &stats, 0);
        move |target, base| reader.resolve(target, base).ok()
    }
}

/// The store's record of `source`, registered now.
fn stored(source: &LocationSource) -> RegisteredLocation {
    RegisteredLocation {
        id: source.location_id().to_owned(),
        type_: "url".into(),
        target: source.target().to_owned(),
        created_at: chrono::Utc::now(),
    }
}
