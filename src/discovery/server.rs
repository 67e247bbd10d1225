//! The Bitbucket Server flavour of the provider pipeline: list projects →
//! filter → list repositories (concurrently) → filter; each repository's
//! catalog file is read from `/raw/`. Server listings carry no content
//! version, so every file is read; an unchanged one is not processed again.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt, stream};
use regex::Regex;
use url::Url;

use super::fan_out;
use super::hooks;
use super::pipeline;
use super::plan::Listed;
use super::provider::{FileList, Flavour, Listing, ListingError, Parts, Unlisted};
use super::{CatalogFile, RepoRef, RepositoryRecord};
use crate::bitbucket::file_url::FileUrl;
use crate::bitbucket::reader::{FileReader, Sites};
use crate::bitbucket::refusal::Excluded;
use crate::bitbucket::server::{BranchHead, ChangedPath, Repository, ServerClient};
use crate::bitbucket::urls::url_host;
use crate::bitbucket::{BitbucketError, RequestStats};
use crate::catalog::process::{DefaultBranch, RepoInfo};
use crate::config::{ProviderSettings, ServerProviderConfig};
use crate::integrations::{BitbucketServerIntegration, Product};

/// What is particular to `catalog.providers.bitbucketServer`.
pub(crate) type ServerFlavour = Parts<ServerProviderConfig, BitbucketServerIntegration>;

impl Flavour for ServerFlavour {
    type Client = ServerClient;

    fn id(&self) -> &str {
        &self.config.id
    }

    fn shared(&self) -> &ProviderSettings {
        &self.config.shared
    }

    fn fan_out_width(&self) -> usize {
        fan_out::width(&self.http.pace(), self.config.shared.concurrency)
    }

    fn target(&self) -> &str {
        &self.config.host
    }

    fn client(&self, stats: &Arc<RequestStats>) -> ServerClient {
        ServerClient::new(
            self.counted_http(stats),
            self.integration.api_base_url.clone(),
        )
    }

    async fn list(&self, client: &ServerClient, _fingerprint: &str) -> Listing {
        let mut listing = Listing::default();
        listing.repositories = self.repositories(client, &mut listing).await;
        listing
    }

    fn host(&self) -> &str {
        &self.integration.host
    }

    fn pull_request_api(
        &self,
        stats: &Arc<RequestStats>,
    ) -> crate::bitbucket::pull_requests::PullRequestApi {
        crate::bitbucket::pull_requests::PullRequestApi::new(
            self.counted_http(stats),
            Product::Server,
            self.integration.api_base_url.clone(),
        )
    }

    fn pinned_branch(&self) -> Option<&str> {
        self.config.filters.branch.as_deref()
    }

    /// The filters applied to a repository an event names.
    fn listed_one(
        &self,
        client: &ServerClient,
        repo: &RepoRef,
        _commit: Option<&str>,
        _fingerprint: &str,
    ) -> Result<Listed, Unlisted> {
        let project = repo
            .project
            .as_deref()
            .ok_or_else(|| Unlisted::LeftOut("the event names no project".into()))?;
        self.filter()
            .repository(project, &repo.slug, repo.archived)
            .map_err(|why| Unlisted::LeftOut(why.to_string()))?;
        Ok(self.listed(
            client,
            project,
            &repo.slug,
            repo.id.clone(),
            repo.web_url.as_deref(),
            repo.main_branch.clone(),
        ))
    }

    async fn default_branch(
        &self,
        client: &ServerClient,
        repo: &RepoRef,
    ) -> Result<Option<String>, BitbucketError> {
        let project = repo.project.as_deref().unwrap_or_default();
        client.default_branch(project, &repo.slug).await
    }

    async fn list_files(
        &self,
        client: &ServerClient,
        record: &RepositoryRecord,
        at: Option<&str>,
    ) -> Result<FileList, BitbucketError> {
        let at = at.or(self.config.filters.branch.as_deref());
        match client.files(&record.project, &record.slug, at).await {
            Ok(paths) => Ok(FileList {
                paths,
                commit: None,
            }),
            // An empty repository (or a missing branch) has no files.
            Err(err) if err.status() == Some(reqwest::StatusCode::NOT_FOUND) => {
                Ok(FileList::default())
            }
            Err(err) => Err(err),
        }
    }

