//! What a pull-request check asks of Bitbucket: the paths a pull request
//! changes, and where its result is posted (a Code Insights report with
//! annotations, or a build status where Insights is not available). Both
//! products, one client: the calls differ only in their URLs and bodies.

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::{BitbucketError, Http, MAX_LISTING_BYTES, MAX_PAGES, too_many_pages};
use crate::integrations::Product;

/// Paths read of one pull request's changes at most: a pull request that
/// touches more is checked on the first ones (its report says so).
pub(crate) const MAX_CHANGED_PATHS: usize = 5_000;
/// Annotations per request (Cloud takes at most 100 per call).
const ANNOTATIONS_PER_CALL: usize = 100;

/// A repository as the pull-request calls name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RepoCoords {
    /// Data Center: the project key; Cloud: the workspace.
    pub owner: String,
    pub slug: String,
}

/// The paths a pull request changes.
#[derive(Debug, Default, Clone)]
pub(crate) struct ChangedFiles {
    pub paths: Vec<String>,
    /// More than [`MAX_CHANGED_PATHS`]: only the first are listed.
    pub truncated: bool,
}

/// Where a result was posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Posted {
    Insights,
    /// Insights answered 404 or 403: a build status instead.
    BuildStatus,
}

/// The pull-request calls of one integration.
#[derive(Debug, Clone)]
pub(crate) struct PullRequestApi {
    http: Http,
    product: Product,
    /// Data Center: `…/rest/api/1.0`; Cloud: `…/2.0`.
    api_base: Url,
}

impl PullRequestApi {
    pub(crate) fn new(http: Http, product: Product, api_base: Url) -> Self {
        Self {
            http,
            product,
            api_base,
        }
    }

    pub(crate) fn product(&self) -> Product {
        self.product
    }

