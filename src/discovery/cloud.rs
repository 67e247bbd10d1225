//! The Bitbucket Cloud provider: list the workspace's projects → filter →
//! code search per project (one query stops at 1000 results; a project
//! past that is completed by searching its other repositories one by one)
//! → de-duplicate → filter → read each file at the commit the search found.
//! The commit is the file's change token: a file at the same commit is not
//! read again. Without code search, list the workspace's repositories and
//! read the file from each main branch instead (no token: read every run).

use std::collections::HashSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt, stream};
use url::Url;

use super::fan_out;
use super::hooks;
use super::pipeline;
use super::plan::Listed;
use super::provider::{FileList, Flavour, Listing, ListingError, Parts, Unlisted};
use super::{CatalogFile, Problem, ProblemKind, RepoRef, RepositoryRecord};
use crate::bitbucket::cloud::{CloudClient, Repository, Search, SearchResult};
use crate::bitbucket::file_url::FileUrl;
use crate::bitbucket::reader::{FileReader, Sites};
use crate::bitbucket::refusal::Excluded;
use crate::bitbucket::server::{BranchHead, ChangedPath};
use crate::bitbucket::urls::url_host;
use crate::bitbucket::{BitbucketError, RequestStats, cloud_urls};
use crate::catalog::process::{DefaultBranch, RepoInfo};
use crate::config::{CloudProviderConfig, ProviderSettings};
use crate::integrations::{BitbucketCloudIntegration, Product};

/// How deep a glob provider lists a repository's directories.
pub(super) const SRC_MAX_DEPTH: u32 = 16;

/// Bitbucket stops one code search at about this many results.
const SEARCH_RESULT_CAP: usize = 1000;

/// What is particular to `catalog.providers.bitbucketCloud`.
pub(crate) type CloudFlavour = Parts<CloudProviderConfig, BitbucketCloudIntegration>;

/// What one code search query came to.
#[derive(Debug)]
enum Found {
    /// Every match.
    Complete(Vec<SearchResult>),
    /// Stopped at the cap: what came before it, not a listing.
    Capped(Vec<SearchResult>),
    /// Refused on its first page; the reason.
    Unavailable(String),
}

/// A catalog file to read.
#[derive(Debug)]
struct Candidate {
    project_key: String,
    slug: String,
    uuid: Option<String>,
    /// The repository's web URL.
    repo_url: String,
    /// The main branch, when the repository has one.
    branch: Option<String>,
    /// What to read the file at: the commit code search found, or the branch.
    read_at: String,
    /// Code search found the file at this commit.
    commit: Option<String>,
}