    async fn head(
        &self,
        client: &ServerClient,
        record: &RepositoryRecord,
    ) -> Result<Option<BranchHead>, BitbucketError> {
        // A pinned branch is not the default one the check names.
        if self.config.filters.branch.is_some() {
            return Ok(None);
        }
        client.branch_head(&record.project, &record.slug).await
    }

    async fn changed_paths(
        &self,
        client: &ServerClient,
        record: &RepositoryRecord,
        since: &str,
        until: &str,
    ) -> Result<Option<Vec<ChangedPath>>, BitbucketError> {
        client
            .changes(&record.project, &record.slug, since, until)
            .await
    }

    fn file_urls(
        &self,
        client: &ServerClient,
        record: &RepositoryRecord,
        commit: Option<&str>,
        path: &str,
    ) -> Option<(Url, String)> {
        let at = commit.or(self.config.filters.branch.as_deref());
        let url = client.raw_url(&record.project, &record.slug, path, at);
        Some((url, self.browse_url(&record.url, path)))
    }

    async fn fetch(
        &self,
        client: &ServerClient,
        url: &Url,
        max_bytes: usize,
    ) -> Result<Option<Vec<u8>>, BitbucketError> {
        client.raw_file(url, max_bytes).await
    }

    fn files(&self, stats: &Arc<RequestStats>, location: &str) -> FileReader {
        // Location targets may use the host the listing's links use, too
        // (they differ behind some proxies); nothing else is followed.
        let aliases: Vec<String> = url_host(location).into_iter().collect();
        let filter = self.filter();
        let scope = pipeline::target_scope(
            location,
            self.config.shared.target_scope,
            format!("catalog.providers.bitbucketServer.{}", self.config.id),
            Product::Server,
            move |project, slug| {
                filter
                    .repository(project, slug, false)
                    .map_err(|_| Excluded::Filters)
            },
        );
        FileReader::new(
            Sites::server(&self.integration, &self.http, &aliases),
            stats,
            self.config.shared.catalog.processing.limits.max_file_bytes,
        )
        .within(scope)
    }
}

/// Why the filters leave a repository out.
#[derive(Debug, thiserror::Error)]
enum LeftOut {
    #[error("project {0} does not match filters.projectKey")]
    Project(String),
    #[error("repository {0} does not match filters.repoSlug")]
    Slug(String),
    #[error("repository {0} is archived (filters.skipArchivedRepos)")]
    Archived(String),
}

/// The filters that choose repositories (`projectKey`, `repoSlug`,
/// `skipArchivedRepos`): the one check for listings, events and Location
/// targets alike.
struct RepoFilter {
    project_key: Option<Regex>,
    repo_slug: Option<Regex>,
    skip_archived: bool,
}

impl RepoFilter {
    /// `projectKey`, checked alone before a project's repositories are listed.
    fn project(&self, project: &str) -> Result<(), LeftOut> {
        match &self.project_key {
            Some(re) if !re.is_match(project) => Err(LeftOut::Project(project.to_owned())),
            _ => Ok(()),
        }
    }

    /// Every filter; `Err` says why the repository is left out.
    fn repository(&self, project: &str, slug: &str, archived: bool) -> Result<(), LeftOut> {
        self.project(project)?;
        if self.repo_slug.as_ref().is_some_and(|re| !re.is_match(slug)) {
            return Err(LeftOut::Slug(slug.to_owned()));
        }
        if self.skip_archived && archived {
            return Err(LeftOut::Archived(slug.to_owned()));
        }
        Ok(())
    }
}

