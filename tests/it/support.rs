//! Shared test harness: a fake Bitbucket Server on wiremock and the real
//! application spawned on a free loopback port.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bitbucket_catalogd::Application;
use bitbucket_catalogd::config::{Config, Environment};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

pub const API: &str = "/rest/api/1.0";

/// A fake Bitbucket Server (REST 1.0) that pages like the real one.
pub struct FakeServer {
    pub server: MockServer,
    /// When set, every mock requires this exact `Authorization` header, so a
    /// request without it gets wiremock's 404 and the run fails.
    pub authorization: Option<String>,
}

impl FakeServer {
    pub async fn start() -> Self {
        Self {
            server: MockServer::start().await,
            authorization: None,
        }
    }

    pub async fn with_authorization(value: &str) -> Self {
        Self {
            server: MockServer::start().await,
            authorization: Some(value.to_owned()),
        }
    }

    /// `127.0.0.1:PORT`, the integration's host.
    pub fn host(&self) -> String {
        self.server.address().to_string()
    }

    pub fn api_base(&self) -> String {
        format!("{}{API}", self.server.uri())
    }

    fn get(&self, p: String) -> MockBuilder {
        let builder = Mock::given(method("GET")).and(path(p));
        match &self.authorization {
            Some(value) => builder.and(header("authorization", value.as_str())),
            None => builder,
        }
    }

    /// Serves `values` at `api_path` in pages of `page_size`, and checks
    /// that the client asks for Bitbucket's maximum page size.
    pub async fn mount_paged(&self, api_path: &str, values: Vec<Value>, page_size: usize) {
        let chunks: Vec<&[Value]> = if values.is_empty() {
            vec![&[]]
        } else {
            values.chunks(page_size).collect()
        };
        let pages = chunks.len();
        for (index, chunk) in chunks.into_iter().enumerate() {
            let start = index * page_size;
            let last = index + 1 == pages;
            let mut body = json!({
                "size": chunk.len(), "limit": page_size, "start": start,
                "isLastPage": last, "values": chunk,
            });
            if !last {
                body["nextPageStart"] = json!(start + chunk.len());
            }
            self.get(format!("{API}{api_path}"))
                .and(query_param("limit", "1000"))
                .and(query_param("start", start.to_string()))
                .respond_with(ResponseTemplate::new(200).set_body_json(body))
                .mount(&self.server)
                .await;
        }
    }

    pub async fn mount_projects(&self, keys: &[&str], page_size: usize) {
        let values = keys
            .iter()
            .map(|k| json!({"key": k, "id": 1, "name": k, "public": false, "type": "NORMAL"}))
            .collect();
        self.mount_paged("/projects", values, page_size).await;
    }

    /// `repos`: `(slug, archived)`.
    pub async fn mount_repos(&self, project: &str, repos: &[(&str, bool)], page_size: usize) {
        let base = self.server.uri();
        let values = repos
            .iter()
            .map(|(slug, archived)| {
                json!({
                    "slug": slug, "id": 1, "name": slug, "scmId": "git", "state": "AVAILABLE",
                    "archived": archived, "public": false,
                    "project": {"key": project},
                    "links": {"self": [{"href": format!("{base}/projects/{project}/repos/{slug}/browse")}]},
                })
            })
            .collect();
        self.mount_paged(&format!("/projects/{project}/repos"), values, page_size)
            .await;
    }

    pub async fn mount_file(&self, project: &str, slug: &str, file: &str, body: &str) {
        self.get(format!("{API}/projects/{project}/repos/{slug}/raw/{file}"))
            .respond_with(ResponseTemplate::new(200).set_body_string(body))
            .mount(&self.server)
            .await;
    }

    /// One project whose repositories `slugs` each hold a component of
    /// that name.
    pub async fn mount_components(&self, project: &str, slugs: &[&str]) {
        self.mount_projects(&[project], 25).await;
        let repos: Vec<(&str, bool)> = slugs.iter().map(|slug| (*slug, false)).collect();
        self.mount_repos(project, &repos, 25).await;
        for slug in slugs {
            self.mount_file(project, slug, "catalog-info.yaml", &component(slug))
                .await;
        }
    }

