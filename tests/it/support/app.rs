//! The daemon under test, built from YAML and run in this process on a free
//! loopback port, and the write token tests send.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bitbucket_catalogd::Application;
use bitbucket_catalogd::{Config, Environment};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::entities::component;
use super::postgres::PgDatabase;
use super::server::{FakeServer, server_config};

/// The write token [`with_write_token`] configures; [`TestApp::refresh`]
/// always sends it (an app without `externalAccess` ignores it).
pub const WRITE_TOKEN: &str = "test-write-token";

/// `yaml` with `backend.auth.externalAccess` requiring [`WRITE_TOKEN`]
/// (`force=true` needs a configured token).
pub fn with_write_token(yaml: &str) -> String {
    format!(
        "{yaml}\nbackend:\n  auth:\n    externalAccess:\n      - type: static\n        options:\n          token: {WRITE_TOKEN}\n          subject: tests\n"
    )
}

/// The variable that opens writes without a token, as the simulator's
/// config fragment does.
pub const OPEN_WRITES: &str = "APP_CONFIG_backend_auth_dangerouslyDisableDefaultAuthPolicy";

/// Tests are written against an open sandbox: writes need no token unless
/// the test configures `externalAccess` or sets [`OPEN_WRITES`] itself
/// (e.g. to `false`, to see the closed default).
pub fn opens_writes(yaml: &str, env: &[(&str, &str)]) -> Option<(&'static str, &'static str)> {
    let decided = yaml.contains("externalAccess")
        || yaml.contains("dangerouslyDisableDefaultAuthPolicy")
        || env.iter().any(|(name, _)| *name == OPEN_WRITES);
    (!decided).then_some((OPEN_WRITES, "true"))
}

/// `body` is Backstage's error body for `status` and error `name`.
#[track_caller]
pub fn assert_backstage_error(body: &Value, status: u16, name: &str) {
    assert_eq!(body["error"]["name"], name, "{body:#}");
    assert_eq!(body["response"]["statusCode"], status, "{body:#}");
    assert!(body["request"]["method"].is_string(), "{body:#}");
    assert!(body["request"]["url"].is_string(), "{body:#}");
}

/// Writes `yaml` to a fresh temporary directory and returns the file path.
pub fn write_config(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app-config.yaml");
    std::fs::write(&file, yaml).expect("write config");
    (dir, file)
}

