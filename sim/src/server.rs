//! The listener: our own accept loop (rather than `axum::serve`) so a fault
//! can drop one connection with an RST and no response.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::{Behaviour, SimConfig};
use crate::dataset::{Dataset, RepoRef};
use crate::pipeline::{ConnAbort, pipeline};
use crate::pr_state::PostedCheck;
use crate::pull_requests::PullRequestFiles;
use crate::push::WebhookEvent;
use crate::state::{AppState, RegisteredHook};
use crate::stats::Stats;
use crate::{
    SimError, admin, cloud_api, cloud_content, global_listing, hooks, insights, pr_admin, respond,
    server_api, server_content,
};

/// How long shutdown waits for in-flight requests before dropping them.
const DRAIN: Duration = Duration::from_secs(5);

/// A running simulator on a loopback port. Dropping it stops the listener;
/// [`Simulator::shutdown`] also waits for in-flight requests.
pub struct Simulator {
    state: Arc<AppState>,
    addr: SocketAddr,
    /// The data set as generated (pushes change only the served copy).
    generated: Arc<Dataset>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Generates the data set and starts serving.
    pub async fn start(config: SimConfig) -> Result<Self, SimError> {
        config.validate()?;
        let dataset = Arc::new(Dataset::generate(config.seed, &config.dataset));
        Self::serve(config, dataset).await
    }

    /// Serves a data set generated beforehand (it should come from
    /// `config.seed` and `config.dataset`, but that is not checked).
    pub async fn start_with_dataset(
        config: SimConfig,
        dataset: Arc<Dataset>,
    ) -> Result<Self, SimError> {
        config.validate()?;
        Self::serve(config, dataset).await
    }

    async fn serve(config: SimConfig, dataset: Arc<Dataset>) -> Result<Self, SimError> {
        let wanted = SocketAddr::new(config.bind, config.port);
        let listener = TcpListener::bind(wanted)
            .await
            .map_err(|source| SimError::Bind {
                addr: wanted,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: wanted,
            source,
        })?;
        let generated = Arc::clone(&dataset);
        let state = Arc::new(AppState::new(dataset, config, format!("http://{addr}")));
        let router = router(Arc::clone(&state));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, router, shutdown.clone()));
        tracing::debug!(%addr, "bitbucket-sim listening");
        Ok(Self {
            state,
            addr,
            generated,
            shutdown,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`: the `host` in the daemon's config.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`, the prefix of every link the simulator gives.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// `http://127.0.0.1:PORT/rest/api/1.0`
    pub fn server_api_base(&self) -> String {
        format!("{}/rest/api/1.0", self.state.base_url)
    }

    /// `http://127.0.0.1:PORT/2.0`
    pub fn cloud_api_base(&self) -> String {
        format!("{}/2.0", self.state.base_url)
    }

    pub fn cloud_workspace(&self) -> &str {
        &self.generated.cloud.slug
    }

    /// The data set as generated; [`Self::current_dataset`] has pushes and renames.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.generated
    }

    /// The data set as served now.
    pub fn current_dataset(&self) -> Arc<Dataset> {
        self.state.dataset()
    }

    pub fn config(&self) -> &SimConfig {
        &self.state.config
    }

    /// Counters since start or the last [`Simulator::reset_stats`].
    pub fn stats(&self) -> Stats {
        self.state.stats.snapshot()
    }

    pub fn reset_stats(&self) {
        self.state.stats.reset();
    }

    pub fn behaviour(&self) -> Behaviour {
        self.state.behaviour()
    }

    /// Changes latency, rate limit, faults or code search while running
    /// (rate-limit buckets start full again).
    pub fn set_behaviour(&self, behaviour: Behaviour) -> Result<(), SimError> {
        behaviour.validate()?;
        self.state.set_behaviour(behaviour);
        Ok(())
    }

    /// Writes `content` to `path` on `repo`'s default branch (a new head
    /// commit) and returns the push event Bitbucket would send.
    pub fn push_file(
        &self,
        repo: &RepoRef,
        path: &str,
        content: &str,
    ) -> Result<WebhookEvent, SimError> {
        self.state.push_file(repo, path, content)
    }

    /// Deletes `path` from `repo`'s default branch (a new head commit) and
    /// returns the push event.
    pub fn delete_file(&self, repo: &RepoRef, path: &str) -> Result<WebhookEvent, SimError> {
        self.state.delete_file(repo, path)
    }

    /// Makes `branch` `repo`'s default branch (a new head commit with the
    /// same files; no event). Returns the new head commit.
    pub fn set_default_branch(&self, repo: &RepoRef, branch: &str) -> Result<String, SimError> {
        self.state.set_default_branch(repo, branch)
    }

    /// The webhooks registered with the simulator so far.
    pub fn webhooks(&self) -> Vec<RegisteredHook> {
        self.state.hooks.lock().clone()
    }

    /// The push event of a commit to another branch (nothing served changes).
    pub fn push_branch(&self, repo: &RepoRef, branch: &str) -> Result<WebhookEvent, SimError> {
        self.state.push_branch(repo, branch)
    }

    /// Renames `repo` (its id stays) and returns the event for it.
    pub fn rename(&self, repo: &RepoRef, new_slug: &str) -> Result<WebhookEvent, SimError> {
        self.state.rename(repo, new_slug)
    }

    /// Deletes a Data Center repository (no event: Data Center sends none).
    pub fn delete_repo(&self, repo: &RepoRef) -> Result<(), SimError> {
        self.state.delete_repo(repo)
    }

    /// Archives or unarchives a Data Center repository (no event).
    pub fn set_archived(&self, repo: &RepoRef, archived: bool) -> Result<(), SimError> {
        self.state.set_archived(repo, archived)
    }

    /// Opens a pull request from `source_branch` into `repo`'s default
    /// branch changing `files`; returns its id and its event.
    pub fn open_pull_request(
        &self,
        repo: &RepoRef,
        source_branch: &str,
        title: &str,
        files: PullRequestFiles,
    ) -> Result<(u64, WebhookEvent), SimError> {
        self.state
            .open_pull_request(repo, source_branch, title, files)
    }

    /// A new source commit of pull request `id` changing `files` more.
    pub fn update_pull_request(
        &self,
        repo: &RepoRef,
        id: u64,
        files: PullRequestFiles,
    ) -> Result<WebhookEvent, SimError> {
        self.state.update_pull_request(repo, id, files)
    }

    /// Merges pull request `id` into the default branch: the push event,
    /// then the merge event.
    pub fn merge_pull_request(
        &self,
        repo: &RepoRef,
        id: u64,
    ) -> Result<(WebhookEvent, WebhookEvent), SimError> {
        self.state.merge_pull_request(repo, id)
    }

    /// Declines pull request `id`; returns its event.
    pub fn decline_pull_request(&self, repo: &RepoRef, id: u64) -> Result<WebhookEvent, SimError> {
        self.state.decline_pull_request(repo, id)
    }

    /// The reports, annotations and build statuses posted so far.
    pub fn posted_checks(&self) -> Vec<PostedCheck> {
        self.state.posted.lock().clone()
    }

    /// Whether Code Insights answers (off: reports are 404, as without it).
    pub fn set_insights(&self, available: bool) {
        self.state
            .insights
            .store(available, std::sync::atomic::Ordering::Relaxed);
    }

    /// A ready-to-use `app-config.yaml` fragment pointing bitbucket-catalogd
    /// at this simulator.
    pub fn app_config_snippet(&self) -> String {
        app_config_snippet(&self.host(), &self.server_api_base(), &self.state.config)
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s), and
    /// returns when the listener is closed.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            if let Err(err) = task.await {
                tracing::warn!(%err, "bitbucket-sim accept loop ended abnormally");
            }
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    // Data Center's REST API, under both of its prefixes.
    let server_api = || {
        server_api::routes()
            .merge(global_listing::routes())
            .merge(server_content::routes())
            .merge(hooks::server_routes())
    };
    Router::new()
        .nest(
            "/rest/api/1.0",
            server_api().merge(insights::server_routes()),
        )
        .nest("/rest/api/latest", server_api())
        .nest(
            "/2.0",
            cloud_api::routes()
                .merge(cloud_content::routes())
                .merge(hooks::cloud_routes())
                .merge(insights::cloud_routes()),
        )
        .merge(insights::rest_routes())
        .merge(admin::routes())
        .merge(pr_admin::routes())
        .fallback(respond::fallback)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            pipeline,
        ))
        .with_state(state)
}

