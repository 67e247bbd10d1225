//! The Bitbucket Cloud provider: list the workspace's projects → filter →
//! code search per project (one query stops at about 1000 results) →
//! de-duplicate → filter → read each file at the commit the search found.
//! Without code search, list the workspace's repositories and read the file
//! from each main branch instead.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt, stream};

use super::pipeline::{self, FileOutcome};
use super::{PreviousEntities, RunReport, RunResult};
use crate::bitbucket::cloud::{CloudClient, Repository, Search, SearchResult};
use crate::bitbucket::reader::{FileReader, Sites};
use crate::bitbucket::urls::url_host;
use crate::bitbucket::{Http, IntegrationHttp, RequestStats, cloud_urls};
use crate::catalog::Entity;
use crate::catalog::process::RepoInfo;
use crate::config::CloudProviderConfig;
use crate::integrations::BitbucketCloudIntegration;

/// Bitbucket stops one code search at about this many results.
const SEARCH_RESULT_CAP: usize = 1000;

/// One configured `catalog.providers.bitbucketCloud` entry, ready to run.
#[derive(Debug, Clone)]
pub struct CloudProvider {
    config: CloudProviderConfig,
    integration: BitbucketCloudIntegration,
    http: Arc<IntegrationHttp>,
}

/// A catalog file to read.
#[derive(Debug)]
struct Candidate {
    project_key: String,
    slug: String,
    /// The repository's web URL.
    repo_url: String,
    /// The main branch, when the repository has one.
    branch: Option<String>,
    /// What to read the file at: the commit code search found, or the branch.
    read_at: String,
}

