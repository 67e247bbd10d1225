//! The HTTP/1.1 server under the router: a connection cap so idle or slow
//! clients cannot take the descriptors discovery needs, a timeout on
//! headers and on idle keep-alive connections, and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Descriptors kept for everything but API connections (the store,
/// Bitbucket connections, logs).
const RESERVED_DESCRIPTORS: u64 = 256;
/// The most connections served at once when `maxConnections` is not set.
const DEFAULT_MAX_CONNECTIONS: u64 = 1024;
/// How long to wait before accepting again after `accept` failed (e.g. out
/// of descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How the server bounds its clients.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

/// Raises the soft descriptor limit to the hard one where allowed, and
/// returns the connection cap: `configured`, or half of what the limit
/// leaves after [`RESERVED_DESCRIPTORS`] (at most
/// [`DEFAULT_MAX_CONNECTIONS`], at least 16).
pub fn connection_cap(configured: Option<usize>) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read or raise the open-file limit");
            1024
        }
    };
    let derived =
        (limit.saturating_sub(RESERVED_DESCRIPTORS) / 2).clamp(16, DEFAULT_MAX_CONNECTIONS);
    let cap = configured.unwrap_or(usize::try_from(derived).unwrap_or(16));
    tracing::info!(
        open_file_limit = limit,
        max_connections = cap,
        "API connection limit"
    );
    cap
}

/// Serves `app` on `listener` until `stop` completes, then stops accepting
/// and waits for open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    stop: impl Future<Output = ()> + Send,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout);
    tokio::pin!(stop);
    loop {
        // At the cap no connection is accepted: new ones wait in the
        // kernel's backlog and use no descriptor of ours.
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept an API connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _permit = permit;
            // Timeouts and resets end connections; nothing to report.
            let _ = connection.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
