//! The HTTP server under the router, HTTP/1.1 and h2c (prior knowledge)
//! like `axum::serve`: a connection cap that sheds load instead of leaving
//! clients in the backlog (health checks are still answered), a header
//! timeout counted from a request's first byte, an idle timeout for
//! connections on which nothing moves, and graceful shutdown. At the cap,
//! the connection quiet the longest without a request being handled is
//! closed to make room, so idle sockets cannot keep health checks out.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper::rt::{Sleep, Timer};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use super::ops::{LIVENESS, READINESS};

/// Descriptors kept for everything but API connections (the store,
/// Bitbucket connections, logs).
const RESERVED_DESCRIPTORS: u64 = 256;
/// The most connections served at once when `maxConnections` is not set.
const DEFAULT_MAX_CONNECTIONS: u64 = 1024;
/// Connections accepted over the cap, one request each: health checks are
/// answered, everything else gets `503` with `Retry-After`.
pub(crate) const SHED_CONNECTIONS: usize = 64;
/// Requests at once on one h2c connection (hyper's default is 200).
const H2_STREAMS: u32 = 16;
/// How long to wait before accepting again after `accept` failed (e.g. out
/// of descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At the cap, only a connection quiet at least this long is reclaimed
/// (one that just connected is probably sending its request).
const RECLAIM_QUIET: Duration = Duration::from_millis(100);
/// At the cap with nothing to reclaim, how often to look again.
const RECLAIM_RETRY: Duration = Duration::from_millis(50);

/// How the server bounds its clients.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServeLimits {
    pub max_connections: usize,
    /// From a request's first byte (or from connecting) to its last header.
    pub header_timeout: Duration,
    /// With no byte moving either way, a connection is closed.
    pub idle_timeout: Duration,
}

/// The connection cap for `open_file_limit` (the soft limit in force):
/// `configured`, lowered with a warning to what the limit leaves after
/// [`RESERVED_DESCRIPTORS`] and [`SHED_CONNECTIONS`]; unset, half of that
/// (at most [`DEFAULT_MAX_CONNECTIONS`]). At least 16 either way.
pub(crate) fn connection_cap(configured: Option<usize>, open_file_limit: u64) -> usize {
    let available = open_file_limit
        .saturating_sub(RESERVED_DESCRIPTORS + SHED_CONNECTIONS as u64)
        .max(16);
    let most = usize::try_from(available).unwrap_or(usize::MAX);
    let cap = match configured {
        Some(configured) if configured > most => {
            tracing::warn!(
                configured,
                open_file_limit,
                max_connections = most,
                "backend.listen.maxConnections is more than the open-file limit leaves for API \
                 connections; lowered. Raise the limit (ulimit -n, LimitNOFILE) or lower the key"
            );
            most
        }
        Some(configured) => configured,
        None => usize::try_from((available / 2).clamp(16, DEFAULT_MAX_CONNECTIONS)).unwrap_or(16),
    };
    tracing::info!(
        open_file_limit,
        max_connections = cap,
        "API connection limit"
    );
    cap
}

