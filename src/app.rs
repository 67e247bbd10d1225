//! Wiring: [`Application::build`] turns a [`Config`] into an opened store, a
//! loaded catalog, a bound listener and running schedules;
//! [`Application::run_until_stopped`] serves until SIGTERM/SIGINT and shuts
//! down cleanly.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::bitbucket::{CredentialsHint, HttpSetupError, IntegrationHttp, build_http_client};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::discovery::server::ServerProvider;
use crate::scheduler::{ProviderRunner, Scheduler, SchedulerError};
use crate::store::{self, CatalogStore, StoreError};

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
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("integration for host '{0}' disappeared from the config")]
    MissingIntegration(String),
}

/// Builds the runnable providers from the config.
pub fn build_providers(config: &Config) -> Result<Vec<ServerProvider>, AppError> {
    // One HTTP context per integration: providers on the same Bitbucket
    // share its pace, its concurrency cap and what a 429 taught it.
    let mut shared: HashMap<String, Arc<IntegrationHttp>> = HashMap::new();
    config
        .providers
        .iter()
        .map(|provider| {
            let integration = config
                .integrations
                .server(&provider.host)
                .ok_or_else(|| AppError::MissingIntegration(provider.host.clone()))?;
            let http = match shared.get(&integration.host) {
                Some(http) => Arc::clone(http),
                None => {
                    let client =
                        build_http_client(config.extra_ca_file.as_deref(), &integration.http)?;
                    let index = config
                        .integrations
                        .bitbucket_server
                        .iter()
                        .position(|i| i.host == integration.host)
                        .unwrap_or_default();
                    let credentials = CredentialsHint {
                        host: integration.host.clone(),
                        key: format!("integrations.bitbucketServer[{index}]"),
                    };
                    let http = Arc::new(IntegrationHttp::new(
                        client,
                        integration.auth.clone(),
                        &integration.http,
                        credentials,
                    ));
                    shared.insert(integration.host.clone(), Arc::clone(&http));
                    http
                }
            };
            Ok(ServerProvider::new(
                provider.clone(),
                integration.clone(),
                http,
            ))
        })
        .collect()
}

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: ApiState,
    store: Arc<dyn CatalogStore>,
    shutdown: CancellationToken,
}

impl Application {
    /// Opens the store and serves its catalog before any Bitbucket call,
    /// binds `backend.listen` (port 0 picks a free port) and starts the
    /// provider schedules.
    pub async fn build(config: Config) -> Result<Self, AppError> {
        let providers = build_providers(&config)?;
        let store: Arc<dyn CatalogStore> = Arc::from(store::open(&config.backend.database).await?);
        let catalog = Arc::new(Catalog::new());

        let loading = Instant::now();
        let configured: Vec<String> = providers.iter().map(|p| p.id().to_owned()).collect();
        let forgotten = store.retain_sources(&configured).await?;
        if forgotten > 0 {
            tracing::info!(
                sources = forgotten,
                "dropped stored entities of providers no longer configured"
            );
        }
        let stored = store.load().await?;
        let mut restored_reports = Vec::new();
        let mut sources = Vec::with_capacity(stored.len());
        for source in stored {
            if let Some(report) = source.last_run {
                restored_reports.push((source.id.clone(), report));
            }
            sources.push((source.id, source.entities));
        }
        catalog.restore(sources);
        tracing::info!(
            entities = catalog.len(),
            elapsed_ms = u64::try_from(loading.elapsed().as_millis()).unwrap_or(u64::MAX),
            "stored catalog loaded"
        );
        // Reverse relations across sources may have moved on since each was
        // stored; settle them in the background while the restored catalog
        // is already served.
        let settling = Arc::clone(&catalog);
        tokio::task::spawn_blocking(move || settling.restitch());

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

        let shutdown = CancellationToken::new();
        let runners: Vec<Arc<ProviderRunner>> = providers
            .into_iter()
            .map(|p| {
                Arc::new(ProviderRunner::new(
                    p,
                    Arc::clone(&catalog),
                    Arc::clone(&store),
                    shutdown.child_token(),
                ))
            })
            .collect();
        for (id, report) in restored_reports {
            if let Some(runner) = runners.iter().find(|r| r.id() == id) {
                runner.restore_report(report);
            }
        }
        let scheduler = Arc::new(Scheduler::start(runners).await?);
        let state = ApiState {
            catalog,
            ready: Arc::new(AtomicBool::new(false)),
            scheduler,
        };
        Ok(Self {
            listener,
            addr,
            state,
            store,
            shutdown,
        })
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
    /// requests finish (bounded), cancels running discovery and closes the store.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let Self {
            listener,
            addr,
            state,
            store,
            shutdown,
        } = self;
        let ready = Arc::clone(&state.ready);
        let scheduler = Arc::clone(&state.scheduler);
        let app = api::router(state);
        let upkeep = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                let mut ticks = tokio::time::interval(METRICS_UPKEEP_EVERY);
                loop {
                    tokio::select! {
                        _ = ticks.tick() => crate::metrics::upkeep(),
                        () = shutdown.cancelled() => break,
                    }
                }
            }
        });
        tracing::info!(%addr, "listening");
        ready.store(true, Ordering::Release);
        let stopping = shutdown.clone();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            stop.await;
            tracing::info!("shutting down");
            stopping.cancel();
        });
        let served = tokio::select! {
            served = server => served.map_err(AppError::Serve),
            () = async {
                shutdown.cancelled().await;
                tokio::time::sleep(DRAIN_TIMEOUT).await;
            } => {
                tracing::warn!("in-flight requests did not finish within {}s; closing", DRAIN_TIMEOUT.as_secs());
                Ok(())
            }
        };
        ready.store(false, Ordering::Release);
        shutdown.cancel();
        scheduler.shutdown().await;
        upkeep.abort();
        store.close().await;
        tracing::info!("stopped");
        served
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