impl Flavour for CloudFlavour {
    type Client = CloudClient;

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
        &self.config.workspace
    }

    fn client(&self, stats: &Arc<RequestStats>) -> CloudClient {
        CloudClient::new(
            self.counted_http(stats),
            self.integration.api_base_url.clone(),
        )
    }

    async fn list(&self, client: &CloudClient, fingerprint: &str) -> Listing {
        let mut listing = Listing::default();
        listing.repositories = self.repositories(client, fingerprint, &mut listing).await;
        listing
    }

    async fn list_files(
        &self,
        client: &CloudClient,
        record: &RepositoryRecord,
        at: Option<&str>,
    ) -> Result<FileList, BitbucketError> {
        // An empty repository has no main branch, so no files.
        let Some(branch) = record.branch.as_deref() else {
            return Ok(FileList::default());
        };
        // At the commit the head check found: a run never mixes two states.
        let entries = client
            .src_listing(
                &self.config.workspace,
                &record.slug,
                at.unwrap_or(branch),
                SRC_MAX_DEPTH,
                self.config.pagelen,
            )
            .await?
            .unwrap_or_default();
        let commit = entries
            .iter()
            .find_map(|e| e.commit.as_ref().map(|c| c.hash.clone()));
        Ok(FileList {
            paths: entries
                .into_iter()
                .filter(|e| e.kind == "commit_file")
                .map(|e| e.path)
                .collect(),
            commit,
        })
    }

    /// The main branch's latest commit (`refs/branches/{name}`): an
    /// unchanged repository costs this one request, no listing, no read.
    async fn head(
        &self,
        client: &CloudClient,
        record: &RepositoryRecord,
    ) -> Result<Option<BranchHead>, BitbucketError> {
        let Some(branch) = record.branch.as_deref() else {
            return Ok(None);
        };
        let commit = client
            .branch_commit(&self.config.workspace, &record.slug, branch)
            .await?;
        Ok(commit.map(|commit| BranchHead {
            branch: branch.to_owned(),
            commit,
        }))
    }

    async fn changed_paths(
        &self,
        client: &CloudClient,
        record: &RepositoryRecord,
        since: &str,
        until: &str,
    ) -> Result<Option<Vec<ChangedPath>>, BitbucketError> {
        client
            .diffstat(&self.config.workspace, &record.slug, since, until)
            .await
    }

    fn file_urls(
        &self,
        client: &CloudClient,
        record: &RepositoryRecord,
        commit: Option<&str>,
        path: &str,
    ) -> Option<(Url, String)> {
        let git_ref = commit.or(record.branch.as_deref())?;
        let url = client.src_url(&self.config.workspace, &record.slug, git_ref, path);
        let location = cloud_urls::file_url(
            &record.url,
            record.branch.as_deref().unwrap_or(git_ref),
            path,
        )?;
        Some((url, location))
    }

    async fn fetch(
        &self,
        client: &CloudClient,
        url: &Url,
        max_bytes: usize,
    ) -> Result<Option<Vec<u8>>, BitbucketError> {
        client.file(url, max_bytes).await
    }

    fn files(&self, stats: &Arc<RequestStats>, location: &str) -> FileReader {
        let aliases: Vec<String> = url_host(location).into_iter().collect();
        let (workspace, filters) = (self.config.workspace.clone(), self.config.filters.clone());
        let scope = pipeline::target_scope(
            location,
            self.config.shared.target_scope,
            format!("catalog.providers.bitbucketCloud.{}", self.config.id),
            Product::Cloud,
            move |owner, slug| {
                if !owner.eq_ignore_ascii_case(&workspace) {
                    Err(Excluded::OtherWorkspace(workspace.clone()))
                } else if filters.project_key.is_some() {
                    // A file URL does not say the repository's project.
                    Err(Excluded::ProjectUnknown)
                } else if filters
                    .repo_slug
                    .as_ref()
                    .is_some_and(|re| !re.is_match(slug))
                {
                    Err(Excluded::RepoSlug)
                } else {
                    Ok(())
                }
            },
        );
        FileReader::new(
            Sites::cloud(&self.integration, &self.http, &aliases),
            stats,
            self.config.shared.catalog.processing.limits.max_file_bytes,
        )
        .within(scope)
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
            Product::Cloud,
            self.integration.api_base_url.clone(),
        )
    }

    fn pinned_branch(&self) -> Option<&str> {
        None
    }

    /// The workspace and filters applied to a repository an event names;
    /// the file is read at the main branch (a late or replayed push must
    /// not roll it back), the pushed `commit` being its change token.
    fn listed_one(
        &self,
        client: &CloudClient,
        repo: &RepoRef,
        commit: Option<&str>,
        fingerprint: &str,
    ) -> Result<Listed, Unlisted> {
        let workspace = &self.config.workspace;
        let left_out = |why: String| Err(Unlisted::LeftOut(why));
        if repo
            .workspace
            .as_deref()
            .is_some_and(|ws| !ws.eq_ignore_ascii_case(workspace))
        {
            return left_out(format!("it is not in workspace {workspace}"));
        }
        if repo.slug.is_empty() {
            return left_out("the event names no repository slug".into());
        }
        if let Some(re) = &self.config.filters.project_key {
            let Some(project) = repo.project.as_deref() else {
                return left_out("neither the event nor an earlier run names its project, and filters.projectKey is set; the next scheduled run reads it".into());
            };
            if !re.is_match(project) {
                return left_out(format!(
                    "project {project} does not match filters.projectKey"
                ));
            }
        }
        if !self.slug_kept(&repo.slug) {
            return left_out(format!(
                "repository {} does not match filters.repoSlug",
                repo.slug
            ));
        }
        let branch = repo.main_branch.clone().ok_or(Unlisted::NeedsBranch)?;
        let candidate = Candidate {
            project_key: repo.project.clone().unwrap_or_default(),
            slug: repo.slug.clone(),
            uuid: repo.id.clone(),
            repo_url: repo.web_url.clone().unwrap_or_else(|| {
                format!(
                    "https://{}/{workspace}/{}",
                    self.integration.host, repo.slug
                )
            }),
            read_at: branch.clone(),
            branch: Some(branch),
            commit: commit.map(str::to_owned),
        };
        self.listed(client, candidate, fingerprint)
            .map_err(|problem| Unlisted::LeftOut(problem.message))
    }

    async fn default_branch(
        &self,
        client: &CloudClient,
        repo: &RepoRef,
    ) -> Result<Option<String>, BitbucketError> {
        let found = client
            .repository(&self.config.workspace, &repo.slug)
            .await?;
        Ok(found.and_then(|r| r.main_branch().map(str::to_owned)))
    }
}

