//! Wiring: [`Application::build`] turns a [`Config`] into an opened store, a
//! loaded catalog, a bound listener and running schedules;
//! [`Application::run_until_stopped`] serves until SIGTERM/SIGINT and shuts
//! down cleanly; [`reload`] re-reads the config on SIGHUP.

mod reload;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::server::{self, ServeLimits};
use crate::api::{self, ApiState};
use crate::bitbucket::{HttpPool, HttpSetupError};
use crate::catalog::Catalog;
use crate::config::{Config, DeletionGuard, Environment, ExternalAccess};
use crate::discovery::cloud::CloudFlavour;
use crate::discovery::location::{LocationContext, LocationOrigin, LocationSource};
use crate::discovery::server::ServerFlavour;
use crate::discovery::{RunReport, Source};
use crate::locations::Locations;
use crate::replica::{Promotion, Replica};
use crate::scheduler::{
    Applier, Departure, Gate, LeftProviders, Scheduler, SchedulerError, SourceRunner,
};
use crate::store::{self, CatalogStore, StoreError};
use crate::webhooks::Webhooks;

/// How long in-flight HTTP requests may take to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {addr}: {source}; free the port or set backend.listen.port")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Http(#[from] HttpSetupError),
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("integration for host '{0}' disappeared from the config")]
    MissingIntegration(String),
    #[error(
        "this replica lost its connection to the database while leading and stopped, so that another one leads; restart it to rejoin as a follower"
    )]
    LeadershipLost,
}

/// The configured sources, ready to run, and what building more locations
/// at run time needs.
pub(crate) struct Sources {
    /// Server providers, Cloud providers, then static locations.
    pub sources: Vec<Source>,
    pub locations: LocationContext,
}

/// Each provider's `targetScope`, by id.
fn target_scopes(config: &Config) -> std::collections::HashMap<String, crate::config::TargetScope> {
    let server = config
        .providers
        .iter()
        .map(|p| (p.id.clone(), p.shared.target_scope));
    let cloud = (config.cloud_providers.iter()).map(|p| (p.id.clone(), p.shared.target_scope));
    server.chain(cloud).collect()
}

/// Builds the providers and static locations from the config.
pub(crate) fn build_sources(config: &Config) -> Result<Sources, AppError> {
    let pool = Arc::new(HttpPool::build(
        &config.integrations,
        config.extra_ca_file.as_deref(),
    )?);
    sources_on(config, pool)
}

/// Like [`build_sources`], on the HTTP clients of `pool` (a reload that
/// left `integrations` alone keeps their pace and concurrency cap shared).
fn sources_on(config: &Config, pool: Arc<HttpPool>) -> Result<Sources, AppError> {
    let missing = |host: &str| AppError::MissingIntegration(host.to_owned());
    let shared = |host: &str| pool.get(host).cloned().ok_or_else(|| missing(host));
    let servers = config.providers.iter().map(|provider| {
        let integration =
            (config.integrations.server(&provider.host)).ok_or_else(|| missing(&provider.host))?;
        let http = shared(&integration.host)?;
        let flavour = ServerFlavour::provider(provider.clone(), integration.clone(), http);
        Ok(Source::Server(flavour))
    });
    let clouds = config.cloud_providers.iter().map(|provider| {
        let integration =
            (config.integrations.cloud(&provider.host)).ok_or_else(|| missing(&provider.host))?;
        let http = shared(&integration.host)?;
        let flavour = CloudFlavour::provider(provider.clone(), integration.clone(), http);
        Ok(Source::Cloud(flavour))
    });
    let mut sources = servers
        .chain(clouds)
        .collect::<Result<Vec<_>, AppError>>()?;
    let locations = LocationContext {
        integrations: Arc::new(config.integrations.clone()),
        http: Arc::clone(&pool),
        settings: config.catalog.clone(),
        schedule: config.locations.schedule.clone(),
    };
    for location in &config.locations.locations {
        sources.push(Source::Location(LocationSource::new(
            &location.target,
            LocationOrigin::Static,
            locations.clone(),
        )));
    }
    Ok(Sources { sources, locations })
}

