//! Bitbucket Cloud REST 2.0: workspace projects, repositories, code search
//! and files, paged by following the absolute `next` URL.

use std::collections::HashSet;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::server::ChangedPath;
use super::urls::host_of;
use super::{BitbucketError, Http, MAX_LISTING_BYTES, MAX_PAGES, cloud_urls, too_many_pages};

/// Cloud's cap on `pagelen` (larger values are answered with an error by
/// some endpoints, so the provider's `pagelen` is validated against it).
pub(crate) const MAX_PAGELEN: u32 = 100;

/// What code search results are trimmed to: Backstage's own `fields`
/// (repository slug, project key, main branch and web link; no content
/// matches, no other links), plus the repository's UUID.
pub(crate) const SEARCH_FIELDS: &str = "-values.content_matches,+values.file.commit.repository.mainbranch.name,+values.file.commit.repository.project.key,+values.file.commit.repository.slug,+values.file.commit.repository.uuid,-values.*.links,-values.*.*.links,-values.*.*.*.links,+values.file.commit.repository.links.html.href";

/// Repository listings (the fallback) trimmed the same way.
pub(crate) const REPOSITORY_FIELDS: &str =
    "-values.links,+values.links.html.href,-values.owner,-values.workspace,-values.project.links";

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Project {
    pub key: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Repository {
    pub slug: String,
    /// Bitbucket's id: stable across renames and transfers.
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub project: Option<ProjectRef>,
    #[serde(default)]
    pub mainbranch: Option<Branch>,
    #[serde(default)]
    pub links: Option<RepositoryLinks>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ProjectRef {
    pub key: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Branch {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RepositoryLinks {
    #[serde(default)]
    pub html: Option<Href>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Href {
    pub href: String,
}

impl Repository {
    pub(crate) fn project_key(&self) -> Option<&str> {
        self.project.as_ref().map(|p| p.key.as_str())
    }

    /// The main branch; an empty repository has none.
    pub(crate) fn main_branch(&self) -> Option<&str> {
        self.mainbranch
            .as_ref()
            .map(|b| b.name.as_str())
            .filter(|n| !n.is_empty())
    }

    /// The repository's web URL (`https://bitbucket.org/{ws}/{slug}`), when
    /// Bitbucket gave one.
    pub(crate) fn html_url(&self) -> Option<&str> {
        self.links
            .as_ref()
            .and_then(|l| l.html.as_ref())
            .map(|h| h.href.trim_end_matches('/'))
    }
}

/// A webhook as Bitbucket Cloud lists it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Hook {
    pub uuid: String,
    #[serde(default)]
    pub url: String,
}

/// One code search hit.
/// One entry of a `src` listing: a file or a directory.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SrcEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
    pub commit: Option<SrcCommit>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SrcCommit {
    pub hash: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SearchResult {
    #[serde(default)]
    pub path_matches: Vec<serde_json::Value>,
    #[serde(default)]
    pub file: Option<SearchFile>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SearchFile {
    pub path: String,
    #[serde(default)]
    pub commit: Option<SearchCommit>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SearchCommit {
    pub hash: String,
    pub repository: Repository,
}

/// `values` is required: an answer of another shape fails the listing.
#[derive(Debug, Deserialize)]
struct Page<T> {
    values: Vec<T>,
    #[serde(default)]
    next: Option<String>,
    /// How many items the whole listing holds, when Bitbucket says.
    #[serde(default)]
    size: Option<usize>,
}

/// Every page of a listing, and the largest `size` its pages stated.
struct Pages<T> {
    values: Vec<T>,
    size: Option<usize>,
}

/// What a code search came to.
#[derive(Debug)]
pub(crate) enum Search {
    /// Every page's results (repeats included, BCLOUD-23644) and the
    /// answer's `size`: how many matches Bitbucket counted, past the cap too.
    Results {
        results: Vec<SearchResult>,
        size: Option<usize>,
    },
    /// The first page answered 4xx: code search is not enabled for the
    /// workspace (or not open to these credentials). The message says which.
    Unavailable(String),
}

/// A REST 2.0 client bound to one integration.
#[derive(Debug, Clone)]
pub(crate) struct CloudClient {
    http: Http,
    api_base: Url,
}

impl CloudClient {
    pub(crate) fn new(http: Http, api_base: Url) -> Self {
        Self { http, api_base }
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.api_base.clone();
        // Base URLs are validated as http(s) at config load, so they can be a base.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    pub(crate) async fn projects(
        &self,
        workspace: &str,
        pagelen: u32,
    ) -> Result<Vec<Project>, BitbucketError> {
        let url = self.url(
            &["workspaces", workspace, "projects"],
            &[("pagelen", &pagelen.to_string())],
        );
        self.workspace_pages("cloud_projects", url, workspace).await
    }

    /// The workspace's repositories; with `project`, only that project's
    /// (Cloud's `q=project.key="KEY"` filter).
    pub(crate) async fn repositories(
        &self,
        workspace: &str,
        project: Option<&str>,
        pagelen: u32,
    ) -> Result<Vec<Repository>, BitbucketError> {
        let pagelen = pagelen.to_string();
        let filter = project.map(|key| format!("project.key=\"{key}\""));
        let mut query = vec![("pagelen", pagelen.as_str()), ("fields", REPOSITORY_FIELDS)];
        query.extend(filter.as_deref().map(|q| ("q", q)));
        let url = self.url(&["repositories", workspace], &query);
        self.workspace_pages("cloud_repos", url, workspace).await
    }

    /// One repository (its main branch, project and links).
    pub(crate) async fn repository(
        &self,
        workspace: &str,
        slug: &str,
    ) -> Result<Option<Repository>, BitbucketError> {
        let url = self.url(
            &["repositories", workspace, slug],
            &[(
                "fields",
                "slug,uuid,project.key,mainbranch.name,links.html.href",
            )],
        );
        self.http.get_json("cloud_repo", &url).await
    }

    /// The webhooks of a workspace.
    pub(crate) async fn workspace_hooks(
        &self,
        workspace: &str,
    ) -> Result<Vec<Hook>, BitbucketError> {
        let url = self.url(&["workspaces", workspace, "hooks"], &[]);
        self.workspace_pages("cloud_hooks", url, workspace).await
    }

    /// Creates a workspace webhook (`uuid: None`) or replaces hook `uuid`.
    pub(crate) async fn save_workspace_hook(
        &self,
        workspace: &str,
        uuid: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<(), BitbucketError> {
        let mut segments = vec!["workspaces", workspace, "hooks"];
        segments.extend(uuid);
        let url = self.url(&segments, &[]);
        let method = if uuid.is_some() {
            reqwest::Method::PUT
        } else {
            reqwest::Method::POST
        };
        self.http
            .send_json(method, "cloud_hook_save", &url, body)
            .await?
            .map(|_| ())
            .ok_or_else(|| not_found(&self.api_base, workspace))
    }

    /// Every page of a code search. Only a 4xx on the first page means
    /// "unavailable"; 401 and 429 are errors (the fallback would fail the
    /// same way), as is any failure after the first page.
    pub(crate) async fn search_code(
        &self,
        workspace: &str,
        query: &str,
        pagelen: u32,
    ) -> Result<Search, BitbucketError> {
        let url = self.url(
            &["workspaces", workspace, "search", "code"],
            &[
                ("search_query", query),
                ("pagelen", &pagelen.to_string()),
                ("fields", SEARCH_FIELDS),
            ],
        );
        match self.paged("cloud_search", url.clone()).await {
            Ok(Some(Pages { values, size })) => Ok(Search::Results {
                results: values,
                size,
            }),
            Ok(None) => Ok(Search::Unavailable(format!(
                "code search answered 404 for workspace '{workspace}' ({url}): it is not enabled; turn it on in the workspace's search page"
            ))),
            Err(PageFailure {
                error: err @ BitbucketError::Status { status, .. },
                first_page: true,
            }) if status.is_client_error()
                && status != reqwest::StatusCode::UNAUTHORIZED
                && status != reqwest::StatusCode::TOO_MANY_REQUESTS =>
            {
                Ok(Search::Unavailable(format!(
                    "code search is not available for workspace '{workspace}': {err}"
                )))
            }
            Err(failed) => Err(failed.error),
        }
    }

    /// The REST URL of a file at a commit or branch.
    pub(crate) fn src_url(&self, workspace: &str, slug: &str, git_ref: &str, path: &str) -> Url {
        cloud_urls::src_url(&self.api_base, workspace, slug, git_ref, path.split('/'))
    }

    /// The files below the root at `git_ref`, down to `max_depth`
    /// directories (Cloud's recursive `src` listing); `None` when the
    /// repository or ref does not exist.
    pub(crate) async fn src_listing(
        &self,
        workspace: &str,
        slug: &str,
        git_ref: &str,
        max_depth: u32,
        pagelen: u32,
    ) -> Result<Option<Vec<SrcEntry>>, BitbucketError> {
        let mut url = cloud_urls::src_url(&self.api_base, workspace, slug, git_ref, [""]);
        url.query_pairs_mut()
            .append_pair("max_depth", &max_depth.to_string())
            .append_pair("pagelen", &pagelen.to_string())
            .append_pair("fields", "next,values.type,values.path,values.commit.hash");
        match self.paged("cloud_src_list", url).await {
            Ok(pages) => Ok(pages.map(|p| p.values)),
            Err(failed) => Err(failed.error),
        }
    }

    /// The latest commit of `branch` (`refs/branches/{name}`, one request);
    /// `None` when the branch does not exist (an empty repository).
    pub(crate) async fn branch_commit(
        &self,
        workspace: &str,
        slug: &str,
        branch: &str,
    ) -> Result<Option<String>, BitbucketError> {
        #[derive(Deserialize)]
        struct Target {
            hash: String,
        }
        #[derive(Deserialize)]
        struct Branch {
            target: Option<Target>,
        }
        let mut segments = vec!["repositories", workspace, slug, "refs", "branches"];
        segments.extend(branch.split('/'));
        let url = self.url(&segments, &[("fields", "target.hash")]);
        let found: Option<Branch> = self.http.get_json("cloud_branch", &url).await?;
        Ok(found.and_then(|b| b.target).map(|t| t.hash))
    }

    /// The paths that differ between commits `old` and `new`
    /// (`diffstat/{new}..{old}`), each with whether it is gone at `new`;
    /// `None` when Bitbucket does not know one of the commits.
    pub(crate) async fn diffstat(
        &self,
        workspace: &str,
        slug: &str,
        old: &str,
        new: &str,
    ) -> Result<Option<Vec<ChangedPath>>, BitbucketError> {
        #[derive(Deserialize)]
        struct Side {
            path: String,
        }
        #[derive(Deserialize)]
        struct Entry {
            old: Option<Side>,
            new: Option<Side>,
        }
        let spec = format!("{new}..{old}");
        let url = self.url(
            &["repositories", workspace, slug, "diffstat", &spec],
            &[("fields", "next,values.old.path,values.new.path")],
        );
        let entries: Vec<Entry> = match self.paged("cloud_diffstat", url).await {
            Ok(Some(pages)) => pages.values,
            Ok(None) => return Ok(None),
            Err(failed) => return Err(failed.error),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let new_path = entry.new.map(|n| n.path);
            // A removal or a rename leaves the old path gone.
            if let Some(old) = entry.old.filter(|o| Some(&o.path) != new_path.as_ref()) {
                paths.push(ChangedPath {
                    path: old.path,
                    deleted: true,
                });
            }
            if let Some(path) = new_path {
                paths.push(ChangedPath {
                    path,
                    deleted: false,
                });
            }
        }
        Ok(Some(paths))
    }

    /// A file's bytes (at most `limit + 1`), or `None` when it does not exist.
    pub(crate) async fn file(
        &self,
        url: &Url,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, BitbucketError> {
        self.http.get_bytes_limited("cloud_src", url, limit).await
    }

    /// Every page of a listing of `workspace`, which must exist.
    async fn workspace_pages<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        url: Url,
        workspace: &str,
    ) -> Result<Vec<T>, BitbucketError> {
        self.paged(endpoint, url)
            .await
            .map_err(|failed| failed.error)?
            .map(|pages| pages.values)
            .ok_or_else(|| not_found(&self.api_base, workspace))
    }

    /// Follows `next` until there is none. `Ok(None)` when the first page is
    /// a 404. A `next` on another origin than the API (our credentials would
    /// go with it) or one already followed fails the listing; an empty page
    /// ends it.
    async fn paged<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        first: Url,
    ) -> Result<Option<Pages<T>>, PageFailure> {
        let later = |error| PageFailure {
            error,
            first_page: false,
        };
        let mut all = Vec::new();
        let mut size: Option<usize> = None;
        let mut seen = HashSet::new();
        let mut budget = MAX_LISTING_BYTES;
        let mut url = first;
        loop {
            if seen.len() >= MAX_PAGES {
                return Err(later(too_many_pages(&url)));
            }
            let is_first = seen.is_empty();
            seen.insert(url.to_string());
            let page: Page<T> = match self.http.get_page(endpoint, &url, &mut budget).await {
                Ok(Some(page)) => page,
                Ok(None) if is_first => return Ok(None),
                Ok(None) => {
                    return Err(later(BitbucketError::Status {
                        url: url.to_string(),
                        status: reqwest::StatusCode::NOT_FOUND,
                        hint: " (a later page of a listing disappeared; the next run retries)"
                            .to_owned(),
                        body: String::new(),
                    }));
                }
                Err(error) => {
                    return Err(PageFailure {
                        error,
                        first_page: is_first,
                    });
                }
            };
            let empty = page.values.is_empty();
            all.extend(page.values);
            size = size.max(page.size);
            let Some(next) = page.next.filter(|_| !empty) else {
                return Ok(Some(Pages { values: all, size }));
            };
            let mut next_url = Url::parse(&next).map_err(|err| {
                later(BitbucketError::decode(
                    &url,
                    format!("`next` is not a URL ({err}): {next}"),
                ))
            })?;
            if !same_origin(&next_url, &self.api_base) {
                return Err(later(BitbucketError::decode(
                    &url,
                    format!(
                        "`next` points to another host ({next}); it is not followed, so the credentials stay with {}",
                        host_of(&self.api_base).unwrap_or_default()
                    ),
                )));
            }
            // User info in `next` would replace our credentials: dropped.
            let _ = next_url.set_username("");
            let _ = next_url.set_password(None);
            if seen.contains(next_url.as_str()) {
                return Err(later(BitbucketError::decode(
                    &url,
                    format!(
                        "`next` repeats a page already read ({next}); the listing cannot be completed"
                    ),
                )));
            }
            url = next_url;
        }
    }
}

/// A listing that failed, and whether on its first page.
struct PageFailure {
    error: BitbucketError,
    first_page: bool,
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

fn not_found(api_base: &Url, workspace: &str) -> BitbucketError {
    BitbucketError::Status {
        url: format!("{api_base}/workspaces/{workspace}"),
        status: reqwest::StatusCode::NOT_FOUND,
        hint: " (no such workspace, or not visible to these credentials: check the provider's workspace and the integration)".to_owned(),
        body: String::new(),
    }
}