impl CloudFlavour {
    /// Projects → `projectKey` → code search per project (or, without code
    /// search, every repository) → `repoSlug`. Any failed page fails it.
    async fn repositories(
        &self,
        client: &CloudClient,
        fingerprint: &str,
        listing: &mut Listing,
    ) -> Result<Vec<Listed>, ListingError> {
        let workspace = &self.config.workspace;
        let projects = client
            .projects(workspace, self.config.pagelen)
            .await
            .map_err(|source| ListingError::WorkspaceProjects {
                workspace: workspace.clone(),
                source,
            })?;
        listing.projects_seen = projects.len();
        let project_filter = self.config.filters.project_key.as_ref();
        let keys: Vec<String> = projects
            .into_iter()
            .map(|p| p.key)
            .filter(|key| project_filter.is_none_or(|re| re.is_match(key)))
            .collect();
        // Code search finds one path; a glob lists each repository's files.
        let searched = if self.config.shared.catalog_glob.is_some() {
            None
        } else {
            self.search(client, &keys, listing).await?
        };
        let mut candidates = match searched {
            Some(found) if self.config.shared.generate.is_some() => {
                self.with_unsearched(client, found).await?
            }
            Some(found) => found,
            None => self.list_repositories(client, listing).await?,
        };
        candidates.sort_by(|a, b| (&a.project_key, &a.slug).cmp(&(&b.project_key, &b.slug)));
        if let (Some(webhooks), Some(secret)) = (
            &self.config.shared.webhooks,
            &self.integration.webhooks.secret,
        ) {
            hooks::keep_cloud(
                &self.hooks,
                client,
                workspace,
                &webhooks.target,
                secret,
                self.config.shared.pull_request_checks,
                &mut listing.notices,
            )
            .await;
        }
        Ok(candidates
            .into_iter()
            .filter_map(
                |candidate| match self.listed(client, candidate, fingerprint) {
                    Ok(listed) => Some(listed),
                    Err(problem) => {
                        listing.problems.push(problem);
                        None
                    }
                },
            )
            .collect())
    }

