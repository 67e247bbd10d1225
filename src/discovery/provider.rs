//! The one provider pipeline: list → filter → plan → read → process →
//! apply. What differs between Bitbucket Server and Cloud (how to list, how
//! to name and read a file, what tells a file changed) sits behind
//! [`Flavour`]; every behaviour above it — repositories kept one by one,
//! removals only from a complete listing and under the deletion guard,
//! stale files, priority, progress, results served as they come — is
//! shared.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, OptionFuture};
use futures::{Stream, StreamExt, stream};
use url::Url;

use super::fan_out;
use super::generated;
use super::hooks::KeptHooks;
use super::pipeline::{self, FileOutcome};
use super::plan::{self, Listed};
use super::record::Generated;
use super::{
    CatalogFile, Outcome, Problem, ProblemKind, RepoRef, RepositoryRecord, RunContext, RunReport,
    UnitUpdate,
};
use crate::bitbucket::pull_requests::PullRequestApi;
use crate::bitbucket::reader::FileReader;
use crate::bitbucket::server::{BranchHead, ChangedPath};
use crate::bitbucket::{BitbucketError, Http, IntegrationHttp, RequestStats};
use crate::catalog::process::RepoInfo;
use crate::config::{DeletionGuard, ProviderSettings, Schedule, TargetScope};

/// Results are applied once this many files are read…
const BATCH_FILES: usize = 100;
/// …or this long after the first unapplied one, whichever comes first.
const BATCH_EVERY: Duration = Duration::from_secs(2);

/// What each flavour holds: its provider configuration `C`, its
/// integration `I`, the integration's transport and the webhooks it keeps.
#[derive(Debug, Clone)]
pub(crate) struct Parts<C, I> {
    pub(super) config: C,
    pub(super) integration: I,
    pub(super) http: Arc<IntegrationHttp>,
    pub(super) hooks: Arc<KeptHooks>,
}

impl<C, I> Parts<C, I>
where
    Self: Flavour,
{
    /// The provider `config` describes, reading through `http`.
    pub(crate) fn provider(
        config: C,
        integration: I,
        http: Arc<IntegrationHttp>,
    ) -> Provider<Self> {
        Provider::new(Self {
            config,
            integration,
            http,
            hooks: Arc::default(),
        })
    }
    /// The integration's transport, counting requests into `stats`.
    pub(super) fn counted_http(&self, stats: &Arc<RequestStats>) -> Http {
        Http::new(Arc::clone(&self.http), Arc::clone(stats))
    }
}