    /// Like [`Self::mount_file`], with arbitrary bytes.
    pub async fn mount_file_bytes(&self, project: &str, slug: &str, file: &str, body: &[u8]) {
        self.get(format!("{API}/projects/{project}/repos/{slug}/raw/{file}"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(body.to_vec()))
            .mount(&self.server)
            .await;
    }

    /// How many requests reached the fake whose path ends with `suffix`.
    /// Bitbucket goes down: every request is answered 503 from now on.
    pub async fn fail_everything(&self) {
        self.server.reset().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(503))
            .mount(&self.server)
            .await;
    }

    pub async fn requests_to(&self, suffix: &str) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path().ends_with(suffix))
            .count()
    }
}

/// A one-document catalog file for a component.
pub fn component(name: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n"
    )
}

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

/// Runs `node <args>` in `dir` (a Node package of ours under `tests/`)
/// off the async runtime; panics with its stderr unless it succeeds, and
/// returns its stdout parsed as JSON.
pub async fn node_json(dir: PathBuf, args: Vec<String>) -> Value {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("node runs")
    })
    .await
    .expect("join");
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

/// The daemon, running on a free loopback port.
pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), bitbucket_catalogd::app::AppError>>,
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

    /// Like [`Self::spawn`], with `env` added to the environment.
    pub async fn spawn_with_env(yaml: &str, env: &[(&str, &str)]) -> Self {
        let (dir, file) = write_config(yaml);
        let env = Environment::from_pairs(
            [
                ("APP_CONFIG_backend_listen_host", "127.0.0.1"),
                ("APP_CONFIG_backend_listen_port", "0"),
            ]
            .into_iter()
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

    /// The provider's status once its run count (runs seen so far) changes
    /// from `previous_run` — polls `/api/catalog/providers`.
    pub async fn wait_for_run(&self, provider: &str, accept: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
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

    pub async fn entity_names(&self) -> Vec<String> {
        let entities = self.get_json("/api/catalog/entities").await;
        entities
            .as_array()
            .expect("array")
            .iter()
            .map(|e| {
                e["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
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
    pub async fn ended(self, within: Duration) -> Result<(), bitbucket_catalogd::app::AppError> {
        tokio::time::timeout(within, self.handle)
            .await
            .expect("app stops on its own in time")
            .expect("app task ends cleanly")
    }
}

/// The PostgreSQL every test may use (trust auth).
pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

/// A database of one test's own on [`POSTGRES`], named but not created:
/// the daemon creates it. [`PgDatabase::drop_database`] removes it.
pub struct PgDatabase {
    pub name: String,
    /// `postgres://…/name`.
    pub url: String,
}

impl PgDatabase {
    pub fn fresh() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "catalogd_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        Self {
            url: format!("{POSTGRES}/{name}"),
            name,
        }
    }

    /// A connection pool to the database (for checks on what is stored).
    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.url)
            .await
            .expect("connects to the test database")
    }

    pub async fn drop_database(self) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres"))
            .await
            .expect("connects to postgres");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await
        .expect("drops the test database");
    }
}

/// A config with one Server integration pointing at `fake` and one provider
/// `main` with the given extra provider YAML (indented under the provider).
/// The fake as an integration, with no provider (locations only).
pub fn integration_config(fake: &FakeServer) -> String {
    format!(
        "integrations:\n  bitbucketServer:\n    - host: {}\n      apiBaseUrl: {}\n",
        fake.host(),
        fake.api_base()
    )
}

pub fn server_config(fake: &FakeServer, integration_extra: &str, provider_extra: &str) -> String {
    format!(
        "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\n{integration_extra}\ncatalog:\n  providers:\n    bitbucketServer:\n      main:\n        host: {host}\n{provider_extra}\n",
        host = fake.host(),
        api = fake.api_base(),
    )
}

/// An entity file for `kind` with `spec.type`.
pub fn entity_doc(kind: &str, name: &str, spec_type: &str, tags: &[&str]) -> String {
    let extra = if kind == "API" {
        "  definition: \"openapi: 3.0.0\"\n"
    } else {
        ""
    };
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\n  tags: [{}]\nspec:\n  type: {spec_type}\n  lifecycle: production\n  owner: team-a\n{extra}",
        tags.join(", ")
    )
}