/// The daemon, running on a free loopback port.
pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), bitbucket_catalogd::AppError>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn(yaml: &str) -> Self {
        Self::spawn_with_database(yaml, ":memory:").await
    }

    /// Like [`Self::spawn`], with the SQLite store at `database`.
    pub async fn spawn_with_database(yaml: &str, database: &str) -> Self {
        Self::spawn_with_env(
            yaml,
            &[("APP_CONFIG_backend_database_connection", database)],
        )
        .await
    }

    /// Like [`Self::spawn`], on the PostgreSQL database `database`.
    pub async fn spawn_on_postgres(yaml: &str, database: &PgDatabase) -> Self {
        Self::spawn_with_env(
            yaml,
            &[
                ("APP_CONFIG_backend_database_client", "pg"),
                ("APP_CONFIG_backend_database_connection", &database.url),
            ],
        )
        .await
    }

    /// Like [`Self::spawn`], with `env` added to the environment. Writes
    /// are opened ([`opens_writes`]) unless `yaml` or `env` says otherwise.
    pub async fn spawn_with_env(yaml: &str, env: &[(&str, &str)]) -> Self {
        let (dir, file) = write_config(yaml);
        let open = opens_writes(yaml, env);
        let env = Environment::from_pairs(
            [
                ("APP_CONFIG_backend_listen_host", "127.0.0.1"),
                ("APP_CONFIG_backend_listen_port", "0"),
            ]
            .into_iter()
            .chain(open)
            .chain(env.iter().copied()),
        );
        let loaded = Config::load(&[file], &env).expect("config loads");
        let app = Application::build(loaded.config).await.expect("app builds");
        let address = format!("http://{}", app.local_addr());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let handle =
            tokio::spawn(async move { app.run_until(async move { stop.cancelled().await }).await });
        Self {
            address,
            http: reqwest::Client::new(),
            shutdown,
            handle,
            _dir: dir,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request reaches the app")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.expect("JSON body")
    }

    /// A write request with an optional bearer token; `(status, JSON body)`
    /// (`null` for an empty body).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.address));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request reaches the app");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON body")
        };
        (status, value)
    }

    /// `POST /api/catalog/locations{query}` with `{type: url, target}`.
    pub async fn register(&self, target: &str, query: &str, token: Option<&str>) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            &format!("/api/catalog/locations{query}"),
            Some(json!({"type": "url", "target": target})),
            token,
        )
        .await
    }

    /// `DELETE /api/catalog/locations/{id}` without a token; `(status, JSON body)`.
    pub async fn delete_location(&self, id: &str) -> (u16, Value) {
        let path = format!("/api/catalog/locations/{id}");
        self.send(reqwest::Method::DELETE, &path, None, None).await
    }

    /// Serves no entity and no location (e.g. after the last one was
    /// deleted and the daemon restarted).
    pub async fn assert_serves_nothing(&self) {
        assert_eq!(self.get_json("/api/catalog/entities").await, json!([]));
        assert_eq!(self.get_json("/api/catalog/locations").await, json!([]));
    }

    /// The provider's status once its run count (runs seen so far) changes
    /// from `previous_run` — polls `/api/catalog/providers`.
    pub async fn wait_for_run(&self, provider: &str, accept: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_run_within(provider, Duration::from_secs(20), accept)
            .await
    }

    /// [`TestApp::wait_for_run`] for runs that take longer (e.g. reading
    /// hundreds of MiB in a debug build on a loaded machine).
    pub async fn wait_for_run_within(
        &self,
        provider: &str,
        within: Duration,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let providers = self.get_json("/api/catalog/providers").await;
            if let Some(status) = providers
                .as_array()
                .and_then(|all| all.iter().find(|p| p["id"] == provider))
                && !status["lastRun"].is_null()
                && accept(status)
            {
                return status.clone();
            }
            assert!(
                Instant::now() < deadline,
                "provider {provider} did not reach the expected state: {providers:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `POST …/providers/{provider}/refresh{query}` (must be accepted), then
    /// the provider's status once that new run has finished.
    pub async fn refresh(&self, provider: &str, query: &str) -> Value {
        let before = self
            .get_json(&format!("/api/catalog/providers/{provider}"))
            .await["lastRun"]["startedAt"]
            .clone();
        let response = self
            .http
            .post(format!(
                "{}/api/catalog/providers/{provider}/refresh{query}",
                self.address
            ))
            .bearer_auth(WRITE_TOKEN)
            .send()
            .await
            .expect("refresh reaches the app");
        assert_eq!(response.status(), 202);
        self.wait_for_run(provider, |s| {
            s["lastRun"]["startedAt"] != before && s["inProgress"] == false
        })
        .await
    }

    /// Every served entity as a lowercased `kind:namespace/name` ref.
    pub async fn entity_refs(&self) -> std::collections::BTreeSet<String> {
        self.get_json("/api/catalog/entities?fields=kind,metadata.name,metadata.namespace")
            .await
            .as_array()
            .expect("array")
            .iter()
            .map(|e| {
                format!(
                    "{}:{}/{}",
                    e["kind"].as_str().unwrap_or_default(),
                    e["metadata"]["namespace"].as_str().unwrap_or_default(),
                    e["metadata"]["name"].as_str().unwrap_or_default()
                )
                .to_lowercase()
            })
            .collect()
    }

    /// Waits up to 20 s until exactly `count` entities are served.
    pub async fn wait_for_entities(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self
            .get_json("/api/catalog/entities")
            .await
            .as_array()
            .map_or(0, Vec::len)
            != count
        {
            assert!(Instant::now() < deadline, "never reached {count} entities");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /api/catalog/entities` byte for byte.
    pub async fn entities_text(&self) -> String {
        self.get("/api/catalog/entities")
            .await
            .text()
            .await
            .expect("body")
    }

    /// `count` liveness probes, `every` apart (each must answer 200):
    /// their latencies, sorted.
    pub async fn liveness_samples(&self, count: usize, every: Duration) -> Vec<Duration> {
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let started = Instant::now();
            let response = self.get("/.backstage/health/v1/liveness").await;
            assert_eq!(response.status(), 200);
            samples.push(started.elapsed());
            tokio::time::sleep(every).await;
        }
        samples.sort();
        samples
    }

    /// `clients` tasks repeat `round` (which returns how many requests it
    /// had answered) while 30 liveness probes are taken 50 ms apart, from
    /// 300 ms into the load: the answers counted, and the probes' sorted
    /// latencies. A panic in a round fails the test.
    pub async fn liveness_under_load<F, Fut>(
        &self,
        clients: usize,
        round: F,
    ) -> (u32, Vec<Duration>)
    where
        F: Fn(reqwest::Client) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = u32> + Send,
    {
        let stop = CancellationToken::new();
        let load: Vec<_> = (0..clients)
            .map(|_| {
                let (http, stop, round) = (self.http.clone(), stop.clone(), round.clone());
                tokio::spawn(async move {
                    let mut answered = 0;
                    while !stop.is_cancelled() {
                        answered += round(http.clone()).await;
                    }
                    answered
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let samples = self.liveness_samples(30, Duration::from_millis(50)).await;
        stop.cancel();
        let mut answered = 0;
        for task in load {
            answered += task.await.expect("a load task ends cleanly");
        }
        (answered, samples)
    }

    pub async fn entity_names(&self) -> Vec<String> {
        super::entities::names(&self.get_json("/api/catalog/entities").await)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("app stops within 10 s")
            .expect("app task ends cleanly")
            .expect("app runs");
    }

    /// How the app ended on its own, waiting at most `within`.
    pub async fn ended(self, within: Duration) -> Result<(), bitbucket_catalogd::AppError> {
        tokio::time::timeout(within, self.handle)
            .await
            .expect("app stops on its own in time")
            .expect("app task ends cleanly")
    }
}

/// The app with a provider `main` serving `count` components from one
/// repository's file, once its first run has stored them all.
pub async fn big_catalog(count: usize) -> (FakeServer, TestApp) {
    let file: Vec<String> = (0..count).map(|i| component(&format!("c{i}"))).collect();
    let fake = FakeServer::builder()
        .catalog("PLAT", "big", &file.join("---\n"))
        .start()
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |s| s["entities"] == count).await;
    (fake, app)
}
