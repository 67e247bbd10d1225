//! Bitbucket Server / Data Center REST 1.0: projects, repositories and raw
//! files, paged at the server's maximum page size.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::{BitbucketError, Http, MAX_LISTING_BYTES, MAX_PAGES, too_many_pages};

/// Bitbucket's default cap on `limit`; asking for more is harmless (the
/// server clamps it), asking for less costs requests.
pub(crate) const PAGE_LIMIT: u32 = 1000;

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Project {
    pub key: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Repository {
    /// Bitbucket's id: stable across renames and moves.
    #[serde(default)]
    pub id: Option<u64>,
    pub slug: String,
    #[serde(default)]
    pub archived: bool,
    pub project: ProjectRef,
    #[serde(default)]
    pub links: Links,
    /// Present in newer Server versions' listings; never fetched separately.
    #[serde(default, rename = "defaultBranch")]
    pub default_branch: Option<DefaultBranch>,
}

/// A branch and the commit it is at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BranchHead {
    pub branch: String,
    pub commit: String,
}

/// A path a commit range touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChangedPath {
    pub path: String,
    /// Gone at the newer commit.
    pub deleted: bool,
}

/// `defaultBranch` as a listing may carry it: a name or a ref object.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum DefaultBranch {
    Name(String),
    Ref {
        #[serde(rename = "displayId")]
        display_id: Option<String>,
        id: Option<String>,
    },
    Other(serde::de::IgnoredAny),
}