    /// The candidate as the pipeline lists it; a problem when its web URL
    /// is unusable, so its file cannot be named.
    fn listed(
        &self,
        client: &CloudClient,
        candidate: Candidate,
        fingerprint: &str,
    ) -> Result<Listed, Problem> {
        let path = &self.config.shared.catalog_path;
        // The location names the branch (stable across commits); the read
        // uses the commit the search indexed.
        let git_ref = candidate.branch.as_deref().unwrap_or(&candidate.read_at);
        let Some(catalog_url) = cloud_urls::file_url(&candidate.repo_url, git_ref, path) else {
            return Err(Problem::new(
                candidate.repo_url.clone(),
                ProblemKind::Read,
                format!(
                    "repository {} has no usable web URL ('{}'); its catalog file is not read",
                    candidate.slug, candidate.repo_url
                ),
            ));
        };
        let repo_info = RepoInfo {
            default_branch: FileUrl::parse(&catalog_url, Product::Cloud)
                .ok()
                .zip(candidate.branch.clone())
                .map(|(file, branch)| DefaultBranch {
                    repo: file.repo_url().to_owned(),
                    branch,
                }),
        };
        Ok(Listed {
            file_url: client.src_url(
                &self.config.workspace,
                &candidate.slug,
                &candidate.read_at,
                path,
            ),
            change_token: candidate
                .commit
                .map(|commit| format!("commit:{commit}@{fingerprint}")),
            repo_info,
            record: RepositoryRecord {
                project: candidate.project_key,
                slug: candidate.slug,
                url: candidate.repo_url,
                id: candidate.uuid,
                catalog_url,
                branch: candidate.branch,
                branch_checked_at: None,
                catalog: CatalogFile::Unknown,
                change_token: None,
                read_at: None,
                entities: 0,
                problems: Vec::new(),
                generated: None,
            },
        })
    }

    /// `"<file name>" path:/<catalogPath> project:<KEY>`, as Backstage asks;
    /// with `repo:<slug>` when a capped project is narrowed per repository.
    fn query(&self, project_key: &str, slug: Option<&str>) -> String {
        let path = &self.config.shared.catalog_path;
        let file_name = path.rsplit('/').next().unwrap_or(path);
        let mut query = format!("\"{file_name}\" path:/{path} project:{project_key}");
        if let Some(slug) = slug {
            query.push_str(&format!(" repo:{slug}"));
        }
        query
    }

    /// Code search over the kept projects; `None` when code search is not
    /// available (the first query tells, so the fallback costs one request).
    /// A project whose search stopped at the cap is narrowed until complete.
    async fn search(
        &self,
        client: &CloudClient,
        keys: &[String],
        listing: &mut Listing,
    ) -> Result<Option<Vec<Candidate>>, ListingError> {
        let Some((first, rest)) = keys.split_first() else {
            return Ok(Some(Vec::new()));
        };
        let first = self.search_project(client, first, None).await?;
        if let (_, Found::Unavailable(reason)) = &first {
            listing.notices.push(format!(
                "{reason}; fell back to listing the workspace's repositories and reading /{} from each main branch (one request per repository)",
                self.config.shared.catalog_path
            ));
            return Ok(None);
        }
        let mut searches = vec![first];
        searches.extend(
            // Owned keys: a borrowed stream item trips the compiler's Send check.
            stream::iter(rest.to_vec())
                .map(|key| async move { self.search_project(client, &key, None).await })
                .buffered(self.fan_out_width())
                .try_collect::<Vec<_>>()
                .await?,
        );
        let mut seen = HashSet::new();
        let mut candidates = Vec::new();
        let mut capped = Vec::new();
        for (key, search) in searches {
            let (results, complete) = match search {
                Found::Complete(results) => (results, true),
                Found::Capped(results) => (results, false),
                Found::Unavailable(reason) => {
                    return Err(ListingError::SearchWithdrawn { key, reason });
                }
            };
            listing.repos_seen += self.take(&key, results, &mut seen, &mut candidates);
            if !complete {
                capped.push(key);
            }
        }
        if !capped.is_empty() {
            let narrowed = self.narrow(client, &capped, &seen, listing).await?;
            candidates.extend(narrowed);
        }
        Ok(Some(candidates))
    }

    /// The kept candidates among `results` (distinct hits, not results:
    /// repeated pages inflate the latter); returns how many hits there were.
    fn take(
        &self,
        key: &str,
        results: Vec<SearchResult>,
        seen: &mut HashSet<(String, String)>,
        candidates: &mut Vec<Candidate>,
    ) -> usize {
        let mut hits = 0;
        for result in results {
            if let Some(candidate) = self.candidate(key, result, seen) {
                hits += 1;
                if self.slug_kept(&candidate.slug) {
                    candidates.push(candidate);
                }
            }
        }
        hits
    }

