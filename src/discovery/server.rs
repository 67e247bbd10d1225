//! The Bitbucket Server provider: list projects → filter → list repositories
//! (concurrently) → filter → read catalog files (concurrently) → entities.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt, stream};
use url::Url;

use super::{
    Outcome, PreviousEntities, Problem, ProblemKind, RepositoryCatalog, RunReport, RunResult,
};
use crate::bitbucket::server::{Repository, ServerClient};
use crate::bitbucket::server_urls;
use crate::bitbucket::{Http, IntegrationHttp, RequestStats};
use crate::catalog::entity::ANNOTATION_LOCATION;
use crate::catalog::process::{FetchError, FileSource, Processor, RepoInfo};
use crate::catalog::{Entity, EntityKey};
use crate::config::ServerProviderConfig;
use crate::integrations::BitbucketServerIntegration;

/// One configured `catalog.providers.bitbucketServer` entry, ready to run.
#[derive(Debug, Clone)]
pub struct ServerProvider {
    config: ServerProviderConfig,
    integration: BitbucketServerIntegration,
    http: Arc<IntegrationHttp>,
}

/// What reading one repository's catalog file produced.
struct FileOutcome {
    found: bool,
    entities: Vec<Entity>,
    problems: Vec<Problem>,
    location_files: usize,
    /// The file's URL when its previous entities were kept instead.
    stale: Option<String>,
    /// The read failed: whether the repository has a catalog file is unknown.
    unreadable: bool,
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
        let entities = match self
            .discover(&client, previous, &mut report, &mut repositories)
            .await
        {
            Ok(entities) => Some(entities),
            Err(error) => {
                report.outcome = Outcome::Failed { error };
                None
            }
        };
        report.requests = stats.requests();
        report.retries = stats.retries();
        report.rate_limited = stats.rate_limited();
        report.bytes = stats.bytes();
        report.requests_by_endpoint = stats.by_endpoint();
        report.duration = started.elapsed();
        report.finished_at = super::now_rfc3339();
        let repositories = entities.as_ref().map(|_| repositories);
        RunResult {
            report,
            entities,
            repositories,
        }
    }

    async fn discover(
        &self,
        client: &ServerClient,
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
                async move { (index, self.read_repository(&client, &repo, previous).await) }
            })
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;
        outcomes.sort_by_key(|(index, _)| *index);
        let outcomes = outcomes.into_iter().map(|(_, outcome)| outcome);

        let mut seen = HashSet::<EntityKey>::new();
        let mut entities = Vec::new();
        for (mut repository, outcome) in listed.into_iter().zip(outcomes) {
            repository.catalog = (!outcome.unreadable).then_some(outcome.found);
            repositories.push(repository);
            report.files_found += usize::from(outcome.found);
            report.stale.extend(outcome.stale);
            report.location_files += outcome.location_files;
            report.problems.extend(outcome.problems);
            for entity in outcome.entities {
                if seen.insert(entity.key()) {
                    entities.push(entity);
                } else {
                    let url = entity
                        .metadata
                        .annotations
                        .get(ANNOTATION_LOCATION)
                        .map_or_else(String::new, |l| l.trim_start_matches("url:").to_owned());
                    report.problems.push(
                        Problem::new(
                            url,
                            ProblemKind::Conflict,
                            format!("entity {} is already provided by another file of this provider; this copy is ignored", entity.entity_ref()),
                        )
                        .for_entity(entity.entity_ref()),
                    );
                }
            }
        }
        report.entities = entities.len();
        Ok(entities)
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
        repo: &Repository,
        previous: &PreviousEntities,
    ) -> FileOutcome {
        let location = self.browse_url(repo);
        let processing = &self.config.catalog.processing;
        let raw_url = client.raw_url(
            &repo.project.key,
            &repo.slug,
            &self.config.catalog_path,
            self.config.filters.branch.as_deref(),
        );
        let bytes = match client
            .raw_file(&raw_url, processing.limits.max_file_bytes)
            .await
        {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return FileOutcome {
                    found: false,
                    entities: Vec::new(),
                    problems: Vec::new(),
                    location_files: 0,
                    stale: None,
                    unreadable: false,
                };
            }
            Err(err) => {
                // Unreadable after retries is not "gone": keep what the file
                // gave last time, marked stale, until a read says otherwise.
                let kept = previous.from_file(&location);
                let message = if kept.is_empty() {
                    err.to_string()
                } else {
                    format!(
                        "{err}; keeping its {} previous entities (stale)",
                        kept.len()
                    )
                };
                return FileOutcome {
                    found: !kept.is_empty(),
                    stale: (!kept.is_empty()).then(|| location.clone()),
                    entities: kept,
                    problems: vec![Problem::new(location, ProblemKind::Read, message)],
                    location_files: 0,
                    unreadable: true,
                };
            }
        };
        let repo_url = server_urls::parse_file_url(&location)
            .ok()
            .map(|f| f.repo_url);
        let repo_info = RepoInfo {
            repo_url_annotation: Some(repo_url_annotation(&self.integration.host)),
            default_branch: repo_url.zip(repo.default_branch.as_ref().and_then(|b| b.name())),
        };
        let files = ServerFiles {
            client,
            api_base: &self.integration.api_base_url,
            hosts: allowed_hosts(&self.integration.host, &location),
            max_bytes: processing.limits.max_file_bytes,
        };
        let processor = Processor {
            source: &files,
            rules: &self.config.catalog.rules,
            config: processing,
            repo: &repo_info,
        };
        let tree = processor.process_tree(&location, &bytes).await;
        FileOutcome {
            found: true,
            entities: tree.entities,
            problems: tree.problems,
            location_files: tree.files_read,
            stale: None,
            unreadable: false,
        }
    }
}

