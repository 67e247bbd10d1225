//! The Bitbucket Server provider: list projects → filter → list repositories
//! (concurrently) → filter → read catalog files (concurrently) → entities.

use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt, stream};
use url::Url;

use super::pipeline::{self, FileOutcome};
use super::{PreviousEntities, RepositoryCatalog, RunReport, RunResult};
use crate::bitbucket::reader::{FileReader, Sites};
use crate::bitbucket::server::{Repository, ServerClient};
use crate::bitbucket::server_urls;
use crate::bitbucket::urls::url_host;
use crate::bitbucket::{Http, IntegrationHttp, RequestStats};
use crate::catalog::Entity;
use crate::catalog::process::RepoInfo;
use crate::config::ServerProviderConfig;
use crate::integrations::BitbucketServerIntegration;

/// One configured `catalog.providers.bitbucketServer` entry, ready to run.
#[derive(Debug, Clone)]
pub struct ServerProvider {
    config: ServerProviderConfig,
    integration: BitbucketServerIntegration,
    http: Arc<IntegrationHttp>,
}

impl ServerProvider {
    pub fn new(
        config: ServerProviderConfig,
        integration: BitbucketServerIntegration,
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

    pub fn config(&self) -> &ServerProviderConfig {
        &self.config
    }

    /// Runs discovery once. Never panics and never returns half a listing:
    /// if any listing request fails, the run fails and returns no entities.
    pub async fn run(&self, previous: &PreviousEntities) -> RunResult {
        let started = Instant::now();
        let stats = Arc::new(RequestStats::default());
        let client = ServerClient::new(
            Http::new(Arc::clone(&self.http), Arc::clone(&stats)),
            self.integration.api_base_url.clone(),
        );
        let mut report = RunReport::new(self.id());
        let mut repositories = Vec::new();
        let result = self
            .discover(&client, &stats, previous, &mut report, &mut repositories)
            .await;
        pipeline::finish(report, result, &stats, started, Some(repositories))
    }

    async fn discover(
        &self,
        client: &ServerClient,
        stats: &Arc<RequestStats>,
        previous: &PreviousEntities,
        report: &mut RunReport,
        repositories: &mut Vec<RepositoryCatalog>,
    ) -> Result<Vec<Entity>, String> {
        let filters = &self.config.filters;
        let projects = client
            .projects()
            .await
            .map_err(|e| format!("listing projects failed: {e}"))?;
        report.projects_seen = projects.len();
        let keys: Vec<String> = projects
            .into_iter()
            .map(|p| p.key)
            .filter(|key| {
                filters
                    .project_key
                    .as_ref()
                    .is_none_or(|re| re.is_match(key))
            })
            .collect();

        let listings: Vec<Vec<Repository>> = stream::iter(keys)
            .map(|key| {
                let client = client.clone();
                async move {
                    client
                        .repositories(&key)
                        .await
                        .map_err(|e| format!("listing repositories of project {key} failed: {e}"))
                }
            })
            .buffer_unordered(self.config.concurrency)
            .try_collect()
            .await?;
        let mut repos: Vec<Repository> = listings.into_iter().flatten().collect();
        report.repos_seen = repos.len();
        repos.retain(|repo| {
            filters
                .repo_slug
                .as_ref()
                .is_none_or(|re| re.is_match(&repo.slug))
                && !(filters.skip_archived_repos && repo.archived)
        });
        // Deterministic order, so a contested entity ref always goes to the same file.
        repos.sort_by(|a, b| (&a.project.key, &a.slug).cmp(&(&b.project.key, &b.slug)));
        report.repos_matched = repos.len();

        let listed: Vec<RepositoryCatalog> = repos
            .iter()
            .map(|repo| RepositoryCatalog {
                project: repo.project.key.clone(),
                slug: repo.slug.clone(),
                url: self.repo_web_url(repo),
                catalog: None,
            })
            .collect();
        // Unordered: a read waiting out a retry must not hold up the others
        // (ordered buffering would stall new reads behind it).
        let mut outcomes: Vec<(usize, FileOutcome)> = stream::iter(repos.into_iter().enumerate())
            .map(|(index, repo)| {
                let client = client.clone();
                async move {
                    (
                        index,
                        self.read_repository(&client, stats, &repo, previous).await,
                    )
                }
            })
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;
        outcomes.sort_by_key(|(index, _)| *index);
        let outcomes: Vec<FileOutcome> = outcomes.into_iter().map(|(_, outcome)| outcome).collect();
        repositories.extend(
            listed
                .into_iter()
                .zip(&outcomes)
                .map(|(mut repository, outcome)| {
                    repository.catalog = (!outcome.unreadable).then_some(outcome.found);
                    repository
                }),
        );
        Ok(pipeline::collect(outcomes, report))
    }

    /// The repository's web URL (`…/projects/KEY/repos/slug/browse`).
    fn repo_web_url(&self, repo: &Repository) -> String {
        match repo.browse_url() {
            Some(href) if href.ends_with("/browse") => href.to_owned(),
            _ => {
                let mut url = Url::parse(&format!("https://{}/", self.integration.host))
                    .unwrap_or_else(|_| self.integration.api_base_url.clone());
                if let Ok(mut path) = url.path_segments_mut() {
                    path.clear().extend([
                        "projects",
                        &repo.project.key,
                        "repos",
                        &repo.slug,
                        "browse",
                    ]);
                }
                url.to_string()
            }
        }
    }

    /// The web URL of the catalog file, which becomes the entity's location.
    fn browse_url(&self, repo: &Repository) -> String {
        let url = format!("{}/{}", self.repo_web_url(repo), self.config.catalog_path);
        match &self.config.filters.branch {
            Some(branch) => {
                let query: String = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("at", branch)
                    .finish();
                format!("{url}?{query}")
            }
            None => url,
        }
    }

    async fn read_repository(
        &self,
        client: &ServerClient,
        stats: &Arc<RequestStats>,
        repo: &Repository,
        previous: &PreviousEntities,
    ) -> FileOutcome {
        let location = self.browse_url(repo);
        let settings = &self.config.catalog;
        let max_bytes = settings.processing.limits.max_file_bytes;
        let raw_url = client.raw_url(
            &repo.project.key,
            &repo.slug,
            &self.config.catalog_path,
            self.config.filters.branch.as_deref(),
        );
        let fetched = client.raw_file(&raw_url, max_bytes).await;
        let repo_info = RepoInfo {
            default_branch: server_urls::parse_file_url(&location)
                .ok()
                .map(|f| f.repo_url)
                .zip(repo.default_branch.as_ref().and_then(|b| b.name())),
        };
        // Location targets may use the host the listing's links use, too
        // (they differ behind some proxies); nothing else is followed.
        let aliases: Vec<String> = url_host(&location).into_iter().collect();
        let files = FileReader::new(
            Sites::server(&self.integration, &self.http, &aliases),
            stats,
            max_bytes,
        );
        pipeline::process_file(fetched, &location, &files, settings, &repo_info, previous).await
    }
}