/// Raises the soft open-file limit to the hard one where allowed, and
/// returns the soft limit in force (1024 when it cannot be read).
fn raise_open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read or raise the open-file limit");
            1024
        }
    }
}

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    limits: ServeLimits,
    state: ApiState,
    store: Arc<dyn CatalogStore>,
    applier: Arc<Applier>,
    shutdown: CancellationToken,
    /// The config in force, for reloads.
    config: Config,
    /// The files and variables it was read from; `None`: no reload.
    reload_from: Option<(Vec<PathBuf>, Environment)>,
}

/// The opened store and, on a shared PostgreSQL database, this replica
/// with its lock session when it leads.
struct Storage {
    store: Arc<dyn CatalogStore>,
    replica: Option<Arc<Replica>>,
    lock_session: Option<crate::replica::LeaderLock>,
}

impl Storage {
    /// Only the leader (or a daemon on its own) changes what is stored.
    fn leading(&self) -> bool {
        self.replica.as_ref().is_none_or(|r| r.is_leader())
    }
}

impl Application {
    /// Opens the store and serves its catalog before any Bitbucket call,
    /// binds `backend.listen` (port 0 picks a free port) and starts the
    /// provider schedules.
    pub async fn build(config: Config) -> Result<Self, AppError> {
        let kept = config.clone();
        // First: raising the descriptor limit must precede opening anything.
        let limits = serve_limits(&config);
        crate::metrics::record_build_info(env!("CARGO_PKG_VERSION"));
        let Sources {
            mut sources,
            locations: location_context,
        } = build_sources(&config)?;
        let (listener, addr) = bind(&config).await?;
        let storage = open_storage(&config, addr).await?;
        let leading = storage.leading();
        let catalog = Arc::new(Catalog::with_retained_removals(config.retained_removals));
        add_registered_locations(&storage.store, &mut sources, &location_context).await?;
        let (restored_reports, left_config) =
            restore_catalog(&config, &storage, &sources, &catalog).await?;
        // The restored catalog is served as it was stored; the relation
        // index is built (and relations that moved on are settled) in the
        // background, before any change applies.
        let applier = Applier::new(Arc::clone(&catalog), Arc::clone(&storage.store));
        // A follower settles when it takes over; meanwhile it builds the
        // sorted and facet indexes (the leader's settling does).
        if leading {
            applier.settle();
        } else {
            let catalog = Arc::clone(&catalog);
            tokio::task::spawn_blocking(move || catalog.build_indexes());
        }
        let left = Arc::new(LeftProviders::new(
            Arc::clone(&catalog),
            Arc::clone(&applier),
        ));
        if leading {
            let configured: Vec<String> = sources.iter().map(|s| s.id().to_owned()).collect();
            forget_left_providers(&storage.store, &left, configured, left_config).await?;
            // Those of the providers just forgotten went with them. (A
            // follower loads them when it takes over.)
            applier.previews().load().await;
        }
        let access = Arc::new(config.backend.external_access.clone());
        warn_if_writes_are_open(&access, addr);

        let shutdown = CancellationToken::new();
        let runners = source_runners(sources, &catalog, &storage.store, &applier, &shutdown);
        restore_reports(&runners, restored_reports).await;
        let scheduler = Arc::new(
            Scheduler::start(
                runners,
                &config.locations.schedule,
                Gate::new(leading),
                left,
            )
            .await?,
        );
        log_sources(&scheduler, leading).await;
        let integrations = Arc::clone(&location_context.http);
        let locations = Arc::new(
            Locations::new(
                location_context,
                Arc::clone(&catalog),
                Arc::clone(&storage.store),
                Arc::clone(&applier),
                Arc::clone(&scheduler),
                shutdown.clone(),
                config.locations.registrations,
            )
            .with_target_scopes(target_scopes(&config)),
        );
        let Storage {
            store,
            replica,
            lock_session,
        } = storage;
        if let Some(replica) = &replica {
            let promotion = || Promotion {
                catalog: Arc::clone(&catalog),
                applier: Arc::clone(&applier),
                scheduler: Arc::clone(&scheduler),
                locations: Arc::clone(&locations),
            };
            start_role(replica, lock_session, promotion, &shutdown);
        }
        let webhooks = Arc::new(Webhooks::new(&config.integrations, Arc::clone(&scheduler)));
        let state = ApiState {
            catalog,
            ready: Arc::new(AtomicBool::new(false)),
            scheduler,
            locations,
            access,
            evaluators: api::evaluators(),
            webhooks,
            integrations,
            replica,
            removals: Arc::new(config.backend.api_rate_limit.deletions.into()),
            pace: Arc::new((&config.backend.api_rate_limit.bitbucket_reads).into()),
            status_page: Default::default(),
            reloads: Arc::default(),
            query_budget: config.backend.query_budget,
            trusted_proxies: Arc::new(config.backend.trusted_proxies.clone()),
        };
        Ok(Self {
            listener,
            addr,
            limits,
            state,
            store,
            applier,
            shutdown,
            config: kept,
            reload_from: None,
        })
    }