impl ServerFlavour {
    /// Projects → `projectKey` → each project's repositories (concurrently)
    /// → `repoSlug`, `skipArchivedRepos`. Any failed page fails the listing.
    async fn repositories(
        &self,
        client: &ServerClient,
        listing: &mut Listing,
    ) -> Result<Vec<Listed>, ListingError> {
        let projects = client.projects().await.map_err(ListingError::Projects)?;
        listing.projects_seen = projects.len();
        let filter = self.filter();
        let keys: Vec<String> = projects
            .into_iter()
            .map(|p| p.key)
            .filter(|key| filter.project(key).is_ok())
            .collect();
        let listings: Vec<Vec<Repository>> = stream::iter(keys)
            .map(|key| {
                let client = client.clone();
                async move {
                    client
                        .repositories(&key)
                        .await
                        .map_err(|source| ListingError::ProjectRepositories { key, source })
                }
            })
            .buffer_unordered(self.fan_out_width())
            .try_collect()
            .await?;
        let mut repos: Vec<Repository> = listings.into_iter().flatten().collect();
        listing.repos_seen = repos.len();
        repos.retain(|repo| {
            filter
                .repository(&repo.project.key, &repo.slug, repo.archived)
                .is_ok()
        });
        repos.sort_by(|a, b| (&a.project.key, &a.slug).cmp(&(&b.project.key, &b.slug)));
        if let (Some(webhooks), Some(secret)) = (
            &self.config.shared.webhooks,
            &self.integration.webhooks.secret,
        ) {
            let scopes: Vec<(String, String)> = repos
                .iter()
                .map(|r| (r.project.key.clone(), r.slug.clone()))
                .collect();
            hooks::keep_server(
                &self.hooks,
                client,
                &webhooks.target,
                secret,
                self.config.shared.pull_request_checks,
                &scopes,
                &mut listing.notices,
            )
            .await;
        }
        Ok(repos
            .into_iter()
            .map(|repo| {
                let default_branch = repo.default_branch.as_ref().and_then(|b| b.name());
                let id = repo.id.map(|id| id.to_string());
                self.listed(
                    client,
                    &repo.project.key,
                    &repo.slug,
                    id,
                    repo.browse_url(),
                    default_branch,
                )
            })
            .collect())
    }

    fn filter(&self) -> RepoFilter {
        let filters = &self.config.filters;
        RepoFilter {
            project_key: filters.project_key.clone(),
            repo_slug: filters.repo_slug.clone(),
            skip_archived: filters.skip_archived_repos,
        }
    }

    /// A repository as the pipeline reads it, from what a listing or an
    /// event says of it (`browse`: its `links.self` href).
    fn listed(
        &self,
        client: &ServerClient,
        project: &str,
        slug: &str,
        id: Option<String>,
        browse: Option<&str>,
        default_branch: Option<String>,
    ) -> Listed {
        let repo_url = self.repo_web_url(project, slug, browse);
        let catalog_url = self.browse_url(&repo_url, &self.config.shared.catalog_path);
        let repo_info = RepoInfo {
            default_branch: FileUrl::parse(&catalog_url, Product::Server)
                .ok()
                .zip(default_branch.clone())
                .map(|(file, branch)| DefaultBranch {
                    repo: file.repo_url().to_owned(),
                    branch,
                }),
        };
        let branch = self.config.filters.branch.clone().or(default_branch);
        Listed {
            file_url: client.raw_url(
                project,
                slug,
                &self.config.shared.catalog_path,
                self.config.filters.branch.as_deref(),
            ),
            // Server listings say nothing about file content.
            change_token: None,
            repo_info,
            record: RepositoryRecord {
                project: project.to_owned(),
                slug: slug.to_owned(),
                url: repo_url,
                id,
                catalog_url,
                branch,
                branch_checked_at: None,
                catalog: CatalogFile::Unknown,
                change_token: None,
                read_at: None,
                entities: 0,
                problems: Vec::new(),
                generated: None,
            },
        }
    }

    /// The repository's web URL (`…/projects/KEY/repos/slug/browse`).
    fn repo_web_url(&self, project: &str, slug: &str, browse: Option<&str>) -> String {
        match browse {
            Some(href) if href.ends_with("/browse") => href.to_owned(),
            _ => {
                let mut url = Url::parse(&format!("https://{}/", self.integration.host))
                    .unwrap_or_else(|_| self.integration.api_base_url.clone());
                if let Ok(mut path) = url.path_segments_mut() {
                    path.clear()
                        .extend(["projects", project, "repos", slug, "browse"]);
                }
                url.to_string()
            }
        }
    }

    /// The web URL of the file at `path` (the catalog file, or with a glob
    /// the pattern: the repository's unit), which becomes the entities'
    /// location.
    fn browse_url(&self, repo_url: &str, path: &str) -> String {
        let url = format!("{repo_url}/{path}");
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
}
