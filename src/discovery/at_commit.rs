//! A provider's reads for a pull-request check (see `commit_reads`): its
//! files at the source commit, processed as its branch read would, Location
//! targets in the repository read at the same commit.

use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use url::Url;

use super::cloud::SRC_MAX_DEPTH;
use super::commit_reads::{CommitFile, CommitReads, FileAtCommit, SourceCommit};
use super::plan::Listed;
use super::provider::{Flavour, Provider};
use super::{RepoRef, RunContext, generated, pipeline};
use crate::bitbucket::BitbucketError;
use crate::bitbucket::reader::FileReader;
use crate::bitbucket::{cloud_urls, server_urls};
use crate::catalog::ProcessedEntity;
use crate::catalog::process::{FetchError, FileFacts, FileSource, ResolveError};
use crate::config::CatalogGlob;
use crate::integrations::Product;

/// At most this many catalog files are read for one check, as for one
/// repository's read.
pub(crate) use super::glob::MAX_FILES_PER_REPOSITORY;

/// Reads of one pull request's files at a time (as a glob read's).
const FILE_CONCURRENCY: usize = 4;

impl<F: Flavour> CommitReads for Provider<F> {
    fn catalog_glob(&self) -> Option<&CatalogGlob> {
        self.flavour.shared().catalog_glob.as_ref()
    }

    fn read_at_commit<'a>(
        &'a self,
        ctx: &'a RunContext<'_>,
        listed: &'a Listed,
        at: SourceCommit<'a>,
        paths: Vec<String>,
    ) -> BoxFuture<'a, Vec<CommitFile>> {
        Box::pin(async move {
            let client = self.flavour.client(&ctx.stats);
            let client = &client;
            let shared = self.flavour.shared();
            let max_bytes = shared.catalog.processing.limits.max_file_bytes;
            stream::iter(paths)
                // Once stopped, no new read starts.
                .take_until(ctx.stop.clone().cancelled_owned())
                .map(|path| async move {
                    let location = if shared.catalog_glob.is_none() && path == shared.catalog_path {
                        Some(listed.record.catalog_url.clone())
                    } else {
                        self.flavour
                            .file_urls(client, &listed.record, None, &path)
                            .map(|(_, location)| location)
                    }?;
                    let url = at.api.file_at(at.source, at.commit, &path);
                    let outcome = match self.flavour.fetch(client, &url, max_bytes).await {
                        Ok(None) => FileAtCommit::Missing,
                        Err(err) => FileAtCommit::Unreadable(err),
                        Ok(Some(bytes)) => {
                            let source = AtCommit {
                                provider: self,
                                client,
                                inner: self.flavour.files(&ctx.stats, &location),
                                at,
                                max_bytes,
                                default_branch: tokio::sync::OnceCell::new(),
                            };
                            FileAtCommit::Read(
                                pipeline::process_file(
                                    &bytes,
                                    &location,
                                    &source,
                                    &shared.catalog,
                                    &listed.repo_info,
                                )
                                .await,
                            )
                        }
                    };
                    Some(CommitFile { location, outcome })
                })
                .buffered(FILE_CONCURRENCY)
                .filter_map(|file| async move { file })
                .collect()
                .await
        })
    }

    fn generates(&self) -> bool {
        self.flavour.shared().generate.is_some()
    }

    fn glob_matches_at_commit<'a>(
        &'a self,
        at: SourceCommit<'a>,
    ) -> BoxFuture<'a, Result<bool, BitbucketError>> {
        Box::pin(async move {
            let Some(glob) = self.catalog_glob() else {
                return Ok(false);
            };
            let matches = |path: &str| glob.is_match(path);
            at.api
                .any_file_at(at.source, at.commit, SRC_MAX_DEPTH, &matches)
                .await
        })
    }

    fn generated_at_commit<'a>(
        &'a self,
        ctx: &'a RunContext<'_>,
        listed: &'a Listed,
        at: SourceCommit<'a>,
    ) -> BoxFuture<'a, Option<Vec<ProcessedEntity>>> {
        Box::pin(async move {
            self.flavour.shared().generate.as_ref()?;
            let client = self.flavour.client(&ctx.stats);
            let mut record = listed.record.clone();
            let codeowners = at
                .api
                .file_at(at.source, at.commit, generated::CODEOWNERS_PATH);
            let update = self
                .generate(&client, &mut record, None, Some(codeowners), true)
                .await?;
            update.entities
        })
    }
}