    /// Reloads the config from `files` and `env` (as it was loaded) on
    /// SIGHUP and, with `backend.reload.watch`, when a file changes.
    pub fn reload_from(mut self, files: Vec<PathBuf>, env: Environment) -> Self {
        self.reload_from = Some((files, env));
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.state.catalog)
    }

    /// Serves until SIGTERM or SIGINT.
    pub async fn run_until_stopped(self) -> Result<(), AppError> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then stops accepting, lets in-flight
    /// requests finish (bounded), cancels running discovery, waits for the
    /// batches being applied and closes the store.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let Self {
            listener,
            addr,
            limits,
            state,
            store,
            applier,
            shutdown,
            config,
            reload_from,
        } = self;
        if let Some((files, env)) = reload_from {
            let watch = config.backend.watch_config;
            let parts = reload::Parts {
                catalog: Arc::clone(&state.catalog),
                store: Arc::clone(&store),
                applier: Arc::clone(&applier),
                scheduler: Arc::clone(&state.scheduler),
                shutdown: shutdown.clone(),
                reloads: Arc::clone(&state.reloads),
                webhooks: Arc::clone(&state.webhooks),
                http: Arc::clone(&state.integrations),
            };
            Arc::new(reload::Reloader::new(files, env, config, parts))
                .spawn(watch, shutdown.clone());
        }
        let ready = Arc::clone(&state.ready);
        let scheduler = Arc::clone(&state.scheduler);
        let catalog = Arc::clone(&state.catalog);
        let replica = state.replica.clone();
        let app = api::router(state);
        let lost = replica.as_ref().map(|r| r.lost());
        if let Some(replica) = &replica {
            let router = app.clone();
            replica.answer_forwarded(
                Arc::new(move |request| Box::pin(api::forward::replay(router.clone(), request))),
                shutdown.clone(),
            );
        }
        let upkeep = spawn_metrics_upkeep(catalog, replica, shutdown.clone());
        tracing::info!(%addr, "listening");
        ready.store(true, Ordering::Release);
        let stopping = shutdown.clone();
        let stopped = stop_or_lost(stop, lost.clone());
        let server = server::serve(listener, app, limits, async move {
            stopped.await;
            tracing::info!("shutting down");
            stopping.cancel();
        });
        tokio::select! {
            () = server => {}
            () = async {
                shutdown.cancelled().await;
                tokio::time::sleep(DRAIN_TIMEOUT).await;
            } => {
                tracing::warn!("in-flight requests did not finish within {}s; closing", DRAIN_TIMEOUT.as_secs());
            }
        }
        ready.store(false, Ordering::Release);
        shutdown.cancel();
        scheduler.shutdown().await;
        upkeep.abort();
        // Batches under way finish (each is one transaction) before the store closes.
        applier.close().await;
        store.close().await;
        tracing::info!("stopped");
        if lost.is_some_and(|lost| lost.is_cancelled()) {
            return Err(AppError::LeadershipLost);
        }
        Ok(())
    }
}

/// Raises the descriptor limit (which must precede opening anything) and
/// derives the server's limits from it and `backend.listen`.
fn serve_limits(config: &Config) -> ServeLimits {
    let open_file_limit = raise_open_file_limit();
    let listen = &config.backend.listen;
    ServeLimits {
        max_connections: server::connection_cap(listen.max_connections, open_file_limit),
        header_timeout: listen.header_timeout,
        idle_timeout: listen.idle_timeout,
    }
}