    /// Completes the projects whose search stopped at the cap. A capped
    /// answer is not a listing: each such project's repositories are
    /// listed (`q=project.key="KEY"`, not the whole workspace), and each of
    /// them that the capped search did not return is searched alone
    /// (`repo:`, one request; it names the
    /// commit, so an unchanged file is not read again). Catalog files all
    /// sit at one path, so `path:` cannot split a project, and `repo:` names
    /// one repository: per repository is the finest split there is, and
    /// only the repositories past the cap pay for it. Where that search is
    /// refused, the file is read from the main branch instead.
    async fn narrow(
        &self,
        client: &CloudClient,
        capped: &[String],
        seen: &HashSet<(String, String)>,
        listing: &mut Listing,
    ) -> Result<Vec<Candidate>, ListingError> {
        let listed: Vec<Vec<Repository>> = stream::iter(capped.to_vec())
            .map(|key| async move { self.repositories_of(client, Some(&key)).await })
            .buffered(self.fan_out_width())
            .try_collect()
            .await?;
        let repos = listed.into_iter().flatten();
        // `seen` holds only the catalog file's hits, keyed by lowercase slug.
        let found: HashSet<&str> = seen.iter().map(|(slug, _)| slug.as_str()).collect();
        let remaining: Vec<(String, Repository)> = repos
            .into_iter()
            .filter_map(|repo| {
                let key = capped.iter().find(|k| {
                    repo.project_key()
                        .is_some_and(|p| p.eq_ignore_ascii_case(k))
                })?;
                // An empty repository has no main branch, so no file.
                (repo.main_branch().is_some()
                    && self.slug_kept(&repo.slug)
                    && !found.contains(repo.slug.to_lowercase().as_str()))
                .then(|| (key.clone(), repo))
            })
            .collect();
        for key in capped {
            let count = remaining.iter().filter(|(k, _)| k == key).count();
            listing.notices.push(format!(
                "code search for project {key} stopped at Bitbucket's {SEARCH_RESULT_CAP} results or left matches out (its `size` counted more than it returned); its {count} other repositories were searched one by one ({count} requests) so the project is complete"
            ));
        }
        let searches: Vec<(String, Repository, Found)> = stream::iter(remaining)
            .map(|(key, repo)| async move {
                let (key, found) = self.search_project(client, &key, Some(&repo.slug)).await?;
                Ok::<_, ListingError>((key, repo, found))
            })
            .buffered(self.fan_out_width())
            .try_collect()
            .await?;
        let mut seen = HashSet::new();
        let mut candidates = Vec::new();
        for (key, repo, found) in searches {
            match found {
                Found::Complete(results) => {
                    listing.repos_seen += self.take(&key, results, &mut seen, &mut candidates);
                }
                // One repository cannot fill the cap; if its search is
                // refused or capped anyway, read its main branch.
                Found::Capped(_) | Found::Unavailable(_) => {
                    listing.repos_seen += 1;
                    candidates.extend(self.main_branch_read(repo));
                }
            }
        }
        Ok(candidates)
    }