/// Serves `app` on `listener` until `stop` completes, then stops accepting
/// and waits for open connections to finish their requests.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    stop: impl Future<Output = ()> + Send,
) {
    let served = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let shed = Arc::new(Semaphore::new(SHED_CONNECTIONS));
    let shed_app = app.clone().layer(middleware::from_fn(shed_load));
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Connections::default());
    tokio::pin!(stop);
    loop {
        // At the cap: close the idlest connection to make room, one under
        // the cap first (a new client is served in full); with none idle,
        // shed; with the shed slots taken too, new clients wait in the
        // kernel's backlog (no descriptor of ours) until one closes or idles.
        if served.available_permits() == 0 {
            let full = shed.available_permits() == 0;
            if open.reclaim_one(full) {
                tokio::select! {
                    _ = served.acquire() => {},
                    _ = shed.acquire(), if full => {},
                    () = tokio::time::sleep(RECLAIM_RETRY) => {},
                    () = &mut stop => break,
                }
                continue;
            }
            if full {
                tokio::select! {
                    _ = served.acquire() => {},
                    _ = shed.acquire() => {},
                    () = tokio::time::sleep(RECLAIM_RETRY) => {},
                    () = &mut stop => break,
                }
                continue;
            }
        }
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
        // Only this loop takes permits, so one of the two is free.
        if let Ok(permit) = Arc::clone(&served).try_acquire_owned() {
            let activity = open.add(false);
            serve_connection(stream, app.clone(), limits, &graceful, (permit, activity));
        } else if let Ok(permit) = Arc::clone(&shed).try_acquire_owned() {
            let activity = open.add(true);
            shed_connection(
                stream,
                shed_app.clone(),
                limits,
                &graceful,
                (permit, activity),
            );
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Serves one connection under the cap: HTTP/1.1 or h2c, until it closes
/// or goes idle.
fn serve_connection(
    stream: TcpStream,
    app: Router,
    limits: ServeLimits,
    graceful: &GracefulShutdown,
    (permit, activity): (OwnedSemaphorePermit, Registered),
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(HeaderTimer(Arc::clone(&activity), limits.header_timeout))
        .header_read_timeout(limits.header_timeout);
    // Each stream may buffer a 1 MiB body: keep one h2c connection
    // near what a few HTTP/1 connections can hold.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_STREAMS);
    let connection = watched_connection(&builder, stream, app, &activity, graceful);
    tokio::spawn(async move {
        let _permit = permit;
        tokio::select! {
            () = connection => {},
            () = activity.idle(limits) => {},
            () = activity.reclaimed.notified() => {},
        }
    });
}

/// Serves one connection over the cap: one HTTP/1.1 request through
/// [`shed_load`], then close.
fn shed_connection(
    stream: TcpStream,
    shed_app: Router,
    limits: ServeLimits,
    graceful: &GracefulShutdown,
    (permit, activity): (OwnedSemaphorePermit, Registered),
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(false);
    let connection = watched_connection(&builder, stream, shed_app, &activity, graceful);
    tokio::spawn(async move {
        let _permit = permit;
        // One quick request; h2 has no header timeout of its own.
        tokio::select! {
            _ = tokio::time::timeout(limits.header_timeout, connection) => {},
            () = activity.reclaimed.notified() => {},
        }
    });
}

/// `app` on `stream` with `builder`'s settings: its bytes and requests
/// count as activity, and graceful shutdown waits for it.
fn watched_connection(
    builder: &auto::Builder<TokioExecutor>,
    stream: TcpStream,
    app: Router,
    activity: &Arc<Activity>,
    graceful: &GracefulShutdown,
) -> impl Future<Output = ()> + Send + use<> {
    let peer = super::request::Peer::of(&stream);
    let io = TokioIo::new(Watched {
        stream,
        activity: Arc::clone(activity),
    });
    let service = TowerToHyperService::new(handled(app, activity, peer));
    let connection = graceful.watch(builder.serve_connection(io, service).into_owned());
    async move {
        // Timeouts, resets and reclaiming end connections; nothing to report.
        _ = connection.await;
    }
}

/// Over the cap: health checks as usual, anything else `503` and close.
async fn shed_load(request: Request, next: Next) -> Response {
    if matches!(request.uri().path(), LIVENESS | READINESS) {
        return next.run(request).await;
    }
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailableError",
        "too many open connections (backend.listen.maxConnections); retry shortly".to_owned(),
        request.method(),
        request.uri(),
    )
    .into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `app` noting on `activity` when a request reaches it (its headers are
/// complete: from then on the connection is busy, not idle).
fn handled(app: Router, activity: &Arc<Activity>, peer: super::request::Peer) -> Router {
    let activity = Arc::clone(activity);
    app.layer(middleware::from_fn(
        move |mut request: Request, next: Next| {
            activity.handling();
            request.extensions_mut().insert(peer);
            next.run(request)
        },
    ))
}

/// The open connections, to reclaim the idlest at the cap.
#[derive(Default)]
struct Connections {
    next: Mutex<u64>,
    open: Arc<Mutex<std::collections::HashMap<u64, Arc<Activity>>>>,
}

/// A connection's [`Activity`], removed from [`Connections`] on drop.
struct Registered {
    activity: Arc<Activity>,
    id: u64,
    open: Arc<Mutex<std::collections::HashMap<u64, Arc<Activity>>>>,
}

impl std::ops::Deref for Registered {
    type Target = Arc<Activity>;

    fn deref(&self) -> &Arc<Activity> {
        &self.activity
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.open.lock().remove(&self.id);
    }
}

impl Connections {
    fn add(&self, shed: bool) -> Registered {
        let id = {
            let mut next = self.next.lock();
            *next += 1;
            *next
        };
        let activity = Arc::new(Activity::new(shed));
        self.open.lock().insert(id, Arc::clone(&activity));
        Registered {
            activity,
            id,
            open: Arc::clone(&self.open),
        }
    }

    /// Closes the connection quiet the longest (at least [`RECLAIM_QUIET`])
    /// whose request, if any, has not reached a handler: idle keep-alive,
    /// silent or trickling sockets. A request being handled is never cut.
    /// Only connections under the cap unless `shed_too`; whether one was.
    fn reclaim_one(&self, shed_too: bool) -> bool {
        let now = Instant::now();
        let idlest = self
            .open
            .lock()
            .iter()
            .filter(|(_, activity)| shed_too || !activity.shed)
            .filter_map(|(id, activity)| {
                let quiet_since = activity.reclaimable()?;
                (now.saturating_duration_since(quiet_since) >= RECLAIM_QUIET).then_some((
                    quiet_since,
                    *id,
                    Arc::clone(activity),
                ))
            })
            .min_by_key(|(quiet_since, id, _)| (*quiet_since, *id));
        idlest.is_some_and(|(_, _, activity)| {
            activity.reclaim();
            true
        })
    }
}

/// When bytes last moved on one connection.
struct Activity {
    /// Over the cap (one request, then close).
    shed: bool,
    connected: Instant,
    moves: Mutex<Moves>,
    /// Told once the connection is to close to make room.
    reclaimed: tokio::sync::Notify,
}

#[derive(Clone, Copy)]
struct Moves {
    last: Instant,
    read_any: bool,
    wrote_any: bool,
    /// The first byte read since the last one written: a request arriving.
    request_since: Option<Instant>,
    /// That request reached a handler (its headers are complete).
    handling: bool,
    /// Already told to close.
    reclaimed: bool,
}

impl Activity {
    fn new(shed: bool) -> Self {
        let now = Instant::now();
        Self {
            shed,
            connected: now,
            moves: Mutex::new(Moves {
                last: now,
                read_any: false,
                wrote_any: false,
                request_since: None,
                handling: false,
                reclaimed: false,
            }),
            reclaimed: tokio::sync::Notify::new(),
        }
    }

    fn read(&self) {
        let now = Instant::now();
        let mut moves = self.moves.lock();
        moves.last = now;
        moves.read_any = true;
        if moves.request_since.is_none() {
            moves.request_since = Some(now);
            moves.handling = false;
        }
    }

    fn handling(&self) {
        self.moves.lock().handling = true;
    }

    /// Since when the connection is quiet, unless a request is being
    /// handled on it (or it was reclaimed already).
    fn reclaimable(&self) -> Option<Instant> {
        let moves = self.moves.lock();
        let busy = moves.request_since.is_some() && moves.handling;
        (!busy && !moves.reclaimed).then_some(moves.last)
    }

    fn reclaim(&self) {
        self.moves.lock().reclaimed = true;
        // A permit is stored if the task is not waiting yet.
        self.reclaimed.notify_one();
    }

    fn wrote(&self) {
        let mut moves = self.moves.lock();
        moves.last = Instant::now();
        moves.wrote_any = true;
        moves.request_since = None;
    }

    /// When the headers being awaited started: at connecting for the first
    /// request, at its first byte for later ones; `None` while idle
    /// between requests (that is [`Self::idle`]'s business).
    fn request_started(&self) -> Option<Instant> {
        let moves = self.moves.lock();
        if moves.wrote_any {
            moves.request_since
        } else {
            Some(self.connected)
        }
    }

    /// Completes once nothing moved for the idle timeout (the header
    /// timeout before the first byte): keep-alive idleness, a response the
    /// client does not read, an h2c client that sends nothing.
    async fn idle(&self, limits: ServeLimits) {
        loop {
            let deadline = {
                let moves = self.moves.lock();
                if moves.read_any {
                    moves.last + limits.idle_timeout
                } else {
                    self.connected + limits.header_timeout
                }
            };
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A connection's socket, noting when bytes move.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.read();
        }
        polled
    }
}

impl Watched {
    fn wrote(&self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.activity.wrote();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.wrote(polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.wrote(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// hyper's HTTP/1 header timer starts as soon as it waits for a request,
/// which would make it the keep-alive timeout too. This one counts from
/// the request's first byte instead (see [`Activity::request_started`]).
#[derive(Clone)]
struct HeaderTimer(Arc<Activity>, Duration);

impl Timer for HeaderTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        TokioTimer::new().sleep(duration)
    }

    fn sleep_until(&self, _: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(HeaderSleep {
            activity: Arc::clone(&self.0),
            timeout: self.1,
            sleep: Box::pin(tokio::time::sleep(self.1)),
        })
    }
}

struct HeaderSleep {
    activity: Arc<Activity>,
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Future for HeaderSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Idle between requests: hyper polls this again whenever bytes
        // arrive (the socket wakes it), and the idle timeout closes it.
        let Some(started) = this.activity.request_started() else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(started + this.timeout);
        if this.sleep.deadline() != deadline {
            this.sleep.as_mut().reset(deadline);
        }
        this.sleep.as_mut().poll(cx)
    }
}

impl Sleep for HeaderSleep {}
