//! A repository read under a `catalogPath` glob: list its files, read each
//! one the glob matches (at the commit the listing names, when it names
//! one), and apply them together as the repository's one unit. Each file
//! is processed at its own location, so its problems and its entities'
//! locations name it.

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt, stream};

use super::plan::Listed;
use super::provider::{Flavour, Provider, Read, content_token, token_covering, unreadable};
use super::{
    CatalogFile, Problem, ProblemKind, RepositoryRecord, RunContext, UnitUpdate, generated,
};
use crate::bitbucket::BitbucketError;
use crate::catalog::ProcessedEntity;
use crate::catalog::entity::ANNOTATION_LOCATION;
use crate::catalog::generated::is_generated_unit;
use crate::catalog::process::RepoInfo;
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
    /// The commit the files were read at: the change token.
    commit: Option<String>,
    problems: Vec<Problem>,
}

/// Only the files changed since the processed commit, read.
struct Partial {
    /// Changed files that exist at the new commit.
    files: Vec<GlobFile>,
    /// Locations of every changed matching file (present or gone): their
    /// previous entities and problems are dropped.
    touched: HashSet<String>,
    /// What the unit served before.
    previous: Vec<ProcessedEntity>,
    commit: String,
}

/// What a glob read came to.
enum GlobRead<'r> {
    /// At the commit already processed: no read, no change.
    Unchanged(&'r RepositoryRecord),
    Full(Found),
    Partial(Partial),
}