    /// `api_base` with its last segments replaced: Data Center's other REST
    /// APIs live next to `rest/api/1.0` (`rest/insights/1.0`).
    fn url(&self, rest: Option<&str>, segments: &[&str]) -> Url {
        let mut url = self.api_base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            if let Some(rest) = rest {
                // `rest/api/1.0` → `rest/<rest>/1.0`.
                path.pop().pop().pop().extend(["rest", rest, "1.0"]);
            }
            path.extend(segments);
        }
        url
    }

    /// The REST call that reads `path` of `repo` at `commit`: a pull
    /// request's source commit, in the repository it comes from (its fork
    /// or the target).
    pub(crate) fn file_at(&self, repo: &RepoCoords, commit: &str, path: &str) -> Url {
        // Paths come from Bitbucket; a climb is never sent on.
        let parts = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != "." && *p != "..");
        match self.product {
            Product::Server => {
                let mut segments: Vec<&str> =
                    vec!["projects", &repo.owner, "repos", &repo.slug, "raw"];
                segments.extend(parts);
                let mut url = self.url(None, &segments);
                url.query_pairs_mut().append_pair("at", commit);
                url
            }
            Product::Cloud => {
                let mut segments: Vec<&str> =
                    vec!["repositories", &repo.owner, &repo.slug, "src", commit];
                segments.extend(parts);
                self.url(None, &segments)
            }
        }
    }

    /// Whether the integration can read `repo` (a fork): Bitbucket answers
    /// 404 (or 403) for a repository the account may not see.
    pub(crate) async fn can_read(&self, repo: &RepoCoords) -> Result<bool, BitbucketError> {
        let url = match self.product {
            Product::Server => self.url(None, &["projects", &repo.owner, "repos", &repo.slug]),
            Product::Cloud => self.url(None, &["repositories", &repo.owner, &repo.slug]),
        };
        match self.http.get_json::<Value>("fork_repository", &url).await {
            Ok(found) => Ok(found.is_some()),
            Err(err) if err.status() == Some(reqwest::StatusCode::FORBIDDEN) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// The paths pull request `id` of `repo` changes (renamed files under
    /// both names), at most [`MAX_CHANGED_PATHS`].
    pub(crate) async fn changed_files(
        &self,
        repo: &RepoCoords,
        id: u64,
    ) -> Result<ChangedFiles, BitbucketError> {
        let id = id.to_string();
        match self.product {
            Product::Server => self.server_changes(repo, &id).await,
            Product::Cloud => self.cloud_diffstat(repo, &id).await,
        }
    }

    /// Whether a file of `repo` at `commit` has a path `matches` takes, as
    /// a glob read's listing would find it (Data Center `files?at=`, Cloud
    /// `src/{commit}/?max_depth=`): stops at the first match. A repository
    /// or commit Bitbucket does not know has no files, as for that read.
    pub(crate) async fn any_file_at(
        &self,
        repo: &RepoCoords,
        commit: &str,
        cloud_depth: u32,
        matches: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<bool, BitbucketError> {
        match self.product {
            Product::Server => self.server_any_file(repo, commit, matches).await,
            Product::Cloud => {
                self.cloud_any_file(repo, commit, cloud_depth, matches)
                    .await
            }
        }
    }

    async fn server_any_file(
        &self,
        repo: &RepoCoords,
        commit: &str,
        matches: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<bool, BitbucketError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            #[serde(default)]
            values: Vec<String>,
            #[serde(default = "yes")]
            is_last_page: bool,
            next_page_start: Option<u64>,
        }
        fn yes() -> bool {
            true
        }
        let mut start = 0;
        let mut budget = MAX_LISTING_BYTES;
        let base = self.url(
            None,
            &["projects", &repo.owner, "repos", &repo.slug, "files"],
        );
        for _ in 0..MAX_PAGES {
            let mut url = base.clone();
            url.query_pairs_mut()
                .append_pair("at", commit)
                .append_pair("start", &start.to_string())
                .append_pair("limit", "1000");
            let Some(page): Option<Page> =
                self.http.get_page("pr_files", &url, &mut budget).await?
            else {
                return Ok(false);
            };
            if page.values.iter().any(|p| matches(p)) {
                return Ok(true);
            }
            match (page.is_last_page, page.next_page_start) {
                (false, Some(next)) if next > start => start = next,
                _ => return Ok(false),
            }
        }
        Err(too_many_pages(&base))
    }

    async fn cloud_any_file(
        &self,
        repo: &RepoCoords,
        commit: &str,
        depth: u32,
        matches: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<bool, BitbucketError> {
        #[derive(Deserialize)]
        struct Entry {
            #[serde(rename = "type")]
            kind: String,
            path: String,
        }
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            values: Vec<Entry>,
            next: Option<String>,
        }
        let mut url = self.url(
            None,
            &["repositories", &repo.owner, &repo.slug, "src", commit, ""],
        );
        url.query_pairs_mut()
            .append_pair("max_depth", &depth.to_string())
            .append_pair("pagelen", "100")
            .append_pair("fields", "next,values.type,values.path");
        let mut budget = MAX_LISTING_BYTES;
        for _ in 0..MAX_PAGES {
            let Some(page): Option<Page> =
                self.http.get_page("pr_src_list", &url, &mut budget).await?
            else {
                return Ok(false);
            };
            if page
                .values
                .iter()
                .any(|e| e.kind == "commit_file" && matches(&e.path))
            {
                return Ok(true);
            }
            // Only pages of the same API are followed.
            match page.next.and_then(|n| Url::parse(&n).ok()) {
                Some(next) if next.origin() == self.api_base.origin() => url = next,
                _ => return Ok(false),
            }
        }
        Err(too_many_pages(&url))
    }

    async fn server_changes(
        &self,
        repo: &RepoCoords,
        id: &str,
    ) -> Result<ChangedFiles, BitbucketError> {
        #[derive(Deserialize)]
        struct PathOf {
            #[serde(rename = "toString")]
            to_string: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Change {
            path: PathOf,
            src_path: Option<PathOf>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            #[serde(default)]
            values: Vec<Change>,
            #[serde(default = "yes")]
            is_last_page: bool,
            next_page_start: Option<u64>,
        }
        fn yes() -> bool {
            true
        }
        let mut files = ChangedFiles::default();
        let mut start = 0;
        for _ in 0..MAX_PAGES {
            let mut url = self.url(
                None,
                &[
                    "projects",
                    &repo.owner,
                    "repos",
                    &repo.slug,
                    "pull-requests",
                    id,
                    "changes",
                ],
            );
            url.query_pairs_mut()
                .append_pair("start", &start.to_string())
                .append_pair("limit", "1000");
            let Some(page): Option<Page> = self.http.get_json("pr_changes", &url).await? else {
                return Err(not_found(&url, "the pull request is gone"));
            };
            for change in page.values {
                files.paths.extend(change.src_path.map(|p| p.to_string));
                files.paths.push(change.path.to_string);
            }
            if files.paths.len() > MAX_CHANGED_PATHS {
                files.paths.truncate(MAX_CHANGED_PATHS);
                files.truncated = true;
                return Ok(files);
            }
            match (page.is_last_page, page.next_page_start) {
                (false, Some(next)) if next > start => start = next,
                _ => return Ok(files),
            }
        }
        files.truncated = true;
        Ok(files)
    }

    async fn cloud_diffstat(
        &self,
        repo: &RepoCoords,
        id: &str,
    ) -> Result<ChangedFiles, BitbucketError> {
        #[derive(Deserialize)]
        struct Side {
            path: String,
        }
        #[derive(Deserialize)]
        struct Stat {
            old: Option<Side>,
            new: Option<Side>,
        }
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            values: Vec<Stat>,
            next: Option<String>,
        }
        let mut files = ChangedFiles::default();
        let mut url = self.url(
            None,
            &[
                "repositories",
                &repo.owner,
                &repo.slug,
                "pullrequests",
                id,
                "diffstat",
            ],
        );
        url.query_pairs_mut().append_pair("pagelen", "500");
        for _ in 0..MAX_PAGES {
            let Some(page): Option<Page> = self.http.get_json("pr_diffstat", &url).await? else {
                return Err(not_found(&url, "the pull request is gone"));
            };
            for stat in page.values {
                let old = stat.old.map(|s| s.path);
                let new = stat.new.map(|s| s.path);
                if old != new {
                    files.paths.extend(old);
                }
                files.paths.extend(new);
            }
            if files.paths.len() > MAX_CHANGED_PATHS {
                files.paths.truncate(MAX_CHANGED_PATHS);
                files.truncated = true;
                return Ok(files);
            }
            // Only pages of the same API are followed.
            match page.next.and_then(|n| Url::parse(&n).ok()) {
                Some(next) if next.origin() == self.api_base.origin() => url = next,
                _ => return Ok(files),
            }
        }
        files.truncated = true;
        Ok(files)
    }

    /// Posts a result on `commit`: the report (then its annotations) where
    /// Code Insights answers, else the build status (`status` is what the
    /// caller makes of the report for it).
    pub(crate) async fn post(
        &self,
        repo: &RepoCoords,
        commit: &str,
        report: &Report,
    ) -> Result<Posted, BitbucketError> {
        match self.put_report(repo, commit, report).await {
            Ok(true) => Ok(Posted::Insights),
            Ok(false) => {
                self.post_build_status(repo, commit, report).await?;
                Ok(Posted::BuildStatus)
            }
            Err(err) if err.status() == Some(reqwest::StatusCode::FORBIDDEN) => {
                self.post_build_status(repo, commit, report).await?;
                Ok(Posted::BuildStatus)
            }
            Err(err) => Err(err),
        }
    }

    /// `false`: Code Insights is not there (404). Neither product's docs
    /// say that replacing a report drops its annotations, so the old ones
    /// are deleted explicitly: Data Center deletes every annotation of the
    /// report (`DELETE …/reports/{key}/annotations`) after the PUT; Cloud,
    /// whose bulk POST only creates or updates by `external_id`, deletes the
    /// report (with its annotations) before the PUT.
    async fn put_report(
        &self,
        repo: &RepoCoords,
        commit: &str,
        report: &Report,
    ) -> Result<bool, BitbucketError> {
        let (report_url, annotations_url) = self.report_urls(repo, commit, &report.key);
        let body = match self.product {
            Product::Server => report.server_body(),
            Product::Cloud => report.cloud_body(),
        };
        if self.product == Product::Cloud {
            // 404: no report yet (or no Insights: the PUT tells).
            self.http
                .send_json(
                    reqwest::Method::DELETE,
                    "insights_report_delete",
                    &report_url,
                    &Value::Null,
                )
                .await?;
        }
        let put = self
            .http
            .send_json(reqwest::Method::PUT, "insights_report", &report_url, &body)
            .await?;
        if put.is_none() {
            return Ok(false);
        }
        if self.product == Product::Server {
            // 404: none to delete.
            self.http
                .send_json(
                    reqwest::Method::DELETE,
                    "insights_annotations_delete",
                    &annotations_url,
                    &Value::Null,
                )
                .await?;
        }
        for chunk in report.annotations.chunks(ANNOTATIONS_PER_CALL) {
            let body = match self.product {
                Product::Server => {
                    serde_json::json!({"annotations": chunk.iter().map(|a| a.server_body(&report.key)).collect::<Vec<_>>()})
                }
                Product::Cloud => {
                    Value::Array(chunk.iter().map(|a| a.cloud_body(&report.key)).collect())
                }
            };
            self.http
                .send_json(
                    reqwest::Method::POST,
                    "insights_annotations",
                    &annotations_url,
                    &body,
                )
                .await?;
        }
        Ok(true)
    }

    fn report_urls(&self, repo: &RepoCoords, commit: &str, key: &str) -> (Url, Url) {
        let report = match self.product {
            Product::Server => self.url(
                Some("insights"),
                &[
                    "projects",
                    &repo.owner,
                    "repos",
                    &repo.slug,
                    "commits",
                    commit,
                    "reports",
                    key,
                ],
            ),
            Product::Cloud => self.url(
                None,
                &[
                    "repositories",
                    &repo.owner,
                    &repo.slug,
                    "commit",
                    commit,
                    "reports",
                    key,
                ],
            ),
        };
        let mut annotations = report.clone();
        if let Ok(mut path) = annotations.path_segments_mut() {
            path.push("annotations");
        }
        (report, annotations)
    }

    async fn post_build_status(
        &self,
        repo: &RepoCoords,
        commit: &str,
        report: &Report,
    ) -> Result<(), BitbucketError> {
        let state = if report.passed {
            "SUCCESSFUL"
        } else {
            "FAILED"
        };
        let url = match self.product {
            Product::Server => self.url(Some("build-status"), &["commits", commit]),
            Product::Cloud => self.url(
                None,
                &[
                    "repositories",
                    &repo.owner,
                    &repo.slug,
                    "commit",
                    commit,
                    "statuses",
                    "build",
                ],
            ),
        };
        let body = serde_json::json!({
            "state": state,
            "key": report.key,
            "name": report.title,
            "url": report.link,
            "description": report.summary,
        });
        self.http
            .send_json(reqwest::Method::POST, "build_status", &url, &body)
            .await?
            .map(|_| ())
            .ok_or_else(|| {
                not_found(
                    &url,
                    "neither Code Insights nor build statuses are available",
                )
            })
    }
}

fn not_found(url: &Url, hint: &str) -> BitbucketError {
    BitbucketError::Status {
        url: url.to_string(),
        status: reqwest::StatusCode::NOT_FOUND,
        hint: format!(" ({hint})"),
        body: String::new(),
    }
}

/// A result to post, product-neutral.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// The report key (the build status key).
    pub key: String,
    pub title: String,
    pub passed: bool,
    /// One line: the build status description.
    pub summary: String,
    /// The report's details (at most 2,000 characters are kept).
    pub details: String,
    /// The preview: where the whole result is.
    pub link: String,
    /// `(title, value)` figures, at most 6.
    pub data: Vec<(String, u64)>,
    pub annotations: Vec<Annotation>,
}