async fn accept_loop(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, router.clone(), shutdown.clone()));
                }
                Err(err) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!("dropping connections still busy after the drain period");
    }
    connections.abort_all();
}

async fn serve_connection(stream: TcpStream, router: Router, shutdown: CancellationToken) {
    // Small answers: do not let Nagle hold them back.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%err, "set_nodelay failed");
    }
    // A second handle on the same socket, to set SO_LINGER=0 when a fault
    // asks for a reset after hyper has taken the stream.
    let linger_handle = socket2::SockRef::from(&stream).try_clone().ok();
    let abort = Arc::new(Notify::new());
    let marker = ConnAbort(Arc::clone(&abort));
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(marker.clone());
        let router = router.clone();
        async move {
            let response = router.oneshot(request.map(Body::new)).await;
            Ok::<_, Infallible>(match response {
                Ok(r) => r,
                Err(never) => match never {},
            })
        }
    });
    let connection = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%err, "connection ended with an error");
                }
                return;
            }
            () = abort.notified() => {
                if let Some(socket) = &linger_handle {
                    if let Err(err) = socket.set_linger(Some(Duration::ZERO)) {
                        tracing::debug!(%err, "set_linger failed; closing without RST");
                    }
                }
                // Dropping the connection and the handle closes the socket.
                return;
            }
            () = shutdown.cancelled(), if !draining => {
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

fn app_config_snippet(host: &str, api_base: &str, config: &SimConfig) -> String {
    let credentials = if let Some(token) = config.auth.bearer_tokens.first() {
        format!("      token: {token}\n")
    } else if let Some((user, password)) = config.auth.basic.first() {
        format!("      username: {user}\n      password: {password}\n")
    } else {
        String::new()
    };
    let credentials = match &config.webhook_secret {
        Some(secret) => format!("{credentials}      webhookSecret: {secret}\n"),
        None => credentials,
    };
    format!(
        "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api_base}\n{credentials}catalog:\n  providers:\n    bitbucketServer:\n      sim:\n        host: {host}\n        schedule:\n          frequency: {{ minutes: 5 }}\n          timeout: {{ minutes: 15 }}\n\
         # A local sandbox: write endpoints open without a token. Never in production.\n\
         backend:\n  auth:\n    dangerouslyDisableDefaultAuthPolicy: true\n"
    )
}