/// What one kind of Bitbucket does differently.
pub(crate) trait Flavour: std::fmt::Debug + Clone + Send + Sync + 'static {
    type Client: Clone + Send + Sync;

    /// Reads (or listing requests) to have under way now: the
    /// integration's pace and the provider's `concurrency` decide it (see
    /// [`fan_out::width`]).
    fn fan_out_width(&self) -> usize;

    /// The provider's id.
    fn id(&self) -> &str;
    /// The keys every provider's configuration has.
    fn shared(&self) -> &ProviderSettings;
    /// What it reads, for the status: a host or a workspace.
    fn target(&self) -> &str;

    /// A client that counts its requests into `stats`.
    fn client(&self, stats: &Arc<RequestStats>) -> Self::Client;

    /// Every repository that passes the filters, and what the listing saw.
    fn list(
        &self,
        client: &Self::Client,
        fingerprint: &str,
    ) -> impl Future<Output = Listing> + Send;

    /// A catalog file's bytes (at most `max_bytes + 1`), `None` when missing.
    fn fetch(
        &self,
        client: &Self::Client,
        url: &Url,
        max_bytes: usize,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, BitbucketError>> + Send;

    /// How Location targets and placeholders in the file at `location` are read.
    fn files(&self, stats: &Arc<RequestStats>, location: &str) -> FileReader;

    /// The integration's `host[:port]`.
    fn host(&self) -> &str;

    /// The branch the filters name (`filters.branch`), if any.
    fn pinned_branch(&self) -> Option<&str>;

    /// A repository an event (or a record) names, as a listing would give
    /// it; `commit`: the head a push moved the read branch to (Cloud's
    /// change token). Checks everything that needs no request first.
    fn listed_one(
        &self,
        client: &Self::Client,
        repo: &RepoRef,
        commit: Option<&str>,
        fingerprint: &str,
    ) -> Result<Listed, Unlisted>;

    /// Every file of the repository `record` names, at the branch it is
    /// read from, for a `catalogPath` glob.
    /// `at`: the commit the head check found, when it found one.
    fn list_files(
        &self,
        client: &Self::Client,
        record: &RepositoryRecord,
        at: Option<&str>,
    ) -> impl Future<Output = Result<FileList, BitbucketError>> + Send;

    /// The read branch and its latest commit in one request, which tells a
    /// glob provider whether the repository moved; `None` when the flavour
    /// does not check (then the file listing tells).
    fn head(
        &self,
        _client: &Self::Client,
        _record: &RepositoryRecord,
    ) -> impl Future<Output = Result<Option<BranchHead>, BitbucketError>> + Send {
        async { Ok(None) }
    }

    /// The paths changed between commits `since` and `until`; `None` when
    /// the flavour cannot tell (then every matching file is read again).
    fn changed_paths(
        &self,
        _client: &Self::Client,
        _record: &RepositoryRecord,
        _since: &str,
        _until: &str,
    ) -> impl Future<Output = Result<Option<Vec<ChangedPath>>, BitbucketError>> + Send {
        async { Ok(None) }
    }

    /// The API URL that reads `path` of the repository (at `commit` when
    /// the listing named one), and its web URL: the entities' location.
    fn file_urls(
        &self,
        client: &Self::Client,
        record: &RepositoryRecord,
        commit: Option<&str>,
        path: &str,
    ) -> Option<(Url, String)>;

    /// The repository's default (main) branch as Bitbucket says now.
    fn default_branch(
        &self,
        client: &Self::Client,
        repo: &RepoRef,
    ) -> impl Future<Output = Result<Option<String>, BitbucketError>> + Send;

    /// The pull-request calls, counting into `stats`.
    fn pull_request_api(&self, stats: &Arc<RequestStats>) -> PullRequestApi;
}

/// What a pull-request check of a provider works with.
#[derive(Debug, Clone)]
pub(crate) struct PullRequestReads {
    pub api: PullRequestApi,
    /// `catalogPath` (a pattern when `glob`).
    pub catalog_path: String,
    pub glob: bool,
    /// Where this daemon is reached (from `webhooks.url`), for the link
    /// to a preview.
    pub preview_base: Option<String>,
}

/// A repository's files, for a glob: every path (relative to its root)
/// and the commit they are at, when the listing names it.
#[derive(Debug, Default)]
pub(crate) struct FileList {
    pub paths: Vec<String>,
    pub commit: Option<String>,
}

/// What a listing found: the repositories that pass the filters (an error
/// when the listing is not complete: then nothing is removed) and what it
/// saw and met on the way, for the run's report.
#[derive(Debug)]
pub(crate) struct Listing {
    pub repositories: Result<Vec<Listed>, ListingError>,
    pub projects_seen: usize,
    pub repos_seen: usize,
    pub notices: Vec<String>,
    pub problems: Vec<Problem>,
}

impl Default for Listing {
    fn default() -> Self {
        Self {
            repositories: Ok(Vec::new()),
            projects_seen: 0,
            repos_seen: 0,
            notices: Vec::new(),
            problems: Vec::new(),
        }
    }
}

/// What a run's (or events') reads came to, for the report.
#[derive(Debug, Default)]
struct ReadTally {
    repos_read: usize,
    files_found: usize,
    location_files: usize,
    stale: Vec<String>,
    /// The files' problems and what applying them found, as they came.
    problems: Vec<Problem>,
}