/// Binds `backend.listen`; port 0 picks a free port.
async fn bind(config: &Config) -> Result<(TcpListener, SocketAddr), AppError> {
    let bind = format!(
        "{}:{}",
        config.backend.listen.host, config.backend.listen.port
    );
    let listener = TcpListener::bind(&bind)
        .await
        .map_err(|source| AppError::Bind {
            addr: bind.clone(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| AppError::Bind { addr: bind, source })?;
    Ok((listener, addr))
}

/// Opens `backend.database`; on a shared PostgreSQL database, joins the
/// replicas as leader or follower.
async fn open_storage(config: &Config, addr: SocketAddr) -> Result<Storage, AppError> {
    let store::Opened { store, shared } = store::open(&config.backend.database).await?;
    tracing::info!(
        store = store::location(&config.backend.database),
        "store opened"
    );
    let (replica, lock_session) = match (shared, &config.backend.database.postgres) {
        (Some(shared), Some(connection)) => {
            let (replica, session) = Replica::join(
                crate::replica::identity(addr.port()),
                shared,
                store::postgres::connect_options(connection),
                config.locations.schedule.timeout + crate::replica::requests::CLAIM_TIMEOUT,
            )
            .await?;
            (Some(replica), session)
        }
        _ => (None, None),
    };
    Ok(Storage {
        store,
        replica,
        lock_session,
    })
}

/// Adds the locations registered over HTTP (stored) to `sources`; a
/// static location with the same target wins.
async fn add_registered_locations(
    store: &Arc<dyn CatalogStore>,
    sources: &mut Vec<Source>,
    context: &LocationContext,
) -> Result<(), AppError> {
    for registered in store.locations().await? {
        if sources.iter().any(|s| {
            s.as_location()
                .is_some_and(|l| l.target() == registered.target)
        }) {
            tracing::warn!(
                url = registered.target,
                "a registered location is also in catalog.locations; the static one is used"
            );
            continue;
        }
        sources.push(Source::Location(LocationSource::with_id(
            &registered.id,
            &registered.target,
            LocationOrigin::Registered,
            context.clone(),
        )));
    }
    Ok(())
}

/// Loads the stored catalog into `catalog` and returns the sources' last
/// reports and the stored providers no longer configured, with the
/// entities each serves (they stay served until the deletion guard lets
/// them go: see [`forget_left_providers`]).
async fn restore_catalog(
    config: &Config,
    storage: &Storage,
    sources: &[Source],
    catalog: &Catalog,
) -> Result<(Vec<(String, RunReport)>, Vec<(String, usize)>), AppError> {
    let loading = Instant::now();
    // Streamed into the catalog: never every stored row at once.
    let restored = (storage.store)
        .restore(config.retained_removals, catalog)
        .await?;
    let left = catalog
        .working_sources()
        .into_iter()
        .filter(|(source, _)| !sources.iter().any(|s| s.id() == source))
        .collect();
    tracing::info!(
        entities = restored.entities,
        elapsed_ms = u64::try_from(loading.elapsed().as_millis()).unwrap_or(u64::MAX),
        "stored catalog loaded"
    );
    Ok((restored.runs, left))
}

/// On the leader: each stored provider no longer configured goes through
/// the deletion guard (held ones keep serving, with their repository
/// records, until confirmed), then what is left of unconfigured sources
/// with nothing served (run records, repository records) is forgotten.
async fn forget_left_providers(
    store: &Arc<dyn CatalogStore>,
    left: &LeftProviders,
    mut keep: Vec<String>,
    serving: Vec<(String, usize)>,
) -> Result<(), AppError> {
    for (provider, entities) in serving {
        match left.leave(&provider, entities, DeletionGuard::default()) {
            Departure::Held => keep.push(provider),
            Departure::Removed => {
                left.remove(&provider).await;
            }
        }
    }
    let forgotten = store.retain_sources(&keep).await?;
    if forgotten > 0 {
        tracing::info!(
            sources = forgotten,
            "forgot the records of sources no longer configured that served nothing"
        );
    }
    Ok(())
}

fn warn_if_writes_are_open(access: &ExternalAccess, addr: SocketAddr) {
    if access.open {
        tracing::warn!(
            %addr,
            "DANGER: backend.auth.dangerouslyDisableDefaultAuthPolicy is true: the write endpoints (locations, refresh, entity removal, analyze-location, validate-entity) are open to anyone who can reach this port, without a token; remove it and set backend.auth.externalAccess (type: static) outside a sandbox"
        );
    } else if !access.protected {
        tracing::warn!(
            %addr,
            "no backend.auth.externalAccess: every write endpoint answers 401; set backend.auth.externalAccess (type: static) to allow writes with a token"
        );
    }
}

/// One runner per source, each stopped by a child of `shutdown`.
fn source_runners(
    sources: Vec<Source>,
    catalog: &Arc<Catalog>,
    store: &Arc<dyn CatalogStore>,
    applier: &Arc<Applier>,
    shutdown: &CancellationToken,
) -> Vec<Arc<SourceRunner>> {
    sources
        .into_iter()
        .map(|source| {
            Arc::new(SourceRunner::new(
                source,
                Arc::clone(catalog),
                Arc::clone(store),
                Arc::clone(applier),
                shutdown.child_token(),
            ))
        })
        .collect()
}

/// Gives each runner its last stored report and its repository count.
async fn restore_reports(runners: &[Arc<SourceRunner>], reports: Vec<(String, RunReport)>) {
    for (id, report) in reports {
        if let Some(runner) = runners.iter().find(|r| r.id() == id) {
            runner.restore_report(report);
        }
    }
    for runner in runners {
        register_metrics(runner);
        runner.count_repositories().await;
    }
}

/// The series alerts read, at their stored values (or 0) before any run.
pub(super) fn register_metrics(runner: &SourceRunner) {
    let report = runner.last_report();
    let problems = report.as_ref().map_or(0, |r| r.problems.len());
    let last_success = report
        .filter(|r| r.succeeded())
        .and_then(|r| r.finished_at)
        .unwrap_or_else(chrono::Utc::now);
    crate::metrics::register_provider(runner.id(), problems, last_success.timestamp() as f64);
}

/// A leader keeps its lock session; a follower catches up and takes over
/// (with `promotion`) when the leader goes.
fn start_role(
    replica: &Arc<Replica>,
    lock_session: Option<crate::replica::LeaderLock>,
    promotion: impl FnOnce() -> Promotion,
    shutdown: &CancellationToken,
) {
    match lock_session {
        Some(session) => replica.keep_leading(session, shutdown.clone()),
        None => replica.follow(promotion(), shutdown.clone()),
    }
}

/// Records the change feed's and the replica's gauges every few seconds
/// until `shutdown`.
fn spawn_metrics_upkeep(
    catalog: Arc<Catalog>,
    replica: Option<Arc<Replica>>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(METRICS_UPKEEP_EVERY);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    let snapshot = catalog.snapshot();
                    let changes = snapshot.changes();
                    crate::metrics::record_change_feed(
                        snapshot.last_seq(),
                        changes.horizon(),
                        changes.removals(),
                    );
                    if let Some(replica) = &replica {
                        replica.record_metrics();
                    }
                    crate::metrics::upkeep();
                }
                () = shutdown.cancelled() => break,
            }
        }
    })
}