/// A small but varied catalog: 5 components, 2 APIs in 6 files over two
/// projects (one file holds two documents).
pub async fn mount_mixed_catalog(fake: &FakeServer) {
    fake.mount_projects(&["PAY", "PLAT"], 25).await;
    fake.mount_repos(
        "PLAT",
        &[("billing", false), ("checkout", false), ("users", false)],
        25,
    )
    .await;
    fake.mount_repos(
        "PAY",
        &[("payments", false), ("ledger", false), ("search", false)],
        25,
    )
    .await;
    let billing = format!(
        "{}---\n{}",
        entity_doc("Component", "billing", "service", &["java", "money"]),
        entity_doc("API", "billing-api", "openapi", &[])
    );
    fake.mount_file("PLAT", "billing", "catalog-info.yaml", &billing)
        .await;
    fake.mount_file(
        "PLAT",
        "checkout",
        "catalog-info.yaml",
        &entity_doc("Component", "checkout", "website", &["react"]),
    )
    .await;
    fake.mount_file(
        "PLAT",
        "users",
        "catalog-info.yaml",
        &entity_doc("API", "users-api", "openapi", &[]),
    )
    .await;
    fake.mount_file(
        "PAY",
        "payments",
        "catalog-info.yaml",
        &entity_doc("Component", "payments", "service", &["java", "money"]),
    )
    .await;
    fake.mount_file(
        "PAY",
        "ledger",
        "catalog-info.yaml",
        &entity_doc("Component", "ledger", "library", &["java"]),
    )
    .await;
    fake.mount_file(
        "PAY",
        "search",
        "catalog-info.yaml",
        &entity_doc("Component", "search", "service", &["go"]),
    )
    .await;
}

/// A fake Bitbucket Cloud (REST 2.0 under `/2.0`, web pages at the root)
/// that pages with absolute `next` links like the real one.
pub struct FakeCloud {
    pub server: MockServer,
    /// When set, every mock requires this exact `Authorization` header.
    pub authorization: Option<String>,
}

/// One search hit, as Bitbucket returns it (before `fields` trimming).
pub struct Hit<'a> {
    pub project: &'a str,
    pub slug: &'a str,
    pub branch: &'a str,
    pub commit: &'a str,
    pub path: &'a str,
    /// Bitbucket sometimes returns hits whose path did not match.
    pub path_matches: bool,
}

impl FakeCloud {
    pub async fn start() -> Self {
        Self {
            server: MockServer::start().await,
            authorization: None,
        }
    }

    pub async fn with_authorization(value: &str) -> Self {
        Self {
            server: MockServer::start().await,
            authorization: Some(value.to_owned()),
        }
    }

    /// `127.0.0.1:PORT`, the integration's host (web URLs live there too).
    pub fn host(&self) -> String {
        self.server.address().to_string()
    }

    pub fn api_base(&self) -> String {
        format!("{}/2.0", self.server.uri())
    }

    /// The repository's web URL, as `links.html.href` gives it.
    pub fn web(&self, ws: &str, slug: &str) -> String {
        format!("{}/{ws}/{slug}", self.server.uri())
    }

    fn get(&self, p: String) -> MockBuilder {
        let builder = Mock::given(method("GET")).and(path(p));
        match &self.authorization {
            Some(value) => builder.and(header("authorization", value.as_str())),
            None => builder,
        }
    }

    /// Serves `values` at `api_path` in pages of `page_size` (the first page
    /// without `page`, later ones by `page=N`, each linked by `next`), where
    /// each page after the first repeats the previous page's last `repeat`
    /// values (BCLOUD-23644). `matchers` narrow the mocks (e.g. the query).
    pub async fn mount_paged(
        &self,
        api_path: &str,
        values: Vec<Value>,
        page_size: usize,
        repeat: usize,
        query: &[(&str, &str)],
    ) {
        let step = page_size - repeat.min(page_size - 1);
        let mut pages: Vec<Vec<Value>> = Vec::new();
        let mut start = 0;
        loop {
            let end = (start + page_size).min(values.len());
            pages.push(values[start.min(values.len())..end].to_vec());
            if end >= values.len() {
                break;
            }
            start += step;
        }
        let count = pages.len();
        for (index, page) in pages.into_iter().enumerate() {
            let number = index + 1;
            let mut body =
                json!({"pagelen": page_size, "page": number, "size": values.len(), "values": page});
            if number < count {
                let mut next =
                    url::Url::parse(&format!("{}{api_path}", self.api_base())).expect("url");
                next.query_pairs_mut()
                    .extend_pairs(query)
                    .append_pair("page", &(number + 1).to_string());
                body["next"] = json!(next.to_string());
            }
            let mut mock = self.get(format!("/2.0{api_path}"));
            for (k, v) in query {
                mock = mock.and(query_param(*k, *v));
            }
            mock = if number == 1 {
                mock.and(wiremock::matchers::query_param_is_missing("page"))
            } else {
                mock.and(query_param("page", number.to_string()))
            };
            mock.respond_with(ResponseTemplate::new(200).set_body_json(body))
                .mount(&self.server)
                .await;
        }
    }

