//! A repository read under a `catalogPath` glob: list its files, read each
//! one the glob matches (at the commit the listing names, when it names
//! one), and apply them together as the repository's one unit. Each file
//! is processed at its own location, so its problems and its entities'
//! locations name it.

use futures::{StreamExt, TryStreamExt, stream};

use super::plan::Listed;
use super::provider::{Flavour, Provider, Read, content_token, unreadable};
use super::{CatalogFile, Problem, ProblemKind, RunContext, UnitUpdate};
use crate::bitbucket::BitbucketError;
use crate::config::CatalogGlob;

/// At most this many catalog files are read from one repository (the
/// largest reported monorepo has about 800); the rest are named in a
/// problem, so no repository can make a run unbounded.
pub(crate) const MAX_FILES_PER_REPOSITORY: usize = 2000;

/// Reads of one repository's files at a time.
const FILE_CONCURRENCY: usize = 4;

/// One matching file, read.
struct GlobFile {
    path: String,
    location: String,
    bytes: Vec<u8>,
}

/// What listing and reading a repository's matching files gave.
struct Found {
    files: Vec<GlobFile>,
    /// The listing's commit: the change token, before any read.
    commit: Option<String>,
    problems: Vec<Problem>,
}

impl<F: Flavour> Provider<F> {
    /// [`Provider::read`] for a glob `catalogPath`.
    pub(super) async fn read_glob(
        &self,
        client: &F::Client,
        ctx: &RunContext<'_>,
        listed: Listed,
        glob: &CatalogGlob,
    ) -> Read {
        let Listed {
            mut record,
            repo_info,
            ..
        } = listed;
        let previous = ctx.known.get(&record.catalog_url);
        record.read_at = Some(chrono::Utc::now());
        let mut read = Read {
            update: UnitUpdate {
                unit: record.catalog_url.clone(),
                record: None,
                entities: None,
            },
            found: false,
            problems: Vec::new(),
            location_files: 0,
            stale: None,
        };
        let unchanged = |token: &str| {
            previous.filter(|p| {
                p.catalog == CatalogFile::Present && p.change_token.as_deref() == Some(token)
            })
        };
        match self.glob_files(client, &record, glob, &unchanged).await {
            Err(err) => unreadable(&mut record, &mut read, previous, &err),
            Ok(Err(kept)) => {
                // The listing names the commit already processed: no reads.
                record.catalog = CatalogFile::Present;
                record.change_token = kept.change_token.clone();
                read.found = true;
                read.problems = kept.problems.clone();
            }
            Ok(Ok(found)) if found.files.is_empty() => {
                record.catalog = CatalogFile::Missing;
                record.change_token = None;
                read.update.entities = Some(Vec::new());
                read.problems = found.problems;
            }
            Ok(Ok(found)) => {
                let token = match &found.commit {
                    Some(commit) => format!("commit:{commit}@{}", self.fingerprint),
                    None => files_token(&found.files, &self.fingerprint),
                };
                record.catalog = CatalogFile::Present;
                read.found = true;
                match unchanged(&token) {
                    Some(previous) => {
                        record.change_token = Some(token);
                        read.problems = previous.problems.clone();
                    }
                    None => {
                        let mut entities = Vec::new();
                        let mut location_files = 0;
                        read.problems = found.problems;
                        for file in &found.files {
                            let processed = self
                                .process(ctx, &file.bytes, &file.location, &repo_info)
                                .await;
                            entities.extend(processed.entities);
                            read.problems.extend(processed.problems);
                            location_files += processed.location_files;
                        }
                        record.change_token = (location_files == 0).then_some(token);
                        read.update.entities = Some(entities);
                        read.location_files = location_files;
                    }
                }
            }
        }
        record.problems = read.problems.clone();
        read.update.record = Some(record);
        ctx.progress.read_one(read.found);
        read
    }

    /// Lists the repository and reads its matching files; `Ok(Err(record))`
    /// when the listing's commit is the one `unchanged` knows.
    async fn glob_files<'r>(
        &self,
        client: &F::Client,
        record: &super::RepositoryRecord,
        glob: &CatalogGlob,
        unchanged: &impl Fn(&str) -> Option<&'r super::RepositoryRecord>,
    ) -> Result<Result<Found, &'r super::RepositoryRecord>, BitbucketError> {
        let listing = self.flavour.list_files(client, record).await?;
        if let Some(commit) = &listing.commit {
            let token = format!("commit:{commit}@{}", self.fingerprint);
            if let Some(kept) = unchanged(&token) {
                return Ok(Err(kept));
            }
        }
        let mut paths: Vec<String> = listing
            .paths
            .into_iter()
            .filter(|p| glob.is_match(p))
            .collect();
        paths.sort();
        paths.dedup();
        let mut problems = Vec::new();
        if paths.len() > MAX_FILES_PER_REPOSITORY {
            problems.push(Problem::new(
                record.catalog_url.clone(),
                ProblemKind::Read,
                format!(
                    "catalogPath {} matches {} files in repository {}; only the first {MAX_FILES_PER_REPOSITORY} (by path) are read: narrow the pattern",
                    glob.pattern(),
                    paths.len(),
                    record.slug
                ),
            ));
            paths.truncate(MAX_FILES_PER_REPOSITORY);
        }
        let max_bytes = self
            .flavour
            .shared()
            .catalog
            .processing
            .limits
            .max_file_bytes;
        let commit = listing.commit.as_deref();
        let files: Vec<Option<GlobFile>> = stream::iter(paths)
            .map(|path| async move {
                let Some((url, location)) = self.flavour.file_urls(client, record, commit, &path)
                else {
                    return Ok(None);
                };
                // A file gone since the listing is simply not there.
                let bytes = self.flavour.fetch(client, &url, max_bytes).await?;
                Ok::<_, BitbucketError>(bytes.map(|bytes| GlobFile {
                    path,
                    location,
                    bytes,
                }))
            })
            .buffered(FILE_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(Ok(Found {
            files: files.into_iter().flatten().collect(),
            commit: listing.commit,
            problems,
        }))
    }
}

/// A hash of every file's path and bytes with the settings: the change
/// token of a repository whose listing names no commit.
fn files_token(files: &[GlobFile], fingerprint: &str) -> String {
    let mut all = Vec::new();
    for file in files {
        all.extend_from_slice(file.path.as_bytes());
        all.push(0);
        all.extend_from_slice(
            sha1_smol::Sha1::from(&file.bytes)
                .digest()
                .to_string()
                .as_bytes(),
        );
        all.push(0);
    }
    content_token(&all, fingerprint)
}