impl ReadTally {
    fn add(&mut self, read: Read) -> impl Iterator<Item = UnitUpdate> {
        self.repos_read += 1;
        self.files_found += usize::from(read.found);
        self.location_files += read.location_files;
        self.stale.extend(read.stale);
        self.problems.extend(read.problems);
        std::iter::once(read.update).chain(read.generated)
    }

    fn report_into(self, report: &mut RunReport) {
        report.repos_read += self.repos_read;
        report.files_found += self.files_found;
        report.location_files += self.location_files;
        report.stale.extend(self.stale);
        report.problems.extend(self.problems);
    }
}

/// A configured provider of either flavour.
#[derive(Debug, Clone)]
pub(crate) struct Provider<F> {
    pub(super) flavour: F,
    /// Part of every change token: other settings, other entities.
    pub(super) fingerprint: String,
}

/// One file read, for the report.
#[derive(Debug)]
pub(super) struct Read {
    pub(super) update: UnitUpdate,
    pub(super) found: bool,
    pub(super) problems: Vec<Problem>,
    pub(super) location_files: usize,
    /// The file's URL when its read failed and its previous entities stay.
    pub(super) stale: Option<String>,
    /// The repository's generated unit, when it changes (applied together
    /// with the file's, so a catalog file replaces it in one apply).
    pub(super) generated: Option<UnitUpdate>,
}

impl<F: Flavour> Provider<F> {
    pub(crate) fn new(flavour: F) -> Self {
        let fingerprint = pipeline::settings_fingerprint(
            &flavour.shared().catalog,
            &flavour.shared().catalog_path,
        );
        Self {
            flavour,
            fingerprint,
        }
    }

    pub(crate) fn id(&self) -> &str {
        self.flavour.id()
    }

    pub(crate) fn target(&self) -> &str {
        self.flavour.target()
    }

    pub(crate) fn schedule(&self) -> &Schedule {
        &self.flavour.shared().schedule
    }

    pub(crate) fn deletion_guard(&self) -> DeletionGuard {
        self.flavour.shared().deletion_guard
    }

    /// Runs discovery once. Never panics. Removes nothing unless the
    /// listing completed; every file read is applied as it comes, so a run
    /// cut short keeps what it read.
    pub(crate) async fn run(&self, ctx: &RunContext<'_>) -> RunReport {
        let started = Instant::now();
        let mut report = RunReport::new(self.id());
        let client = self.flavour.client(&ctx.stats);
        if let Err(error) = self.discover(&client, ctx, &mut report).await {
            report.outcome = Outcome::Failed {
                error: error.to_string(),
            };
        }
        pipeline::finish(&mut report, &ctx.stats, started);
        report
    }

    async fn discover(
        &self,
        client: &F::Client,
        ctx: &RunContext<'_>,
        report: &mut RunReport,
    ) -> Result<(), ListingError> {
        let listing = tokio::select! {
            listing = self.flavour.list(client, &self.fingerprint) => listing,
            () = ctx.stop.cancelled() => return Err(ListingError::Stopped),
        };
        report.projects_seen = listing.projects_seen;
        report.repos_seen = listing.repos_seen;
        report.notices.extend(listing.notices);
        report.problems.extend(listing.problems);
        let listed = listing.repositories?;
        report.repos_matched = listed.len();
        // Generated units not listed (the option turned off) are removed
        // here, under the deletion guard.
        let generate = self.flavour.shared().generate.is_some();
        let units = listed
            .iter()
            .flat_map(|l| {
                let unit = l.record.catalog_url.clone();
                let generated = generate.then(|| generated::unit(&unit));
                std::iter::once(unit).chain(generated)
            })
            .collect();
        let held = ctx.sink.reconcile(units).await.err();
        let plan = plan::plan(listed, &ctx.known);
        report.repos_unchanged = plan.unchanged.len();
        for record in plan.unchanged {
            report.files_found += usize::from(record.catalog == CatalogFile::Present);
            report.problems.extend(record.problems);
        }
        ctx.progress.listed(
            report.repos_matched,
            report.repos_unchanged,
            plan.reads.len(),
        );
        let reads = stream::iter(plan.reads)
            // Once stopped, no new read starts; those under way finish.
            .take_until(ctx.stop.clone().cancelled_owned())
            .map(|listed| self.read(client, ctx, listed, false));
        // Unordered: a read waiting out a retry must not hold up the others.
        let reads = fan_out::fan_out(reads, || self.flavour.fan_out_width());
        apply_as_read(reads, ctx).await.report_into(report);
        if let Some(held) = held {
            report.outcome = Outcome::Held {
                message: held.message,
                would_remove: held.would_remove,
                of: held.of,
            };
        }
        Ok(())
    }