/// The annotation naming an entity's repository, keyed by the Bitbucket host
/// (without port: annotation prefixes must be DNS names), e.g.
/// `bitbucket.example.com/repo-url`. Its value is the repository's web URL
/// (`https://host/projects/KEY/repos/slug/browse`), what a webhook payload's
/// `links.self[0].href` carries.
pub fn repo_url_annotation(host: &str) -> String {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    format!("{}/repo-url", name.trim_matches(['[', ']']).to_lowercase())
}

/// Hosts whose URLs are this Bitbucket: the integration's, and the one the
/// listing itself uses for web links (they differ behind some proxies).
fn allowed_hosts(integration_host: &str, location: &str) -> Vec<String> {
    let mut hosts = vec![integration_host.to_lowercase()];
    if let Some(host) = Url::parse(location)
        .ok()
        .as_ref()
        .and_then(server_urls::host_of)
    {
        hosts.push(host.to_lowercase());
    }
    hosts
}

/// Files of one Bitbucket Server, by web URL, with the integration's
/// credentials and limits. Anything not on this Bitbucket is refused
/// without a request.
struct ServerFiles<'a> {
    client: &'a ServerClient,
    api_base: &'a Url,
    hosts: Vec<String>,
    max_bytes: usize,
}

impl FileSource for ServerFiles<'_> {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, FetchError>> {
        Box::pin(async move {
            let parsed = Url::parse(url)
                .map_err(|_| FetchError::Refused(format!("'{url}' is not a URL")))?;
            let host = server_urls::host_of(&parsed)
                .unwrap_or_default()
                .to_lowercase();
            if !self.hosts.contains(&host) {
                return Err(FetchError::Refused(format!(
                    "host '{host}' is not this provider's Bitbucket Server ({}); only targets on it are followed",
                    self.hosts.join(" or ")
                )));
            }
            let file =
                server_urls::parse_file_url(url).map_err(|e| FetchError::Refused(e.to_string()))?;
            let raw = server_urls::raw_api_url(&file, self.api_base);
            self.client
                .raw_file(&raw, self.max_bytes)
                .await
                .map_err(|e| FetchError::Failed(e.to_string()))
        })
    }

    fn resolve(&self, target: &str, base: &str) -> Result<String, String> {
        server_urls::resolve_url(target, base).map_err(|e| e.to_string())
    }

    fn edit_url(&self, url: &str) -> Option<String> {
        Some(server_urls::edit_url(url))
    }

    fn repo_url(&self, url: &str) -> Option<String> {
        server_urls::parse_file_url(url).ok().map(|f| f.repo_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_url_annotation_keys_are_valid_annotation_keys() {
        for (host, key) in [
            ("bitbucket.example.com", "bitbucket.example.com/repo-url"),
            (
                "Bitbucket.Example.com:7990",
                "bitbucket.example.com/repo-url",
            ),
            ("127.0.0.1:8080", "127.0.0.1/repo-url"),
        ] {
            assert_eq!(repo_url_annotation(host), key);
            assert!(crate::catalog::validate::is_valid_label_key(key), "{key}");
        }
    }
}