/// The provider's reader for Location targets and placeholders of a file
/// read at a pull request's commit: a target in the target repository at
/// the branch is read at the commit instead (in the repository the pull
/// request comes from); every other URL as the branch read would, so a
/// target pinned to another ref (`?at=refs/heads/other`, a commit, Cloud's
/// `/src/<other>/`) is read there, as after the merge.
struct AtCommit<'a, F: Flavour> {
    provider: &'a Provider<F>,
    client: &'a F::Client,
    inner: FileReader,
    at: SourceCommit<'a>,
    max_bytes: usize,
    /// Whether the branch is the repository's default, once asked.
    default_branch: tokio::sync::OnceCell<bool>,
}

/// Where a URL of the target repository is read for the check.
enum TargetRead {
    /// At the pull request's commit.
    AtCommit(Url),
    /// At the commit if the branch is the repository's default one (a Data
    /// Center URL naming no ref reads the default branch).
    AtCommitIfDefault(Url),
}

impl<F: Flavour> AtCommit<'_, F> {
    /// The REST call reading `url` at the commit, when it names a file of
    /// the target repository at the branch.
    fn at_commit(&self, url: &str) -> Option<TargetRead> {
        let at = self.at;
        let (owner, slug, path, on_branch) = match at.api.product() {
            Product::Server => {
                let file = server_urls::parse_file_url(url).ok()?;
                // `None`: no ref, the default branch.
                let on_branch = file
                    .at
                    .as_deref()
                    .map(|r| r == at.branch || r.strip_prefix("refs/heads/") == Some(at.branch));
                (file.project_key, file.slug, file.path, on_branch)
            }
            Product::Cloud => {
                let file = cloud_urls::parse_file_url(url).ok()?;
                let on_branch = Some(file.git_ref == at.branch);
                (file.workspace, file.slug, file.path, on_branch)
            }
        };
        let same = owner.eq_ignore_ascii_case(&at.target.owner)
            && slug.eq_ignore_ascii_case(&at.target.slug);
        if !same {
            return None;
        }
        let api = at.api.file_at(at.source, at.commit, &path.join("/"));
        match on_branch {
            Some(true) => Some(TargetRead::AtCommit(api)),
            Some(false) => None,
            None => Some(TargetRead::AtCommitIfDefault(api)),
        }
    }

    /// Whether the branch the pull request merges into is the repository's
    /// default: without `filters.branch` it is (the check reads the default
    /// branch); with it, Bitbucket is asked once.
    async fn merges_into_default(&self) -> Result<bool, FetchError> {
        let Some(pinned) = self.provider.flavour.pinned_branch() else {
            return Ok(true);
        };
        let target = self.at.target;
        self.default_branch
            .get_or_try_init(|| async {
                let repo = RepoRef {
                    project: Some(target.owner.clone()),
                    workspace: None,
                    slug: target.slug.clone(),
                    id: None,
                    web_url: None,
                    archived: false,
                    main_branch: None,
                };
                self.provider
                    .flavour
                    .default_branch(self.client, &repo)
                    .await
                    .map(|default| default.as_deref() == Some(pinned))
                    .map_err(|err| FetchError::Failed(err.to_string()))
            })
            .await
            .copied()
    }

    async fn fetch_api(&self, api: &Url) -> Result<Option<Vec<u8>>, FetchError> {
        self.provider
            .flavour
            .fetch(self.client, api, self.max_bytes)
            .await
            .map_err(|err| FetchError::Failed(err.to_string()))
    }
}

impl<F: Flavour> FileSource for AtCommit<'_, F> {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, FetchError>> {
        Box::pin(async move {
            // The target repository: in scope whatever `targetScope` says.
            match self.at_commit(url) {
                Some(TargetRead::AtCommit(api)) => self.fetch_api(&api).await,
                Some(TargetRead::AtCommitIfDefault(api)) => {
                    if self.merges_into_default().await? {
                        self.fetch_api(&api).await
                    } else {
                        self.inner.fetch(url).await
                    }
                }
                None => self.inner.fetch(url).await,
            }
        })
    }

    fn resolve(&self, target: &str, base: &str) -> Result<String, ResolveError> {
        self.inner.resolve(target, base)
    }

    fn describe(&self, url: &str) -> FileFacts {
        self.inner.describe(url)
    }
}
