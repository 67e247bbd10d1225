//! A fake Bitbucket Server (REST 1.0) on wiremock, and daemon configs that
//! point at it.

use serde_json::{Value, json};
use wiremock::matchers::query_param;
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

use super::entities::component;
use super::mock;

pub const API: &str = "/rest/api/1.0";

/// A fake Bitbucket Server (REST 1.0) that pages like the real one.
pub struct FakeServer {
    pub server: MockServer,
    /// When set, every mock requires this exact `Authorization` header, so a
    /// request without it gets wiremock's 404 and the run fails.
    pub authorization: Option<String>,
}

impl FakeServer {
    /// A fake to declare projects, repositories and files on before it
    /// starts: `FakeServer::builder().component("PLAT", "svc").start()`.
    pub fn builder() -> FakeServerBuilder {
        FakeServerBuilder {
            page_size: 25,
            ..FakeServerBuilder::default()
        }
    }

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
        mock::get(self.authorization.as_deref(), p)
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
        slugs
            .iter()
            .fold(Self::builder(), |fake, slug| fake.component(project, slug))
            .mount(self)
            .await;
    }

    /// Like [`Self::mount_file`], with arbitrary bytes.
    pub async fn mount_file_bytes(&self, project: &str, slug: &str, file: &str, body: &[u8]) {
        self.get(format!("{API}/projects/{project}/repos/{slug}/raw/{file}"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(body.to_vec()))
            .mount(&self.server)
            .await;
    }

    /// Bitbucket goes down: every request is answered 503 from now on.
    pub async fn fail_everything(&self) {
        self.server.reset().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(503))
            .mount(&self.server)
            .await;
    }

    /// How many requests reached the fake whose path ends with `suffix`.
    pub async fn requests_to(&self, suffix: &str) -> usize {
        mock::requests_to(&self.server, suffix).await
    }
}

/// The fake as an integration, with no provider (locations only).
pub fn integration_config(fake: &FakeServer) -> String {
    format!(
        "integrations:\n  bitbucketServer:\n    - host: {}\n      apiBaseUrl: {}\n",
        fake.host(),
        fake.api_base()
    )
}

/// A config with one Server integration pointing at `fake` and one provider
/// `main` with the given extra integration and provider YAML (indented under
/// the integration and the provider).
pub fn server_config(fake: &FakeServer, integration_extra: &str, provider_extra: &str) -> String {
    format!(
        "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\n{integration_extra}\ncatalog:\n  providers:\n    bitbucketServer:\n      main:\n        host: {host}\n{provider_extra}\n",
        host = fake.host(),
        api = fake.api_base(),
    )
}

/// What a [`FakeServer`] serves: projects (listed in the order first
/// named), their repositories and files, in pages of 25 unless told.
#[derive(Default)]
pub struct FakeServerBuilder {
    authorization: Option<String>,
    page_size: usize,
    /// Project key and its repositories as `(slug, archived)`.
    projects: Vec<(String, Vec<(String, bool)>)>,
    /// `(project, slug, path, body)`.
    files: Vec<(String, String, String, String)>,
}

impl FakeServerBuilder {
    /// Every request must carry this `Authorization` header.
    pub fn authorization(mut self, value: &str) -> Self {
        self.authorization = Some(value.to_owned());
        self
    }

    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size;
        self
    }

    /// Project `key`, listed with the repositories declared for it (an
    /// empty page if none).
    pub fn project(mut self, key: &str) -> Self {
        self.repos_of(key);
        self
    }

    pub fn repo(self, project: &str, slug: &str) -> Self {
        self.repo_archived(project, slug, false)
    }

    pub fn repo_archived(mut self, project: &str, slug: &str, archived: bool) -> Self {
        self.repos_of(project).push((slug.to_owned(), archived));
        self
    }

    /// `body` at `path` on the repository's default branch.
    pub fn file(mut self, project: &str, slug: &str, path: &str, body: &str) -> Self {
        self.files
            .push((project.into(), slug.into(), path.into(), body.into()));
        self
    }

    /// A repository whose `catalog-info.yaml` is `body`.
    pub fn catalog(self, project: &str, slug: &str, body: &str) -> Self {
        self.repo(project, slug)
            .file(project, slug, "catalog-info.yaml", body)
    }

    /// A repository whose `catalog-info.yaml` is a component named after it.
    pub fn component(self, project: &str, slug: &str) -> Self {
        self.catalog(project, slug, &component(slug))
    }

    fn repos_of(&mut self, project: &str) -> &mut Vec<(String, bool)> {
        let index = match self.projects.iter().position(|(key, _)| key == project) {
            Some(index) => index,
            None => {
                self.projects.push((project.to_owned(), Vec::new()));
                self.projects.len() - 1
            }
        };
        &mut self.projects[index].1
    }

    pub async fn start(self) -> FakeServer {
        let fake = FakeServer {
            server: MockServer::start().await,
            authorization: self.authorization.clone(),
        };
        self.mount(&fake).await;
        fake
    }

    /// Mounts what is declared on `fake` (e.g. after a reset).
    pub async fn mount(self, fake: &FakeServer) {
        let keys: Vec<&str> = self.projects.iter().map(|(key, _)| key.as_str()).collect();
        fake.mount_projects(&keys, self.page_size).await;
        for (key, repos) in &self.projects {
            let repos: Vec<(&str, bool)> = repos.iter().map(|(s, a)| (s.as_str(), *a)).collect();
            fake.mount_repos(key, &repos, self.page_size).await;
        }
        for (project, slug, path, body) in &self.files {
            fake.mount_file(project, slug, path, body).await;
        }
    }
}