    pub async fn mount_projects(&self, ws: &str, keys: &[&str], page_size: usize) {
        let values = keys
            .iter()
            .map(|k| json!({"type": "project", "key": k, "name": k, "links": {"html": {"href": "x"}}}))
            .collect();
        self.mount_paged(
            &format!("/workspaces/{ws}/projects"),
            values,
            page_size,
            0,
            &[],
        )
        .await;
    }

    pub fn repository(&self, ws: &str, project: &str, slug: &str, branch: Option<&str>) -> Value {
        json!({
            "type": "repository", "slug": slug, "full_name": format!("{ws}/{slug}"),
            "project": {"type": "project", "key": project},
            "mainbranch": branch.map(|b| json!({"type": "branch", "name": b})),
            "links": {"html": {"href": self.web(ws, slug)}, "clone": [{"href": "ssh://x"}]},
        })
    }

    /// The code search for `project` (Backstage's query for
    /// `/catalog-info.yaml`), answering `hits` in pages.
    pub async fn mount_search(
        &self,
        ws: &str,
        project: &str,
        hits: &[Hit<'_>],
        page_size: usize,
        repeat: usize,
    ) {
        let values = hits
            .iter()
            .map(|h| {
                let path_matches = if h.path_matches {
                    json!([{"text": h.path, "match": true}])
                } else {
                    json!([])
                };
                json!({
                    "type": "code_search_result",
                    "content_match_count": 1,
                    "content_matches": [{"lines": []}],
                    "path_matches": path_matches,
                    "file": {"path": h.path, "type": "commit_file", "commit": {
                        "hash": h.commit,
                        "repository": self.repository(ws, h.project, h.slug, Some(h.branch)),
                    }},
                })
            })
            .collect();
        let query = search_query(project);
        self.mount_paged(
            &format!("/workspaces/{ws}/search/code"),
            values,
            page_size,
            repeat,
            &[("search_query", query.as_str())],
        )
        .await;
    }

    /// Code search answering `status` for every query (not enabled).
    pub async fn mount_search_disabled(&self, ws: &str, status: u16) {
        self.get(format!("/2.0/workspaces/{ws}/search/code"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "type": "error",
                "error": {"message": "Search is not enabled for the requested workspace"},
            })))
            .mount(&self.server)
            .await;
    }

    pub async fn mount_src(&self, ws: &str, slug: &str, git_ref: &str, file: &str, body: &str) {
        self.get(format!(
            "/2.0/repositories/{ws}/{slug}/src/{git_ref}/{file}"
        ))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(&self.server)
        .await;
    }

    /// Requests whose path ends with `suffix`.
    pub async fn requests_to(&self, suffix: &str) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path().ends_with(suffix))
            .count()
    }

    pub async fn requests(&self) -> Vec<wiremock::Request> {
        self.server.received_requests().await.unwrap_or_default()
    }
}

/// Backstage's code search query for `/catalog-info.yaml` in `project`.
pub fn search_query(project: &str) -> String {
    format!("\"catalog-info.yaml\" path:/catalog-info.yaml project:{project}")
}

/// A config with one Cloud integration pointing at `fake` and one Cloud
/// provider `cloud` for workspace `ws` with the given extra provider YAML.
pub fn cloud_config(
    fake: &FakeCloud,
    ws: &str,
    integration_extra: &str,
    provider_extra: &str,
) -> String {
    format!(
        "integrations:\n  bitbucketCloud:\n    - host: {host}\n      apiBaseUrl: {api}\n{integration_extra}\ncatalog:\n  providers:\n    bitbucketCloud:\n      cloud:\n        workspace: {ws}\n{provider_extra}\n",
        host = fake.host(),
        api = fake.api_base(),
    )
}