    /// Processes a changed catalog file, reading its targets through the
    /// provider's scope.
    pub(super) async fn process(
        &self,
        ctx: &RunContext<'_>,
        bytes: &[u8],
        location: &str,
        repo_info: &RepoInfo,
    ) -> FileOutcome {
        let files = self.flavour.files(&ctx.stats, location);
        pipeline::process_file(
            bytes,
            location,
            &files,
            &self.flavour.shared().catalog,
            repo_info,
        )
        .await
    }

    /// Reads one repository's catalog file; `changed`: an event says the
    /// repository changed (a run does not know, so a generated entity's
    /// code owners file is read again only then, or when never read).
    async fn read(
        &self,
        client: &F::Client,
        ctx: &RunContext<'_>,
        listed: Listed,
        changed: bool,
    ) -> Read {
        if let Some(glob) = &self.flavour.shared().catalog_glob {
            return self.read_glob(client, ctx, listed, glob, changed).await;
        }
        let Listed {
            mut record,
            file_url,
            change_token,
            repo_info,
        } = listed;
        let previous = ctx.known.get(&record.catalog_url);
        let settings = &self.flavour.shared().catalog;
        let max_bytes = settings.processing.limits.max_file_bytes;
        let fetched = self.flavour.fetch(client, &file_url, max_bytes).await;
        record.read_at = Some(chrono::Utc::now());
        let location = record.catalog_url.clone();
        let mut read = Read {
            update: UnitUpdate {
                unit: location.clone(),
                record: None,
                entities: None,
            },
            found: false,
            problems: Vec::new(),
            location_files: 0,
            stale: None,
            generated: None,
        };
        let had_generated = previous.map_or(self.flavour.shared().generate.is_some(), |p| {
            p.generated.is_some()
        });
        match fetched {
            Ok(None) => {
                record.catalog = CatalogFile::Missing;
                record.change_token = change_token;
                read.update.entities = Some(Vec::new());
                let codeowners =
                    generated::codeowners_url(&file_url, &self.flavour.shared().catalog_path);
                read.generated = self
                    .generate(client, &mut record, previous, codeowners, changed)
                    .await;
            }
            Err(err) => {
                unreadable(&mut record, &mut read, previous, &err);
                record.generated = previous.and_then(|p| p.generated.clone());
            }
            Ok(Some(bytes)) => {
                // Real entities replace the generated one in the same apply.
                if had_generated {
                    read.generated = Some(UnitUpdate::removal(&generated::unit(&location)));
                }
                let token =
                    change_token.unwrap_or_else(|| content_token(&bytes, &self.fingerprint));
                record.catalog = CatalogFile::Present;
                read.found = true;
                let unchanged = previous.filter(|p| {
                    p.catalog == CatalogFile::Present && p.change_token.as_ref() == Some(&token)
                });
                match unchanged {
                    // Same bytes under the same settings: the same entities.
                    Some(previous) => {
                        record.change_token = Some(token);
                        read.problems = previous.problems.clone();
                    }
                    None => {
                        let processed = self.process(ctx, &bytes, &location, &repo_info).await;
                        record.change_token = token_covering(
                            token,
                            processed.location_files,
                            self.flavour.shared().target_scope,
                        );
                        read.update.entities = Some(processed.entities);
                        read.problems = processed.problems;
                        read.location_files = processed.location_files;
                    }
                }
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
}

impl<F: Flavour> Provider<F> {
    /// The generated unit's update for a repository without a catalog file
    /// (`None`: leave it as served). Reads `.bitbucket/CODEOWNERS` (at
    /// `codeowners`) only when the repository changed or was never
    /// generated under these settings; otherwise the owner comes from the
    /// record.
    pub(super) async fn generate(
        &self,
        client: &F::Client,
        record: &mut RepositoryRecord,
        previous: Option<&RepositoryRecord>,
        codeowners: Option<Url>,
        changed: bool,
    ) -> Option<UnitUpdate> {
        let shared = self.flavour.shared();
        // Off: what was generated stays until the listing's reconcile
        // removes it under the deletion guard.
        let settings = shared.generate.as_ref()?;
        let token = generated::settings_token(settings);
        let kept = previous
            .and_then(|p| p.generated.as_ref())
            .filter(|g| g.settings == token);
        let unit = generated::unit(&record.catalog_url);
        if let (Some(kept), false) = (kept, changed) {
            // Rebuilt from the record, no request: unchanged, it changes
            // nothing served; if a real entity held the name and let it
            // go, the generated one is served again.
            record.generated = Some(kept.clone());
            return Some(UnitUpdate {
                unit,
                record: None,
                entities: Some(vec![generated::entity(record, settings, &kept.owner)]),
            });
        }
        let mut problem = None;
        let codeowners = match codeowners {
            Some(url) => match self
                .flavour
                .fetch(client, &url, generated::MAX_CODEOWNERS_BYTES)
                .await
            {
                Ok(Some(bytes)) if bytes.len() <= generated::MAX_CODEOWNERS_BYTES => Some(bytes),
                Ok(Some(_)) => {
                    problem = Some(format!(
                        "{} is larger than {} bytes; the configured owner is used",
                        generated::CODEOWNERS_PATH,
                        generated::MAX_CODEOWNERS_BYTES
                    ));
                    None
                }
                Ok(None) => None,
                Err(err) => {
                    if let Some(kept) = kept {
                        // Keep what is served; read again next time.
                        record.generated = Some(Box::new(Generated {
                            settings: String::new(),
                            ..Generated::clone(kept)
                        }));
                        return None;
                    }
                    problem = Some(format!(
                        "reading {} failed: {err}; the configured owner is used until it can be read",
                        generated::CODEOWNERS_PATH
                    ));
                    None
                }
            },
            None => None,
        };
        let (owner, owner_from) = generated::owner(codeowners.as_deref(), settings);
        let processed = generated::entity(record, settings, &owner);
        record.generated = Some(Box::new(Generated {
            entity_ref: processed.entity.entity_ref(),
            owner,
            owner_from,
            // A failed read is tried again next time.
            settings: if problem.is_some() {
                String::new()
            } else {
                token
            },
            problem: problem.map(|message| Problem::new(unit.clone(), ProblemKind::Read, message)),
        }));
        Some(UnitUpdate {
            unit,
            record: None,
            entities: Some(vec![processed]),
        })
    }
}

/// A catalog file that could not be read: its previous entities stay,
/// stale, when it had any.
pub(super) fn unreadable(
    record: &mut RepositoryRecord,
    read: &mut Read,
    previous: Option<&RepositoryRecord>,
    err: &BitbucketError,
) {
    let kept = previous.map_or(0, |p| p.entities);
    let message = if kept > 0 {
        format!("{err}; keeping its {kept} previous entities (stale)")
    } else {
        err.to_string()
    };
    record.catalog = CatalogFile::Unreadable;
    record.change_token = None;
    read.found = kept > 0;
    read.stale = (kept > 0).then(|| read.update.unit.clone());
    read.problems.push(Problem::new(
        read.update.unit.clone(),
        ProblemKind::Read,
        message,
    ));
}

/// Why a run's listing is not complete (then nothing is removed).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ListingError {
    #[error("the run was stopped before its listing completed; nothing was removed")]
    Stopped,
    #[error("listing projects failed: {0}")]
    Projects(#[source] BitbucketError),
    #[error("listing repositories of project {key} failed: {source}")]
    ProjectRepositories { key: String, source: BitbucketError },
    #[error("listing the projects of workspace {workspace} failed: {source}")]
    WorkspaceProjects {
        workspace: String,
        source: BitbucketError,
    },
    #[error("listing the repositories of workspace {workspace} failed: {source}")]
    WorkspaceRepositories {
        workspace: String,
        source: BitbucketError,
    },
    #[error("code search in project {key} failed: {source}")]
    CodeSearch { key: String, source: BitbucketError },
    #[error("code search in project {key} stopped being available mid-run: {reason}")]
    SearchWithdrawn { key: String, reason: String },
}

/// Why [`Flavour::listed_one`] gives no read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unlisted {
    /// The provider's workspace or filters leave it out, and why.
    LeftOut(String),
    /// The file is named by the main branch, which the event did not say.
    NeedsBranch,
}

/// A provider's reads of single repositories outside its runs (pushes,
/// refreshes): the run's own reads, without a listing. Object-safe, so the
/// scheduler treats both flavours alike.
pub(crate) trait RepositoryReads:
    std::fmt::Debug + Send + Sync + super::commit_reads::CommitReads
{
    /// The integration's `host[:port]`.
    fn host(&self) -> &str;

    /// The branch the filters name (`filters.branch`), if any.
    fn pinned_branch(&self) -> Option<&str>;

    /// See [`Flavour::listed_one`].
    fn listed_one(
        &self,
        stats: &Arc<RequestStats>,
        repo: &RepoRef,
        commit: Option<&str>,
    ) -> Result<Listed, Unlisted>;

    /// See [`Flavour::default_branch`].
    fn default_branch<'a>(
        &'a self,
        stats: &'a Arc<RequestStats>,
        repo: &'a RepoRef,
    ) -> BoxFuture<'a, Result<Option<String>, BitbucketError>>;

    /// What pull-request checks need, when `pullRequests.checks` is on.
    fn pull_requests(&self, stats: &Arc<RequestStats>) -> Option<PullRequestReads> {
        let _ = stats;
        None
    }

    /// Reads `reads` as a run would (same pace, budgets and processing),
    /// handing the results to `ctx.sink`.
    fn read_now<'a>(
        &'a self,
        ctx: &'a RunContext<'_>,
        reads: Vec<Listed>,
    ) -> BoxFuture<'a, RunReport>;
}