/// Completes when `stop` does or when this replica loses leadership.
async fn stop_or_lost(stop: impl Future<Output = ()>, lost: Option<CancellationToken>) {
    tokio::select! {
        () = stop => {}
        () = async {
            match lost {
                Some(lost) => lost.cancelled().await,
                None => std::future::pending().await,
            }
        } => {}
    }
}

/// One start-up line per source: what it reads, how often, and when it
/// first runs (after `initialDelay`). A follower says so first: its
/// schedules run only once it leads.
async fn log_sources(scheduler: &Scheduler, leading: bool) {
    if !leading {
        tracing::info!(
            role = "follower",
            "this replica is a follower: it serves the leader's catalog and runs no schedule until it takes over (see /api/catalog/replica)"
        );
    }
    for runner in scheduler.runners() {
        let schedule = runner.schedule();
        let first_run = if leading {
            scheduler.next_run(runner.id()).await
        } else {
            Some("when this replica leads".to_owned())
        };
        let first_run = first_run.as_deref().unwrap_or("only on POST …/refresh");
        tracing::info!(
            source = runner.id(),
            kind = runner.source().kind(),
            target = runner.target(),
            schedule = %schedule.frequency,
            timeout_s = schedule.timeout.as_secs(),
            initial_delay_s = schedule.initial_delay.map(|d| d.as_secs()),
            first_run,
            "{} {}: {}, first run {}",
            runner.source().kind(),
            runner.id(),
            schedule.frequency,
            first_run,
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
