//! A fake Bitbucket Cloud (REST 2.0) on wiremock, and daemon configs that
//! point at it.

use serde_json::{Value, json};
use wiremock::matchers::query_param;
use wiremock::{MockBuilder, MockServer, ResponseTemplate};

use super::mock;

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
        mock::get(self.authorization.as_deref(), p)
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
        mock::requests_to(&self.server, suffix).await
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
