//! Wiring: [`Application::build`] turns a [`Config`] into a bound listener,
//! a catalog and a running scheduler; [`Application::run_until_stopped`]
//! serves until SIGTERM/SIGINT and shuts down cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::bitbucket::{HttpSetupError, build_http_client};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::discovery::server::ServerProvider;
use crate::scheduler::{ProviderRunner, Scheduler, SchedulerError};

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
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("integration for host '{0}' disappeared from the config")]
    MissingIntegration(String),
}

/// Builds the runnable providers from the config.
pub fn build_providers(config: &Config) -> Result<Vec<ServerProvider>, AppError> {
    let http = build_http_client(config.extra_ca_file.as_deref())?;
    config
        .providers
        .iter()
        .map(|provider| {
            let integration = config
                .integrations
                .server(&provider.host)
                .ok_or_else(|| AppError::MissingIntegration(provider.host.clone()))?;
            Ok(ServerProvider::new(
                provider.clone(),
                integration.clone(),
                http.clone(),
            ))
        })
        .collect()
}

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: ApiState,
    scheduler: Scheduler,
    shutdown: CancellationToken,
}

impl Application {
    /// Binds `backend.listen` (port 0 picks a free port) and starts the
    /// provider schedules.
    pub async fn build(config: Config) -> Result<Self, AppError> {
        let providers = build_providers(&config)?;
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

        let catalog = Arc::new(Catalog::new());
        let shutdown = CancellationToken::new();
        let runners = providers
            .into_iter()
            .map(|p| {
                Arc::new(ProviderRunner::new(
                    p,
                    Arc::clone(&catalog),
                    shutdown.child_token(),
                ))
            })
            .collect();
        let scheduler = Scheduler::start(runners).await?;
        let state = ApiState {
            catalog,
            ready: Arc::new(AtomicBool::new(false)),
            providers: scheduler.runners().to_vec(),
        };
        Ok(Self {
            listener,
            addr,
            state,
            scheduler,
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

    pub fn runners(&self) -> Vec<Arc<ProviderRunner>> {
        self.scheduler.runners().to_vec()
    }

    /// Serves until SIGTERM or SIGINT.
    pub async fn run_until_stopped(self) -> Result<(), AppError> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then stops accepting, finishes
    /// in-flight requests and cancels running discovery.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let Self {
            listener,
            addr,
            state,
            scheduler,
            shutdown,
        } = self;
        let ready = Arc::clone(&state.ready);
        let app = api::router(state);
        tracing::info!(%addr, "listening");
        ready.store(true, Ordering::Release);
        let cancel = shutdown.clone();
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                stop.await;
                tracing::info!("shutting down");
                cancel.cancel();
            })
            .await;
        shutdown.cancel();
        scheduler.shutdown().await;
        served.map_err(AppError::Serve)
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