impl CloudProvider {
    pub fn new(
        config: CloudProviderConfig,
        integration: BitbucketCloudIntegration,
        http: Arc<IntegrationHttp>,
    ) -> Self {
        Self {
            config,
            integration,
            http,
        }
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn config(&self) -> &CloudProviderConfig {
        &self.config
    }

    /// Runs discovery once. Never panics and never returns half a listing:
    /// if any listing or search request fails, the run fails and returns no
    /// entities.
    pub async fn run(&self, previous: &PreviousEntities) -> RunResult {
        let started = Instant::now();
        let stats = Arc::new(RequestStats::default());
        let client = CloudClient::new(
            Http::new(Arc::clone(&self.http), Arc::clone(&stats)),
            self.integration.api_base_url.clone(),
        );
        let mut report = RunReport::new(self.id());
        let result = self.discover(&client, &stats, previous, &mut report).await;
        pipeline::finish(report, result, &stats, started, None)
    }

    async fn discover(
        &self,
        client: &CloudClient,
        stats: &Arc<RequestStats>,
        previous: &PreviousEntities,
        report: &mut RunReport,
    ) -> Result<Vec<Entity>, String> {
        let workspace = &self.config.workspace;
        let projects = client
            .projects(workspace, self.config.pagelen)
            .await
            .map_err(|e| format!("listing the projects of workspace {workspace} failed: {e}"))?;
        report.projects_seen = projects.len();
        let project_filter = self.config.filters.project_key.as_ref();
        let keys: Vec<String> = projects
            .into_iter()
            .map(|p| p.key)
            .filter(|key| project_filter.is_none_or(|re| re.is_match(key)))
            .collect();
        let mut candidates = match self.search(client, &keys, report).await? {
            Some(found) => found,
            None => self.list(client, report).await?,
        };
        // Deterministic order, so a contested entity ref always goes to the same file.
        candidates.sort_by(|a, b| (&a.project_key, &a.slug).cmp(&(&b.project_key, &b.slug)));
        report.repos_matched = candidates.len();
        // Unordered, so a read waiting out a retry does not stall the others.
        let mut outcomes: Vec<(usize, FileOutcome)> =
            stream::iter(candidates.into_iter().enumerate())
                .map(|(index, candidate)| async move {
                    (index, self.read(client, stats, candidate, previous).await)
                })
                .buffer_unordered(self.config.concurrency)
                .collect()
                .await;
        outcomes.sort_by_key(|(index, _)| *index);
        Ok(pipeline::collect(
            outcomes.into_iter().map(|(_, outcome)| outcome).collect(),
            report,
        ))
    }

    /// `"<file name>" path:/<catalogPath> project:<KEY>`, as Backstage asks.
    fn query(&self, project_key: &str) -> String {
        let path = &self.config.catalog_path;
        let file_name = path.rsplit('/').next().unwrap_or(path);
        format!("\"{file_name}\" path:/{path} project:{project_key}")
    }

    /// Code search over the kept projects; `None` when code search is not
    /// available (the first query tells, so the fallback costs one request).
    async fn search(
        &self,
        client: &CloudClient,
        keys: &[String],
        report: &mut RunReport,
    ) -> Result<Option<Vec<Candidate>>, String> {
        let Some((first, rest)) = keys.split_first() else {
            return Ok(Some(Vec::new()));
        };
        let first = self.search_project(client, first).await?;
        if let (_, Search::Unavailable(reason)) = &first {
            report.notices.push(format!(
                "{reason}; fell back to listing the workspace's repositories and reading /{} from each main branch (one request per repository)",
                self.config.catalog_path
            ));
            return Ok(None);
        }
        let mut searches = vec![first];
        searches.extend(
            // Owned keys: a borrowed stream item trips the compiler's Send check.
            stream::iter(rest.to_vec())
                .map(|key| async move { self.search_project(client, &key).await })
                .buffered(self.config.concurrency)
                .try_collect::<Vec<_>>()
                .await?,
        );
        let mut seen = HashSet::new();
        let mut candidates = Vec::new();
        for (key, search) in searches {
            let results = match search {
                Search::Results(results) => results,
                Search::Unavailable(reason) => {
                    return Err(format!(
                        "code search in project {key} stopped being available mid-run: {reason}"
                    ));
                }
            };
            // Distinct hits, not results: repeated pages inflate the latter.
            let mut hits = 0;
            for result in results {
                if let Some(candidate) = self.candidate(&key, result, &mut seen) {
                    hits += 1;
                    if self.slug_kept(&candidate.slug) {
                        candidates.push(candidate);
                    }
                }
            }
            report.repos_seen += hits;
            if hits >= SEARCH_RESULT_CAP {
                report.notices.push(format!(
                    "code search for project {key} found {hits} catalog files; Bitbucket stops one query at about {SEARCH_RESULT_CAP} results, so repositories may be missing"
                ));
            }
        }
        Ok(Some(candidates))
    }

    async fn search_project(
        &self,
        client: &CloudClient,
        key: &str,
    ) -> Result<(String, Search), String> {
        client
            .search_code(
                &self.config.workspace,
                &self.query(key),
                self.config.pagelen,
            )
            .await
            .map(|search| (key.to_owned(), search))
            .map_err(|e| format!("code search in project {key} failed: {e}"))
    }

    /// A search hit worth reading: it matched the path, is exactly the
    /// catalog file (`path:` also matches inside directories), and was not
    /// seen on an earlier page (pages can repeat results, BCLOUD-23644).
    fn candidate(
        &self,
        project_key: &str,
        result: SearchResult,
        seen: &mut HashSet<(String, String)>,
    ) -> Option<Candidate> {
        if result.path_matches.is_empty() {
            return None;
        }
        let file = result.file?;
        let commit = file.commit?;
        if file.path.trim_start_matches('/') != self.config.catalog_path {
            return None;
        }
        let repo = commit.repository;
        if !seen.insert((repo.slug.to_lowercase(), file.path)) {
            return None;
        }
        let project_key = repo.project_key().unwrap_or(project_key).to_owned();
        Some(Candidate {
            repo_url: self.repo_url(&repo),
            branch: repo.main_branch().map(str::to_owned),
            read_at: commit.hash,
            project_key,
            slug: repo.slug,
        })
    }

    /// Without code search: every repository of the workspace, filtered.
    async fn list(
        &self,
        client: &CloudClient,
        report: &mut RunReport,
    ) -> Result<Vec<Candidate>, String> {
        let workspace = &self.config.workspace;
        let repos = client
            .repositories(workspace, self.config.pagelen)
            .await
            .map_err(|e| {
                format!("listing the repositories of workspace {workspace} failed: {e}")
            })?;
        report.repos_seen = repos.len();
        let project_filter = self.config.filters.project_key.as_ref();
        Ok(repos
            .into_iter()
            .filter(|repo| {
                project_filter.is_none_or(|re| repo.project_key().is_some_and(|k| re.is_match(k)))
                    && self.slug_kept(&repo.slug)
            })
            // An empty repository has no main branch, so no file.
            .filter_map(|repo| {
                let branch = repo.main_branch()?.to_owned();
                Some(Candidate {
                    project_key: repo.project_key().unwrap_or_default().to_owned(),
                    repo_url: self.repo_url(&repo),
                    read_at: branch.clone(),
                    branch: Some(branch),
                    slug: repo.slug,
                })
            })
            .collect())
    }

    fn slug_kept(&self, slug: &str) -> bool {
        self.config
            .filters
            .repo_slug
            .as_ref()
            .is_none_or(|re| re.is_match(slug))
    }

    /// The repository's web URL: Bitbucket's `links.html.href`, else built
    /// from the integration host.
    fn repo_url(&self, repo: &Repository) -> String {
        repo.html_url().map_or_else(
            || {
                format!(
                    "https://{}/{}/{}",
                    self.integration.host, self.config.workspace, repo.slug
                )
            },
            str::to_owned,
        )
    }

    async fn read(
        &self,
        client: &CloudClient,
        stats: &Arc<RequestStats>,
        candidate: Candidate,
        previous: &PreviousEntities,
    ) -> FileOutcome {
        let settings = &self.config.catalog;
        let max_bytes = settings.processing.limits.max_file_bytes;
        let path = &self.config.catalog_path;
        // The location names the branch (stable across commits); the read
        // uses the commit the search indexed.
        let git_ref = candidate.branch.as_deref().unwrap_or(&candidate.read_at);
        let Some(location) = cloud_urls::file_url(&candidate.repo_url, git_ref, path) else {
            return FileOutcome {
                problems: vec![super::Problem::new(
                    candidate.repo_url.clone(),
                    super::ProblemKind::Read,
                    format!(
                        "repository {} has no usable web URL ('{}'); its catalog file is not read",
                        candidate.slug, candidate.repo_url
                    ),
                )],
                ..FileOutcome::default()
            };
        };
        let src = client.src_url(
            &self.config.workspace,
            &candidate.slug,
            &candidate.read_at,
            path,
        );
        let fetched = client.file(&src, max_bytes).await;
        let repo_info = RepoInfo {
            default_branch: cloud_urls::parse_file_url(&location)
                .ok()
                .map(|f| f.repo_url)
                .zip(candidate.branch.clone()),
        };
        let aliases: Vec<String> = url_host(&location).into_iter().collect();
        let files = FileReader::new(
            Sites::cloud(&self.integration, &self.http, &aliases),
            stats,
            max_bytes,
        );
        pipeline::process_file(fetched, &location, &files, settings, &repo_info, previous).await
    }
}