impl<F: Flavour> Provider<F> {
    /// [`Provider::read`] for a glob `catalogPath`.
    pub(super) async fn read_glob(
        &self,
        client: &F::Client,
        ctx: &RunContext<'_>,
        listed: Listed,
        glob: &CatalogGlob,
        changed: bool,
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
            generated: None,
        };
        // Real entities replace a generated one in the same apply.
        let had_generated = previous.map_or(self.flavour.shared().generate.is_some(), |p| {
            p.generated.is_some()
        });
        match self
            .glob_files(client, ctx, &mut record, glob, previous)
            .await
        {
            Err(err) => {
                unreadable(&mut record, &mut read, previous, &err);
                record.generated = previous.and_then(|p| p.generated.clone());
            }
            Ok(GlobRead::Unchanged(kept)) => {
                record.catalog = kept.catalog;
                record.change_token = kept.change_token.clone();
                read.found = kept.catalog == CatalogFile::Present;
                read.problems = kept.problems.clone();
                read.problems.retain(|p| !is_generated_unit(&p.url));
                if kept.catalog == CatalogFile::Missing {
                    // No request unless the settings changed (or never generated).
                    read.generated = self
                        .generate_for(client, &mut record, previous, None, changed)
                        .await;
                }
            }
            Ok(GlobRead::Full(found)) if found.files.is_empty() => {
                record.catalog = CatalogFile::Missing;
                read.update.entities = Some(Vec::new());
                read.problems = found.problems;
                // With a commit the repository moved (same commit: Unchanged).
                let moved = changed || found.commit.is_some();
                read.generated = self
                    .generate_for(
                        client,
                        &mut record,
                        previous,
                        found.commit.as_deref(),
                        moved,
                    )
                    .await;
                record.change_token = found.commit.map(|c| self.commit_token(&c));
            }
            Ok(GlobRead::Full(found)) => {
                let token = match &found.commit {
                    Some(commit) => self.commit_token(commit),
                    None => files_token(&found.files, &self.fingerprint),
                };
                record.catalog = CatalogFile::Present;
                read.found = true;
                if had_generated {
                    read.generated =
                        Some(UnitUpdate::removal(&generated::unit(&record.catalog_url)));
                }
                let same = previous.filter(|p| {
                    p.catalog == CatalogFile::Present && p.change_token.as_ref() == Some(&token)
                });
                match same {
                    Some(previous) => {
                        record.change_token = Some(token);
                        read.problems = previous.problems.clone();
                    }
                    None => {
                        read.problems = found.problems;
                        let entities = self
                            .process_files(ctx, &found.files, &repo_info, &mut read)
                            .await;
                        record.change_token = token_covering(
                            token,
                            read.location_files,
                            self.flavour.shared().target_scope,
                        );
                        read.update.entities = Some(entities);
                    }
                }
            }
            Ok(GlobRead::Partial(partial)) => {
                let Partial {
                    files,
                    touched,
                    previous: mut served,
                    commit,
                } = partial;
                read.problems = ctx
                    .known
                    .get(&record.catalog_url)
                    .map(|p| p.problems.clone())
                    .unwrap_or_default();
                read.problems
                    .retain(|p| !touched.contains(&p.url) && !is_generated_unit(&p.url));
                served.retain(|e| !location_of(e).is_some_and(|l| touched.contains(l)));
                let entities = self.process_files(ctx, &files, &repo_info, &mut read).await;
                let was_missing = ctx
                    .known
                    .get(&record.catalog_url)
                    .is_some_and(|p| p.catalog == CatalogFile::Missing);
                record.catalog = if was_missing && files.is_empty() {
                    CatalogFile::Missing
                } else {
                    CatalogFile::Present
                };
                read.found = record.catalog == CatalogFile::Present;
                if read.found && had_generated {
                    read.generated =
                        Some(UnitUpdate::removal(&generated::unit(&record.catalog_url)));
                } else if !read.found {
                    read.generated = self
                        .generate_for(client, &mut record, previous, Some(&commit), true)
                        .await;
                }
                served.extend(entities);
                record.change_token = token_covering(
                    self.commit_token(&commit),
                    read.location_files,
                    self.flavour.shared().target_scope,
                );
                read.update.entities = Some(served);
            }
        }
        if let Some(problem) = record.generated.as_ref().and_then(|g| g.problem.clone()) {
            read.problems.push(problem);
        }
        record.problems = read.problems.clone();
        read.update.record = Some(record);
        ctx.progress.read_one(read.found);
        read
    }

    /// [`Provider::generate`] for a repository the glob matched nothing in,
    /// its code owners file read at `commit` (the branch without one).
    async fn generate_for(
        &self,
        client: &F::Client,
        record: &mut RepositoryRecord,
        previous: Option<&RepositoryRecord>,
        commit: Option<&str>,
        changed: bool,
    ) -> Option<UnitUpdate> {
        let codeowners = self
            .flavour
            .file_urls(client, record, commit, generated::CODEOWNERS_PATH)
            .map(|(url, _)| url);
        self.generate(client, record, previous, codeowners, changed)
            .await
    }

    fn commit_token(&self, commit: &str) -> String {
        format!("commit:{commit}@{}", self.fingerprint)
    }

    /// Processes `files`, each at its own location; their problems and
    /// Location reads go into `read`.
    async fn process_files(
        &self,
        ctx: &RunContext<'_>,
        files: &[GlobFile],
        repo_info: &RepoInfo,
        read: &mut Read,
    ) -> Vec<ProcessedEntity> {
        let mut entities = Vec::new();
        for file in files {
            let processed = self
                .process(ctx, &file.bytes, &file.location, repo_info)
                .await;
            entities.extend(processed.entities);
            read.problems.extend(processed.problems);
            read.location_files += processed.location_files;
        }
        entities
    }

    /// One request tells whether the repository moved (where the flavour
    /// can tell); unchanged → nothing else. Moved from a commit processed
    /// before → only the matching files the change touched are read;
    /// otherwise every matching file, at the commit checked.
    async fn glob_files<'r>(
        &self,
        client: &F::Client,
        ctx: &RunContext<'_>,
        record: &mut RepositoryRecord,
        glob: &CatalogGlob,
        previous: Option<&'r RepositoryRecord>,
    ) -> Result<GlobRead<'r>, BitbucketError> {
        // Read before, and not failed: its token says what it was read at.
        let processed =
            previous.filter(|p| matches!(p.catalog, CatalogFile::Present | CatalogFile::Missing));
        let head = self.flavour.head(client, record).await?;
        if let Some(head) = &head {
            // The check names the default branch: followed when it changes.
            record.branch = Some(head.branch.clone());
            record.branch_checked_at = None;
            let token = self.commit_token(&head.commit);
            if let Some(kept) = processed.filter(|p| p.change_token.as_ref() == Some(&token)) {
                return Ok(GlobRead::Unchanged(kept));
            }
            let since = processed
                .and_then(|p| p.change_token.as_deref())
                .and_then(|t| t.strip_prefix("commit:"))
                .and_then(|t| t.strip_suffix(&format!("@{}", self.fingerprint)));
            if let Some(since) = since {
                if let Some(partial) = self
                    .changed_files(client, ctx, record, glob, since, &head.commit)
                    .await?
                {
                    return Ok(GlobRead::Partial(partial));
                }
            }
        }
        let at = head.as_ref().map(|h| h.commit.as_str());
        let listing = self.flavour.list_files(client, record, at).await?;
        let commit = head.map(|h| h.commit).or(listing.commit);
        if let Some(commit) = &commit {
            let token = self.commit_token(commit);
            if let Some(kept) = processed.filter(|p| p.change_token.as_ref() == Some(&token)) {
                return Ok(GlobRead::Unchanged(kept));
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
        let files = self
            .fetch_files(client, record, commit.as_deref(), paths)
            .await?;
        Ok(GlobRead::Full(Found {
            files,
            commit,
            problems,
        }))
    }

    /// The matching files changed between `since` and `until`, read at
    /// `until`; `None` when the change cannot be told (the stored commit is
    /// no longer known, or the unit's entities are not at hand).
    async fn changed_files(
        &self,
        client: &F::Client,
        ctx: &RunContext<'_>,
        record: &RepositoryRecord,
        glob: &CatalogGlob,
        since: &str,
        until: &str,
    ) -> Result<Option<Partial>, BitbucketError> {
        let Some(previous) = ctx.sink.unit_entities(&record.catalog_url) else {
            return Ok(None);
        };
        // A Location's targets need not match the glob, so the changed
        // paths cannot tell whether they moved: such a repository is read
        // whole when it moves (unchanged, it still costs nothing).
        if previous
            .iter()
            .any(|e| e.entity.kind.eq_ignore_ascii_case("location"))
        {
            return Ok(None);
        }
        let Some(changes) = self
            .flavour
            .changed_paths(client, record, since, until)
            .await?
        else {
            return Ok(None);
        };
        let mut touched = HashSet::new();
        let mut present = Vec::new();
        for change in changes.into_iter().filter(|c| glob.is_match(&c.path)) {
            if let Some((_, location)) =
                self.flavour
                    .file_urls(client, record, Some(until), &change.path)
            {
                touched.insert(location);
            }
            if !change.deleted {
                present.push(change.path);
            }
        }
        if touched.len() > MAX_FILES_PER_REPOSITORY {
            return Ok(None);
        }
        // Every file that served something is gone and none came: perhaps
        // no match is left (then the repository is one without a catalog
        // file), which only a listing tells.
        let all_gone = present.is_empty()
            && !touched.is_empty()
            && previous
                .iter()
                .all(|e| location_of(e).is_some_and(|l| touched.contains(l)));
        if all_gone {
            return Ok(None);
        }
        present.sort();
        present.dedup();
        let files = self
            .fetch_files(client, record, Some(until), present)
            .await?;
        Ok(Some(Partial {
            files,
            touched,
            previous,
            commit: until.to_owned(),
        }))
    }

    /// Reads `paths` at `commit` (the branch without one); a file gone
    /// since the listing is left out.
    async fn fetch_files(
        &self,
        client: &F::Client,
        record: &RepositoryRecord,
        commit: Option<&str>,
        paths: Vec<String>,
    ) -> Result<Vec<GlobFile>, BitbucketError> {
        let max_bytes = self
            .flavour
            .shared()
            .catalog
            .processing
            .limits
            .max_file_bytes;
        let files: Vec<Option<GlobFile>> = stream::iter(paths)
            .map(|path| async move {
                let Some((url, location)) = self.flavour.file_urls(client, record, commit, &path)
                else {
                    return Ok(None);
                };
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
        Ok(files.into_iter().flatten().collect())
    }
}

/// The file an entity came from (its `managed-by-location` URL).
fn location_of(entity: &ProcessedEntity) -> Option<&str> {
    entity
        .entity
        .metadata
        .annotations
        .get(ANNOTATION_LOCATION)
        .and_then(|l| l.strip_prefix("url:"))
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