impl<F: Flavour> RepositoryReads for Provider<F> {
    fn host(&self) -> &str {
        self.flavour.host()
    }

    fn pull_requests(&self, stats: &Arc<RequestStats>) -> Option<PullRequestReads> {
        let shared = self.flavour.shared();
        shared.pull_request_checks.then(|| PullRequestReads {
            api: self.flavour.pull_request_api(stats),
            catalog_path: shared.catalog_path.clone(),
            glob: shared.catalog_glob.is_some(),
            // The daemon's public URL, as `webhooks.url` gives it.
            preview_base: shared.webhooks.as_ref().map(|w| {
                let target = w.target.as_str();
                target
                    .find("/api/events/http/")
                    .map_or(target, |end| &target[..end])
                    .to_owned()
            }),
        })
    }

    fn pinned_branch(&self) -> Option<&str> {
        self.flavour.pinned_branch()
    }

    fn listed_one(
        &self,
        stats: &Arc<RequestStats>,
        repo: &RepoRef,
        commit: Option<&str>,
    ) -> Result<Listed, Unlisted> {
        let client = self.flavour.client(stats);
        self.flavour
            .listed_one(&client, repo, commit, &self.fingerprint)
    }

    fn default_branch<'a>(
        &'a self,
        stats: &'a Arc<RequestStats>,
        repo: &'a RepoRef,
    ) -> BoxFuture<'a, Result<Option<String>, BitbucketError>> {
        Box::pin(async move {
            let client = self.flavour.client(stats);
            self.flavour.default_branch(&client, repo).await
        })
    }

    fn read_now<'a>(
        &'a self,
        ctx: &'a RunContext<'_>,
        reads: Vec<Listed>,
    ) -> BoxFuture<'a, RunReport> {
        Box::pin(async move {
            let started = Instant::now();
            let mut report = RunReport::new(self.id());
            let client = self.flavour.client(&ctx.stats);
            let reads = stream::iter(reads)
                .take_until(ctx.stop.clone().cancelled_owned())
                .map(|listed| self.read(&client, ctx, listed, true));
            let reads = fan_out::fan_out(reads, || self.flavour.fan_out_width());
            apply_as_read(reads, ctx).await.report_into(&mut report);
            pipeline::finish(&mut report, &ctx.stats, started);
            report
        })
    }
}

