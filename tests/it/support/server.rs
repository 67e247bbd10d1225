//! A fake Bitbucket Server (REST 1.0) on wiremock, and daemon configs that
//! point at it.

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

use super::entities::component;

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
