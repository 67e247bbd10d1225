//! The Bitbucket Server provider: list projects → filter → list repositories
//! (concurrently) → filter → read catalog files (concurrently) → entities.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt, stream};
use url::Url;

use super::{Outcome, Problem, ProblemKind, RunReport, RunResult};
use crate::bitbucket::server::{Repository, ServerClient};
use crate::bitbucket::{Http, RequestStats};
use crate::catalog::entity::{ANNOTATION_LOCATION, ANNOTATION_ORIGIN_LOCATION};
use crate::catalog::parse::{FileError, ParseLimits, parse_catalog_file};
use crate::catalog::{Entity, EntityKey};
use crate::config::ServerProviderConfig;
use crate::integrations::BitbucketServerIntegration;

/// One configured `catalog.providers.bitbucketServer` entry, ready to run.
#[derive(Debug, Clone)]
pub struct ServerProvider {
    config: ServerProviderConfig,
    integration: BitbucketServerIntegration,
    http_client: reqwest::Client,
    limits: ParseLimits,
}

/// What reading one repository's catalog file produced.
struct FileOutcome {
    found: bool,
    entities: Vec<Entity>,
    problems: Vec<Problem>,
}

impl ServerProvider {
    pub fn new(
        config: ServerProviderConfig,
        integration: BitbucketServerIntegration,
        http_client: reqwest::Client,
    ) -> Self {
        Self {
            config,
            integration,
            http_client,
            limits: ParseLimits::default(),
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
    pub async fn run(&self) -> RunResult {
        let started = Instant::now();
        let stats = Arc::new(RequestStats::default());
        let client = ServerClient::new(
            Http::new(
                self.http_client.clone(),
                self.integration.auth.clone(),
                Arc::clone(&stats),
            ),
            self.integration.api_base_url.clone(),
        );
        let mut report = RunReport::new(self.id());
        let entities = match self.discover(&client, &mut report).await {
            Ok(entities) => Some(entities),
            Err(error) => {
                report.outcome = Outcome::Failed { error };
                None
            }
        };
        report.requests = stats.requests();
        report.duration = started.elapsed();
        report.finished_at = super::now_rfc3339();
        RunResult { report, entities }
    }

    async fn discover(
        &self,
        client: &ServerClient,
        report: &mut RunReport,
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

        let outcomes: Vec<FileOutcome> = stream::iter(repos)
            .map(|repo| {
                let client = client.clone();
                async move { self.read_repository(&client, &repo).await }
            })
            .buffered(self.config.concurrency)
            .collect()
            .await;

        let mut seen = HashSet::<EntityKey>::new();
        let mut entities = Vec::new();
        for outcome in outcomes {
            report.files_found += usize::from(outcome.found);
            report.problems.extend(outcome.problems);
            for entity in outcome.entities {
                if seen.insert(entity.key()) {
                    entities.push(entity);
                } else {
                    report.problems.push(Problem {
                        url: entity.metadata.annotations.get(ANNOTATION_LOCATION).map_or_else(String::new, |l| l.trim_start_matches("url:").to_owned()),
                        kind: ProblemKind::Conflict,
                        message: format!("entity {} is already provided by another repository of this provider; this copy is ignored", entity.entity_ref()),
                    });
                }
            }
        }
        report.entities = entities.len();
        Ok(entities)
    }

    /// The web URL of the catalog file, which becomes the entity's location.
    fn browse_url(&self, repo: &Repository) -> String {
        let base = match repo.browse_url() {
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
        };
        let url = format!("{base}/{}", self.config.catalog_path);
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

    async fn read_repository(&self, client: &ServerClient, repo: &Repository) -> FileOutcome {
        let location = self.browse_url(repo);
        let problem = |kind, message: String| Problem {
            url: location.clone(),
            kind,
            message,
        };
        let raw_url = client.raw_url(
            &repo.project.key,
            &repo.slug,
            &self.config.catalog_path,
            self.config.filters.branch.as_deref(),
        );
        let bytes = match client.raw_file(&raw_url, self.limits.max_file_bytes).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return FileOutcome {
                    found: false,
                    entities: Vec::new(),
                    problems: Vec::new(),
                };
            }
            Err(err) => {
                return FileOutcome {
                    found: false,
                    entities: Vec::new(),
                    problems: vec![problem(ProblemKind::Read, err.to_string())],
                };
            }
        };
        let parsed = match parse_catalog_file(&bytes, &self.limits) {
            Ok(parsed) => parsed,
            Err(err) => {
                let message = match err {
                    FileError::TooLarge { limit, .. } => {
                        format!("file is larger than the {limit}-byte limit")
                    }
                    other => other.to_string(),
                };
                return FileOutcome {
                    found: true,
                    entities: Vec::new(),
                    problems: vec![problem(ProblemKind::Parse, message)],
                };
            }
        };
        let problems = parsed
            .errors
            .into_iter()
            .map(|e| problem(ProblemKind::Entity, e.to_string()))
            .collect();
        let target = format!("url:{location}");
        let entities = parsed
            .entities
            .into_iter()
            .map(|(_, mut entity)| {
                let annotations = &mut entity.metadata.annotations;
                annotations.insert(ANNOTATION_LOCATION.to_owned(), target.clone());
                annotations.insert(ANNOTATION_ORIGIN_LOCATION.to_owned(), target.clone());
                entity
            })
            .collect();
        FileOutcome {
            found: true,
            entities,
            problems,
        }
    }
}