    /// One query's answer. Not a listing (`Capped`) when a page after the
    /// first answers 400 (Bitbucket's "Cannot fetch results past result
    /// number 1000"), when the distinct results reach the cap, or when the
    /// answer's `size` counts more matches than the distinct results
    /// returned. The last also catches pages that repeated results in place
    /// of others under the cap: some matches were not returned, so the
    /// answer cannot say which repositories lack a file. When `size` covers
    /// the distinct results, repeats that pushed the raw count to the cap do
    /// not make it capped; without `size`, a raw count at the cap does.
    async fn search_project(
        &self,
        client: &CloudClient,
        key: &str,
        slug: Option<&str>,
    ) -> Result<(String, Found), ListingError> {
        let found = match client
            .search_code(
                &self.config.workspace,
                &self.query(key, slug),
                self.config.pagelen,
            )
            .await
        {
            Ok(Search::Results { results, size }) => {
                let distinct = distinct_results(&results);
                let capped = distinct >= SEARCH_RESULT_CAP
                    || size.map_or(results.len() >= SEARCH_RESULT_CAP, |size| size > distinct);
                if capped {
                    Found::Capped(results)
                } else {
                    Found::Complete(results)
                }
            }
            Ok(Search::Unavailable(reason)) => Found::Unavailable(reason),
            Err(err) if err.status() == Some(reqwest::StatusCode::BAD_REQUEST) => {
                Found::Capped(Vec::new())
            }
            Err(source) => {
                return Err(ListingError::CodeSearch {
                    key: key.to_owned(),
                    source,
                });
            }
        };
        Ok((key.to_owned(), found))
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
        if file.path.trim_start_matches('/') != self.config.shared.catalog_path {
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
            commit: Some(commit.hash.clone()),
            read_at: commit.hash,
            project_key,
            uuid: repo.uuid,
            slug: repo.slug,
        })
    }

    /// Without code search: every repository of the workspace, filtered.
    async fn list_repositories(
        &self,
        client: &CloudClient,
        listing: &mut Listing,
    ) -> Result<Vec<Candidate>, ListingError> {
        let repos = self.repositories_of(client, None).await?;
        listing.repos_seen = repos.len();
        let project_filter = self.config.filters.project_key.as_ref();
        Ok(repos
            .into_iter()
            .filter(|repo| {
                project_filter.is_none_or(|re| repo.project_key().is_some_and(|k| re.is_match(k)))
                    && self.slug_kept(&repo.slug)
            })
            .filter_map(|repo| self.main_branch_read(repo))
            .collect())
    }

    /// `found` and, for `withoutCatalogFile.generate`, every other listed
    /// repository, read from its main branch (code search names only the
    /// repositories that have the file).
    async fn with_unsearched(
        &self,
        client: &CloudClient,
        mut found: Vec<Candidate>,
    ) -> Result<Vec<Candidate>, ListingError> {
        let all = self
            .list_repositories(client, &mut Listing::default())
            .await?;
        let searched: HashSet<String> = found.iter().map(|c| c.slug.to_lowercase()).collect();
        found.extend(
            all.into_iter()
                .filter(|c| !searched.contains(&c.slug.to_lowercase())),
        );
        Ok(found)
    }

    /// Every repository of the workspace, or of one of its projects.
    async fn repositories_of(
        &self,
        client: &CloudClient,
        project: Option<&str>,
    ) -> Result<Vec<Repository>, ListingError> {
        let workspace = &self.config.workspace;
        client
            .repositories(workspace, project, self.config.pagelen)
            .await
            .map_err(|source| ListingError::WorkspaceRepositories {
                workspace: workspace.clone(),
                source,
            })
    }

    /// A listed repository's file, read from its main branch (no change
    /// token); `None` for an empty repository: no main branch, so no file.
    fn main_branch_read(&self, repo: Repository) -> Option<Candidate> {
        let branch = repo.main_branch()?.to_owned();
        Some(Candidate {
            project_key: repo.project_key().unwrap_or_default().to_owned(),
            repo_url: self.repo_url(&repo),
            read_at: branch.clone(),
            branch: Some(branch),
            commit: None,
            uuid: repo.uuid,
            slug: repo.slug,
        })
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
}

/// How many distinct files the results name (pages can repeat results,
/// BCLOUD-23644); a result naming no file counts as one of its own.
fn distinct_results(results: &[SearchResult]) -> usize {
    let mut files = HashSet::new();
    let mut unnamed = 0;
    for result in results {
        match result
            .file
            .as_ref()
            .and_then(|f| Some((f, f.commit.as_ref()?)))
        {
            Some((file, commit)) => {
                files.insert((commit.repository.slug.to_lowercase(), file.path.as_str()));
            }
            None => unnamed += 1,
        }
    }
    files.len() + unnamed
}