/// `token` as the change token of a read that followed `location_files`
/// Location targets, if it covers them. Targets can change on their own,
/// unless they are bound to the file's own repository: a commit token moves
/// with any push to it, so it covers them too; a content token does not.
pub(super) fn token_covering(
    token: String,
    location_files: usize,
    scope: TargetScope,
) -> Option<String> {
    let covered =
        location_files == 0 || (token.starts_with("commit:") && scope == TargetScope::Repository);
    covered.then_some(token)
}

/// `sha1:<content hash>@<settings fingerprint>`: a Server file's change token.
pub(super) fn content_token(bytes: &[u8], fingerprint: &str) -> String {
    format!(
        "sha1:{}@{fingerprint}",
        sha1_smol::Sha1::from(bytes).digest()
    )
}

/// Hands reads to the sink in batches (every [`BATCH_FILES`] files or
/// [`BATCH_EVERY`]), so what is read is served within seconds; once the run
/// is stopped, applies what it has and each read still under way as it ends.
async fn apply_as_read(reads: impl Stream<Item = Read>, ctx: &RunContext<'_>) -> ReadTally {
    futures::pin_mut!(reads);
    let mut tally = ReadTally::default();
    let mut pending = Vec::new();
    // One batch at a time is being applied; reads go on meanwhile.
    let mut applying: Option<BoxFuture<'_, Vec<Problem>>> = None;
    let mut due = Instant::now();
    let mut stopping = false;
    let mut reading = true;
    while reading || applying.is_some() || !pending.is_empty() {
        tokio::select! {
            next = reads.next(), if reading => match next {
                Some(read) => {
                    if pending.is_empty() {
                        due = Instant::now() + BATCH_EVERY;
                    }
                    pending.extend(tally.add(read));
                }
                None => reading = false,
            },
            Some(problems) = OptionFuture::from(applying.as_mut()), if applying.is_some() => {
                tally.problems.extend(problems);
                applying = None;
            }
            () = tokio::time::sleep_until(due.into()), if !pending.is_empty() && applying.is_none() => {}
            () = ctx.stop.cancelled(), if !stopping => stopping = true,
        }
        // Stopping or done reading: what is read is applied at once.
        let due_now = stopping || !reading || Instant::now() >= due;
        if applying.is_none() && !pending.is_empty() && (pending.len() >= BATCH_FILES || due_now) {
            applying = Some(ctx.sink.apply(std::mem::take(&mut pending)));
        }
    }
    tally
}