/// One problem at a line of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Annotation {
    pub path: String,
    pub line: u32,
    pub message: String,
    pub external_id: String,
}

/// Insights' limits on text fields.
const MAX_DETAILS: usize = 2000;
const MAX_TITLE: usize = 450;

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut kept: String = text.chars().take(max.saturating_sub(1)).collect();
    kept.push('…');
    kept
}

impl Report {
    fn data(&self) -> Vec<Value> {
        self.data
            .iter()
            .take(6)
            .map(|(title, value)| serde_json::json!({"title": title, "type": "NUMBER", "value": value}))
            .collect()
    }

    fn server_body(&self) -> Value {
        serde_json::json!({
            "title": cut(&self.title, MAX_TITLE),
            "details": cut(&self.details, MAX_DETAILS),
            "result": if self.passed { "PASS" } else { "FAIL" },
            "reporter": "bitbucket-catalogd",
            "link": self.link,
            "data": self.data(),
        })
    }

    fn cloud_body(&self) -> Value {
        serde_json::json!({
            "title": cut(&self.title, MAX_TITLE),
            "details": cut(&self.details, MAX_DETAILS),
            "report_type": "TEST",
            "result": if self.passed { "PASSED" } else { "FAILED" },
            "reporter": "bitbucket-catalogd",
            "link": self.link,
            "data": self.data(),
        })
    }
}

impl Annotation {
    fn server_body(&self, key: &str) -> Value {
        serde_json::json!({
            "externalId": format!("{key}-{}", self.external_id),
            "path": self.path,
            "line": self.line,
            "message": cut(&self.message, MAX_DETAILS),
            "severity": "HIGH",
            "type": "BUG",
        })
    }

    fn cloud_body(&self, key: &str) -> Value {
        serde_json::json!({
            "external_id": format!("{key}-{}", self.external_id),
            "annotation_type": "BUG",
            "path": self.path,
            "line": self.line,
            "summary": cut(&self.message, MAX_TITLE),
            "details": cut(&self.message, MAX_DETAILS),
            "severity": "HIGH",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_to_the_insights_limits() {
        let text = "x".repeat(MAX_DETAILS + 10);
        assert_eq!(cut(&text, MAX_DETAILS).chars().count(), MAX_DETAILS);
        assert_eq!(cut("short", MAX_DETAILS), "short");
    }
}