impl DefaultBranch {
    /// The branch name, e.g. `main`.
    pub(crate) fn name(&self) -> Option<String> {
        let name = match self {
            DefaultBranch::Name(name) => Some(name.as_str()),
            DefaultBranch::Ref { display_id, id } => display_id.as_deref().or(id.as_deref()),
            DefaultBranch::Other(_) => None,
        }?;
        let name = name.strip_prefix("refs/heads/").unwrap_or(name);
        (!name.is_empty()).then(|| name.to_owned())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ProjectRef {
    pub key: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Links {
    #[serde(default, rename = "self")]
    pub self_: Vec<Link>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Link {
    pub href: String,
}

impl Repository {
    /// The repository's web URL (`…/projects/KEY/repos/slug/browse`), when
    /// Bitbucket gave one.
    pub(crate) fn browse_url(&self) -> Option<&str> {
        self.links.self_.first().map(|l| l.href.as_str())
    }
}

/// A webhook as Bitbucket lists it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Webhook {
    pub id: u64,
    #[serde(default)]
    pub url: String,
}

/// A page as Bitbucket sends it: `values` and `isLastPage` are required,
/// so an answer of another shape (`{}` from a proxy) fails the listing
/// instead of passing for an empty one.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    values: Vec<T>,
    is_last_page: bool,
    next_page_start: Option<u64>,
}

/// Whether `err` says the global listing is not served at all (an older
/// server, or a proxy that only lets per-project listings through), as
/// opposed to failing this time.
pub(crate) fn global_listing_missing(err: &BitbucketError) -> bool {
    matches!(
        err.status(),
        Some(
            reqwest::StatusCode::NOT_FOUND
                | reqwest::StatusCode::METHOD_NOT_ALLOWED
                | reqwest::StatusCode::NOT_IMPLEMENTED
        )
    )
}

/// A REST 1.0 client bound to one integration.
#[derive(Debug, Clone)]
pub(crate) struct ServerClient {
    http: Http,
    api_base: Url,
}

impl ServerClient {
    pub(crate) fn new(http: Http, api_base: Url) -> Self {
        Self { http, api_base }
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.api_base.clone();
        // Base URLs are validated as http(s) at config load, so they can be a base.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    pub(crate) async fn projects(&self) -> Result<Vec<Project>, BitbucketError> {
        self.paged("projects", self.url(&["projects"])).await
    }

    pub(crate) async fn repositories(
        &self,
        project_key: &str,
    ) -> Result<Vec<Repository>, BitbucketError> {
        self.paged("repos", self.url(&["projects", project_key, "repos"]))
            .await
    }

    /// Data Center's global listing (`GET /repos`): every repository the
    /// credential can read, personal ones included, `limit` 1000 a page.
    /// `with_archived` asks for archived ones too (`archived=ALL`, 8.0+;
    /// older servers have no archiving and ignore it). A 404 means the
    /// server or a proxy does not serve it: see [`global_listing_missing`].
    pub(crate) async fn all_repositories(
        &self,
        with_archived: bool,
    ) -> Result<Vec<Repository>, BitbucketError> {
        let mut url = self.url(&["repos"]);
        url.query_pairs_mut()
            .append_pair("archived", if with_archived { "ALL" } else { "ACTIVE" });
        self.paged("repos_global", url).await
    }

    /// The repository's default branch; `None` when it has none (empty).
    pub(crate) async fn default_branch(
        &self,
        project_key: &str,
        slug: &str,
    ) -> Result<Option<String>, BitbucketError> {
        let url = self.url(&["projects", project_key, "repos", slug, "default-branch"]);
        let branch: Option<DefaultBranch> = self.http.get_json("default_branch", &url).await?;
        Ok(branch.and_then(|b| b.name()))
    }

    /// Bitbucket's version (`/application-properties`), e.g. `8.19.0`.
    pub(crate) async fn version(&self) -> Result<Option<String>, BitbucketError> {
        #[derive(Deserialize)]
        struct Properties {
            version: Option<String>,
        }
        let url = self.url(&["application-properties"]);
        let properties: Option<Properties> =
            self.http.get_json("application_properties", &url).await?;
        Ok(properties.and_then(|p| p.version))
    }

    fn webhooks_url(&self, project_key: &str, slug: Option<&str>, id: Option<u64>) -> Url {
        let id = id.map(|id| id.to_string());
        let mut segments = vec!["projects", project_key];
        if let Some(slug) = slug {
            segments.extend(["repos", slug]);
        }
        segments.push("webhooks");
        segments.extend(id.as_deref());
        self.url(&segments)
    }

    /// The webhooks of a project (`slug: None`) or of one repository.
    pub(crate) async fn webhooks(
        &self,
        project_key: &str,
        slug: Option<&str>,
    ) -> Result<Vec<Webhook>, BitbucketError> {
        self.paged("webhooks", self.webhooks_url(project_key, slug, None))
            .await
    }

    /// Creates a webhook (`id: None`) or replaces webhook `id`.
    pub(crate) async fn save_webhook(
        &self,
        project_key: &str,
        slug: Option<&str>,
        id: Option<u64>,
        body: &serde_json::Value,
    ) -> Result<(), BitbucketError> {
        let url = self.webhooks_url(project_key, slug, id);
        let method = if id.is_some() {
            reqwest::Method::PUT
        } else {
            reqwest::Method::POST
        };
        self.http
            .send_json(method, "webhook_save", &url, body)
            .await?
            .map(|_| ())
            .ok_or_else(|| BitbucketError::Status {
                url: url.to_string(),
                status: reqwest::StatusCode::NOT_FOUND,
                hint: " (webhooks need Bitbucket Data Center 5.4+, and project webhooks 8.8+)"
                    .to_owned(),
                body: String::new(),
            })
    }

    /// The URL of a file in a repository (default branch unless `at`).
    pub(crate) fn raw_url(
        &self,
        project_key: &str,
        slug: &str,
        path: &str,
        at: Option<&str>,
    ) -> Url {
        let mut segments = vec!["projects", project_key, "repos", slug, "raw"];
        segments.extend(path.split('/'));
        let mut url = self.url(&segments);
        if let Some(at) = at {
            url.query_pairs_mut().append_pair("at", at);
        }
        url
    }

    /// The default branch's name and latest commit (one request); `None`
    /// for an empty repository.
    pub(crate) async fn branch_head(
        &self,
        project_key: &str,
        slug: &str,
    ) -> Result<Option<BranchHead>, BitbucketError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Head {
            display_id: Option<String>,
            id: Option<String>,
            latest_commit: Option<String>,
        }
        let url = self.url(&[
            "projects",
            project_key,
            "repos",
            slug,
            "branches",
            "default",
        ]);
        let head: Option<Head> = self.http.get_json("branch_head", &url).await?;
        Ok(head.and_then(|h| {
            let name = h.display_id.or(h.id)?;
            let branch = name.strip_prefix("refs/heads/").unwrap_or(&name).to_owned();
            Some(BranchHead {
                branch,
                commit: h.latest_commit?,
            })
        }))
    }

    /// The paths changed between two commits (`changes?since=&until=`),
    /// each with whether it is gone at `until`; `None` when Bitbucket no
    /// longer knows one of the commits (then list the files again).
    pub(crate) async fn changes(
        &self,
        project_key: &str,
        slug: &str,
        since: &str,
        until: &str,
    ) -> Result<Option<Vec<ChangedPath>>, BitbucketError> {
        #[derive(Deserialize)]
        struct Path {
            #[serde(rename = "toString")]
            to_string: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Change {
            path: Path,
            src_path: Option<Path>,
            #[serde(rename = "type")]
            kind: Option<String>,
        }
        let mut url = self.url(&["projects", project_key, "repos", slug, "changes"]);
        url.query_pairs_mut()
            .append_pair("since", since)
            .append_pair("until", until);
        let changes: Vec<Change> = match self.paged("changes", url).await {
            Ok(changes) => changes,
            Err(err) if err.status() == Some(reqwest::StatusCode::NOT_FOUND) => return Ok(None),
            Err(err) => return Err(err),
        };
        let mut paths = Vec::new();
        for change in changes {
            let kind = change.kind.as_deref().unwrap_or_default();
            // A move or rename leaves its source path gone.
            if let Some(src) = change.src_path {
                paths.push(ChangedPath {
                    path: src.to_string,
                    deleted: true,
                });
            }
            paths.push(ChangedPath {
                path: change.path.to_string,
                deleted: kind == "DELETE",
            });
        }
        Ok(Some(paths))
    }

    /// Every file path of the repository (default branch unless `at`),
    /// relative to its root, paged.
    pub(crate) async fn files(
        &self,
        project_key: &str,
        slug: &str,
        at: Option<&str>,
    ) -> Result<Vec<String>, BitbucketError> {
        let mut url = self.url(&["projects", project_key, "repos", slug, "files"]);
        if let Some(at) = at {
            url.query_pairs_mut().append_pair("at", at);
        }
        self.paged("files", url).await
    }

    /// A file's bytes (at most `limit + 1`), or `None` when it does not exist.
    pub(crate) async fn raw_file(
        &self,
        url: &Url,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, BitbucketError> {
        self.http.get_bytes_limited("raw", url, limit).await
    }

    /// Follows `nextPageStart` until `isLastPage`. An empty page ends the
    /// listing; a `nextPageStart` that does not advance is an error (a
    /// misbehaving proxy must neither loop us forever nor pass for complete).
    async fn paged<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        base: Url,
    ) -> Result<Vec<T>, BitbucketError> {
        let mut all = Vec::new();
        let mut start: u64 = 0;
        let mut budget = MAX_LISTING_BYTES;
        for _ in 0..MAX_PAGES {
            let mut url = base.clone();
            url.query_pairs_mut()
                .append_pair("limit", &PAGE_LIMIT.to_string())
                .append_pair("start", &start.to_string());
            let page: Page<T> = self
                .http
                .get_page(endpoint, &url, &mut budget)
                .await?
                .ok_or_else(|| BitbucketError::Status {
                    url: url.to_string(),
                    status: reqwest::StatusCode::NOT_FOUND,
                    hint: " (check the integration's apiBaseUrl and that the project still exists)"
                        .to_owned(),
                    body: String::new(),
                })?;
            let empty = page.values.is_empty();
            all.extend(page.values);
            if page.is_last_page || empty {
                return Ok(all);
            }
            match page.next_page_start {
                Some(next) if next > start => start = next,
                other => {
                    return Err(BitbucketError::decode(
                        &url,
                        format!(
                            "isLastPage is false but nextPageStart is {other:?} after start {start}; the listing cannot be completed"
                        ),
                    ));
                }
            }
        }
        Err(too_many_pages(&base))
    }
}
