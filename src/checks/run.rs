//! One pull request's check: the catalog files it changes (the provider's
//! `catalogPath`, or the paths its glob matches), read at its source commit
//! in the repository it comes from (its fork, when the integration can
//! read it) and processed as a read of the provider would (its rules,
//! filters, budgets; Location targets in the repository read at the same
//! commit), collected instead of applied; compared with what the
//! repository serves; posted on the commit and kept as a preview.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::diff::diff;
use super::previews::{Preview, PreviewKey, PreviewProblem, Previews, preview_path};
use crate::bitbucket::RequestStats;
use crate::bitbucket::file_url::FileUrl;
use crate::bitbucket::pull_requests::{Annotation, Posted, RepoCoords, Report};
use crate::bitbucket::webhooks::PullRequest;
use crate::catalog::entity::{ANNOTATION_LOCATION, ANNOTATION_ORIGIN_LOCATION};
use crate::catalog::{Catalog, ProcessedEntity};
use crate::discovery::at_commit::MAX_FILES_PER_REPOSITORY;
use crate::discovery::commit_reads::{FileAtCommit, SourceCommit};
use crate::discovery::plan::Listed;
use crate::discovery::provider::{PullRequestReads, RepositoryReads, Unlisted};
use crate::discovery::{
    Held, Problem, ProblemKind, Progress, RepoRef, RunContext, RunSink, UnitUpdate, generated,
};
use crate::integrations::Product;

/// The key of the report (and build status) the daemon posts.
pub(crate) const REPORT_KEY: &str = "bitbucket-catalogd";

/// What became of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Checked {
    /// Checked and posted (`insights` or `buildStatus`).
    Posted(&'static str),
    /// Nothing to check, and why; nothing was posted.
    Ignored(String),
    /// The check could not be made or posted.
    Failed(String),
}

/// What a check works with: one provider's reads and the catalog.
pub(crate) struct PullRequestCheck<'a> {
    /// The provider's id.
    pub source: &'a str,
    pub reads: &'a dyn RepositoryReads,
    pub catalog: &'a Catalog,
    pub previews: &'a Previews,
    pub stop: CancellationToken,
}

/// The pull request's catalog files and what the merge would serve.
struct Prediction {
    /// The changed paths the check is about (catalog files, and changed
    /// YAML a served Location may point at).
    files: Vec<String>,
    after: Vec<ProcessedEntity>,
    problems: Vec<Problem>,
}

impl PullRequestCheck<'_> {
    /// Checks `pr` into `repository`; `branch`: the branch the provider
    /// reads there when the records tell (else asked of Bitbucket).
    pub(crate) async fn run(
        &self,
        mut repository: RepoRef,
        branch: Option<String>,
        pr: &PullRequest,
    ) -> Checked {
        let stats = Arc::new(RequestStats::default());
        let Some(prs) = self.reads.pull_requests(&stats) else {
            return Checked::Ignored("pullRequests.checks is off for this provider".into());
        };
        // The filters first: they need no request.
        let mut named = repository.clone();
        named.main_branch = Some(pr.target_branch.clone());
        if let Err(Unlisted::LeftOut(why)) = self.reads.listed_one(&stats, &named, None) {
            return Checked::Ignored(why);
        }
        let branch = match branch.or_else(|| self.reads.pinned_branch().map(str::to_owned)) {
            Some(branch) => branch,
            None => match self.reads.default_branch(&stats, &repository).await {
                Ok(Some(branch)) => branch,
                Ok(None) => return Checked::Ignored("the repository is empty".into()),
                Err(err) => return Checked::Failed(err.to_string()),
            },
        };
        if pr.target_branch != branch {
            return Checked::Ignored(format!(
                "it merges into {}, the provider reads {branch}",
                pr.target_branch
            ));
        }
        if pr.source_commit.is_empty() {
            return Checked::Ignored("the event names no source commit".into());
        }
        repository.main_branch = Some(branch.clone());
        let listed = match self.reads.listed_one(&stats, &repository, None) {
            Ok(listed) => listed,
            Err(Unlisted::LeftOut(why)) => return Checked::Ignored(why),
            Err(Unlisted::NeedsBranch) => {
                return Checked::Ignored("its main branch is not known".into());
            }
        };
        let unit = listed.record.catalog_url.clone();
        let product = prs.api.product();
        let Some(coords) = FileUrl::parse(&unit, product)
            .ok()
            .map(|file| {
                let (owner, slug) = file.repository();
                RepoCoords {
                    owner: owner.to_owned(),
                    slug: slug.to_owned(),
                }
            })
            .or_else(|| coords_of(&repository, product))
        else {
            return Checked::Failed(format!("{unit} names no repository of this Bitbucket"));
        };
        let changed = match prs.api.changed_files(&coords, pr.id).await {
            Ok(changed) => changed,
            Err(err) => return Checked::Failed(err.to_string()),
        };
        let served = self.served(&unit);
        let reread = self.catalog_files(&prs, &changed.paths, &served, product);
        if reread.is_empty() {
            return Checked::Ignored("it changes no catalog file".into());
        }
        let files = shown_files(&changed.paths, &reread, &served);
        let mut reread = reread;
        let too_many = reread.len() > MAX_FILES_PER_REPOSITORY;
        reread.truncate(MAX_FILES_PER_REPOSITORY);
        let source = match &pr.fork {
            None => coords.clone(),
            Some(fork) => match coords_of(fork, product) {
                Some(fork) => fork,
                None => {
                    return Checked::Failed("the event names the fork without its owner".into());
                }
            },
        };
        let readable = match &pr.fork {
            None => true,
            Some(_) => match prs.api.can_read(&source).await {
                Ok(readable) => readable,
                Err(err) => return Checked::Failed(err.to_string()),
            },
        };
        let prediction = if readable {
            let at = SourceCommit {
                api: &prs.api,
                source: &source,
                target: &coords,
                branch: &branch,
                commit: &pr.source_commit,
            };
            self.predict(&listed, at, reread, files, &served).await
        } else {
            self.unreadable_fork(&unit, &source, files, &served)
        };
        let mut preview = self.preview(&coords, pr, &unit, &served, prediction, product);
        if too_many {
            fail_unread(
                &mut preview,
                format!(
                    "the pull request changes more than {MAX_FILES_PER_REPOSITORY} catalog files; only the first (by path) were checked"
                ),
            );
        }
        if changed.truncated {
            fail_unread(&mut preview, "the pull request changes too many files to list them all; only the first were checked".into());
        }
        let report = report(&preview, &prs, &repository);
        // Readable as soon as the report can point at it.
        preview.posted = "pending".into();
        self.previews.insert(preview.clone());
        let outcome = match prs.api.post(&coords, &pr.source_commit, &report).await {
            Ok(Posted::Insights) => Checked::Posted("insights"),
            Ok(Posted::BuildStatus) => {
                if self.previews.first_warning(self.reads.host()) {
                    tracing::warn!(
                        host = self.reads.host(),
                        "Code Insights is not available or not permitted on {}: pull-request checks are posted as build statuses linking to the preview; on Data Center, Code Insights needs Bitbucket 5.15+ and repository read, and a report is replaced only by the account that created it; on Cloud, grant the scope `repository:write` for reports",
                        self.reads.host()
                    );
                }
                Checked::Posted("buildStatus")
            }
            Err(err) => Checked::Failed(format!("the check could not be posted: {err}")),
        };
        preview.posted = match &outcome {
            Checked::Posted(how) => (*how).to_owned(),
            Checked::Failed(why) | Checked::Ignored(why) => why.clone(),
        };
        self.previews.insert(preview);
        outcome
    }

    /// The catalog files to read at the commit: the changed paths the
    /// provider's `catalogPath` (or glob) names; when a served Location may
    /// point at a changed YAML file, the files holding those Locations too.
    fn catalog_files(
        &self,
        prs: &PullRequestReads,
        changed: &[String],
        served: &[ProcessedEntity],
        product: Product,
    ) -> Vec<String> {
        let glob = self.reads.catalog_glob().filter(|_| prs.glob);
        let is_catalog = |p: &str| match glob {
            Some(glob) => glob.is_match(p),
            None => p == prs.catalog_path,
        };
        let mut files: Vec<String> = changed.iter().filter(|p| is_catalog(p)).cloned().collect();
        let target_changed = changed.iter().any(|p| !is_catalog(p) && is_yaml(p));
        if target_changed {
            for entity in served.iter().filter(|e| e.entity.kind == "Location") {
                let origin = match glob {
                    None => Some(prs.catalog_path.clone()),
                    Some(_) => origin_of(entity)
                        .and_then(|o| FileUrl::parse(o, product).ok().map(|file| file.path())),
                };
                files.extend(origin);
            }
        }
        files.sort();
        files.dedup();
        files
    }

    /// Reads `paths` at the commit and predicts what the repository would
    /// serve after the merge, as a read of the branch would make it.
    async fn predict(
        &self,
        listed: &Listed,
        at: SourceCommit<'_>,
        paths: Vec<String>,
        files: Vec<String>,
        served: &[ProcessedEntity],
    ) -> Prediction {
        let sink = NoApply;
        let ctx = RunContext {
            stats: Arc::new(RequestStats::default()),
            progress: Arc::new(Progress::new()),
            // Nothing known: every file is read whatever was read before.
            known: Default::default(),
            sink: &sink,
            stop: self.stop.clone(),
        };
        let read = self.reads.read_at_commit(&ctx, listed, at, paths).await;
        let mut problems = Vec::new();
        if self.reads.catalog_glob().is_none() {
            // One file: what it holds replaces what the repository serves.
            let after = match read.into_iter().next().map(|f| (f.location, f.outcome)) {
                Some((_, FileAtCommit::Read(outcome))) => {
                    problems = outcome.problems;
                    outcome.entities
                }
                Some((_, FileAtCommit::Missing)) => self
                    .reads
                    .generated_at_commit(&ctx, listed, at)
                    .await
                    .unwrap_or_default(),
                Some((location, FileAtCommit::Unreadable(err))) => {
                    problems.push(Problem::new(location, ProblemKind::Read, err.to_string()));
                    served.to_vec()
                }
                None => served.to_vec(),
            };
            return Prediction {
                files,
                after,
                problems,
            };
        }
        // A glob: the files read replace their own entities (and those of
        // their Location targets); the others stay as served.
        let mut touched = HashSet::new();
        let mut added = Vec::new();
        // A changed matching file is there at the commit (read or not).
        let mut present = false;
        for file in read {
            match file.outcome {
                FileAtCommit::Read(outcome) => {
                    present = true;
                    touched.insert(file.location);
                    added.extend(outcome.entities);
                    problems.extend(outcome.problems);
                }
                FileAtCommit::Missing => {
                    touched.insert(file.location);
                }
                // Unreadable: its entities stay, as a read would keep them.
                FileAtCommit::Unreadable(err) => {
                    present = true;
                    problems.push(Problem::new(
                        file.location,
                        ProblemKind::Read,
                        err.to_string(),
                    ));
                }
            }
        }
        let unit = generated::unit(&listed.record.catalog_url);
        let generated_served: HashSet<_> = self
            .catalog
            .unit_entities(self.source, &unit)
            .iter()
            .map(|e| e.entity.key())
            .collect();
        // Every file that served something is gone and none came: the read
        // after the merge lists the repository (as a glob read does), and
        // where the pattern matches no file left, generates the entity.
        let all_gone = !present
            && !touched.is_empty()
            && self.reads.generates()
            && served
                .iter()
                .filter(|e| !generated_served.contains(&e.entity.key()))
                .all(|e| origin_of(e).is_some_and(|o| touched.contains(o)));
        let mut generated_now = Vec::new();
        if all_gone {
            match self.reads.glob_matches_at_commit(at).await {
                Ok(true) => {}
                Ok(false) => {
                    generated_now = self
                        .reads
                        .generated_at_commit(&ctx, listed, at)
                        .await
                        .unwrap_or_default();
                }
                Err(err) => problems.push(Problem::new(
                    listed.record.catalog_url.clone(),
                    ProblemKind::Read,
                    format!(
                        "cannot list the repository's files at the pull request's commit, so whether it keeps a catalog file (else its entity is generated) is not known: {err}"
                    ),
                )),
            }
        }
        // A catalog file (or a generated entity made again) replaces the
        // generated entity.
        let replaced = !added.is_empty() || !generated_now.is_empty();
        let mut after: Vec<ProcessedEntity> = served
            .iter()
            .filter(|e| !origin_of(e).is_some_and(|o| touched.contains(o)))
            .filter(|e| !(replaced && generated_served.contains(&e.entity.key())))
            .cloned()
            .collect();
        after.extend(added);
        after.extend(generated_now);
        Prediction {
            files,
            after,
            problems,
        }
    }

    /// A pull request from a fork the integration cannot read: nothing is
    /// predicted and the check fails saying why, never a false pass.
    fn unreadable_fork(
        &self,
        unit: &str,
        fork: &RepoCoords,
        files: Vec<String>,
        served: &[ProcessedEntity],
    ) -> Prediction {
        let message = format!(
            "the pull request comes from the fork {}/{}, which the integration's account cannot read, so its catalog files were not checked: give the account read access to the fork (Data Center: REPO_READ on it; Cloud: access to its workspace and the scope repository)",
            fork.owner, fork.slug
        );
        if self
            .previews
            .first_warning(&format!("{} forks", self.reads.host()))
        {
            tracing::warn!(
                host = self.reads.host(),
                fork = format!("{}/{}", fork.owner, fork.slug),
                "{message}; checks of pull requests from forks it cannot read fail with this message"
            );
        }
        Prediction {
            files,
            after: served.to_vec(),
            problems: vec![Problem::new(unit, ProblemKind::Read, message)],
        }
    }

    /// What the repository serves now (its catalog file's and generated unit).
    fn served(&self, unit: &str) -> Vec<ProcessedEntity> {
        let mut served = self.catalog.unit_entities(self.source, unit);
        served.extend(
            self.catalog
                .unit_entities(self.source, &generated::unit(unit)),
        );
        served
    }

    fn preview(
        &self,
        coords: &RepoCoords,
        pr: &PullRequest,
        unit: &str,
        served: &[ProcessedEntity],
        prediction: Prediction,
        product: Product,
    ) -> Preview {
        let Prediction {
            files,
            mut after,
            problems,
        } = prediction;
        let mut problems: Vec<PreviewProblem> =
            problems.iter().map(|p| problem(p, product, pr)).collect();
        let generated_unit = generated::unit(unit);
        let mut seen = HashSet::new();
        after.retain(|processed| {
            let key = processed.entity.key();
            let entity_ref = processed.entity.entity_ref();
            let path = location_of(processed)
                .map(|l| file_path(l, product))
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| file_path(unit, product));
            if !seen.insert(key.clone()) {
                problems.push(PreviewProblem {
                    path,
                    line: 1,
                    column: 1,
                    kind: "conflict".into(),
                    entity_ref: Some(entity_ref.clone()),
                    message: format!("{entity_ref} is defined twice; the first one is kept"),
                });
                return false;
            }
            match self.catalog.owner(&key) {
                Some(owner)
                    if !(&*owner.source == self.source
                        && (&*owner.unit == unit || *owner.unit == generated_unit)) =>
                {
                    let repository = FileUrl::parse(&owner.unit, product)
                        .map(|f| {
                            let (o, s) = f.repository();
                            format!("{o}/{s}")
                        })
                        .unwrap_or_else(|_| owner.unit.to_string());
                    problems.push(PreviewProblem {
                        path,
                        line: 1,
                        column: 1,
                        kind: "conflict".into(),
                        entity_ref: Some(entity_ref.clone()),
                        message: format!(
                            "{entity_ref} is already provided by repository {repository} (provider {}, {}); the merge would not serve this copy",
                            owner.source, owner.unit
                        ),
                    });
                    false
                }
                _ => true,
            }
        });
        let changes = diff(&after, served);
        let mut entities: Vec<String> = after.iter().map(|e| e.entity.entity_ref()).collect();
        entities.sort();
        Preview {
            provider: self.source.to_owned(),
            project: coords.owner.clone(),
            repository: coords.slug.clone(),
            pull_request: pr.id,
            title: pr.title.clone(),
            source_branch: pr.source_branch.clone(),
            target_branch: pr.target_branch.clone(),
            commit: pr.source_commit.clone(),
            result: if problems.is_empty() { "pass" } else { "fail" },
            checked_at: chrono::Utc::now(),
            files,
            entities,
            added: changes.added,
            changed: changes.changed,
            removed: changes.removed,
            problems,
            posted: String::new(),
        }
    }
}

/// A sink that applies nothing: a check's reads never reach the catalog.
struct NoApply;

impl RunSink for NoApply {
    fn apply(&self, _updates: Vec<UnitUpdate>) -> BoxFuture<'_, Vec<Problem>> {
        Box::pin(async { Vec::new() })
    }

    fn reconcile(&self, _listed: HashSet<String>) -> BoxFuture<'_, Result<(), Held>> {
        Box::pin(async { Ok(()) })
    }
}

/// The repository an event names, as the pull-request calls name it:
/// Data Center by project key, Cloud by workspace.
fn coords_of(repo: &RepoRef, product: Product) -> Option<RepoCoords> {
    let owner = match product {
        Product::Server => repo.project.as_deref(),
        Product::Cloud => repo.workspace.as_deref(),
    }?;
    Some(RepoCoords {
        owner: owner.to_owned(),
        slug: repo.slug.clone(),
    })
}

fn is_yaml(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml")
}

/// The paths a preview names: the catalog files read, and the changed
/// YAML files a served Location may point at.
fn shown_files(changed: &[String], read: &[String], served: &[ProcessedEntity]) -> Vec<String> {
    let follows_locations = served.iter().any(|e| e.entity.kind == "Location");
    let mut files: Vec<String> = changed
        .iter()
        .filter(|p| read.contains(p) || (follows_locations && is_yaml(p)))
        .cloned()
        .collect();
    for path in read {
        if !files.contains(path) {
            files.push(path.clone());
        }
    }
    files
}

/// The file an entity came from (its `managed-by-location`).
fn location_of(entity: &ProcessedEntity) -> Option<&str> {
    annotation_url(entity, ANNOTATION_LOCATION)
}

/// The catalog file whose read gave the entity (through its Location
/// targets too): its `managed-by-origin-location`.
fn origin_of(entity: &ProcessedEntity) -> Option<&str> {
    annotation_url(entity, ANNOTATION_ORIGIN_LOCATION)
}

fn annotation_url<'e>(entity: &'e ProcessedEntity, key: &str) -> Option<&'e str> {
    entity
        .entity
        .metadata
        .annotations
        .get(key)
        .and_then(|l| l.strip_prefix("url:"))
}

/// The path of `url` (a file's browse URL) in its repository.
fn file_path(url: &str, product: Product) -> String {
    FileUrl::parse(url, product)
        .map(|f| f.path())
        .unwrap_or_default()
}

/// Where a problem is: its file, line and column.
fn position(problem: &Problem, product: Product) -> (String, u32, u32) {
    (
        file_path(&problem.url, product),
        problem.line,
        problem.column,
    )
}

fn problem(problem: &Problem, product: Product, pr: &PullRequest) -> PreviewProblem {
    let (path, line, column) = position(problem, product);
    let mut message = problem.message.clone();
    if problem.kind == ProblemKind::Read
        && let Some(fork) = &pr.fork
        && !message.contains("comes from the fork")
    {
        message = format!(
            "{message} (the pull request comes from the fork {}/{}: give the integration's account read access to it)",
            coords_of(fork, product)
                .map(|c| c.owner)
                .unwrap_or_default(),
            fork.slug
        );
    }
    PreviewProblem {
        path,
        line,
        column,
        kind: serde_json::to_value(problem.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        entity_ref: problem.entity_ref.clone(),
        message,
    }
}

/// The report for `preview`: its diff in the details, one annotation per
/// problem.
fn report(preview: &Preview, prs: &PullRequestReads, repository: &RepoRef) -> Report {
    let path = preview_path(
        &preview.provider,
        &preview.project,
        &preview.repository,
        preview.pull_request,
    );
    let link = match &prs.preview_base {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        // Without a public URL, the pull request's repository.
        None => repository.web_url.clone().unwrap_or_default(),
    };
    let mut details = Vec::new();
    let refs = |items: Vec<String>| items.join(", ");
    if !preview.added.is_empty() {
        details.push(format!(
            "Adds {}.",
            refs(preview.added.iter().map(|a| a.entity_ref.clone()).collect())
        ));
    }
    if !preview.changed.is_empty() {
        details.push(format!(
            "Changes {}.",
            refs(
                preview
                    .changed
                    .iter()
                    .map(|c| format!("{} ({})", c.entity_ref, c.fields.join(", ")))
                    .collect()
            )
        ));
    }
    if !preview.removed.is_empty() {
        details.push(format!("Removes {}.", refs(preview.removed.clone())));
    }
    for p in &preview.problems {
        details.push(format!("{}:{}: {}", p.path, p.line, p.message));
    }
    if details.is_empty() {
        details.push("The merge changes no entity.".into());
    }
    let summary = format!(
        "{} added, {} changed, {} removed, {} problems",
        preview.added.len(),
        preview.changed.len(),
        preview.removed.len(),
        preview.problems.len()
    );
    Report {
        key: REPORT_KEY.to_owned(),
        title: "Backstage catalog".to_owned(),
        passed: preview.passed(),
        summary,
        details: details.join("\n"),
        link,
        data: vec![
            ("Added".into(), preview.added.len() as u64),
            ("Changed".into(), preview.changed.len() as u64),
            ("Removed".into(), preview.removed.len() as u64),
            ("Problems".into(), preview.problems.len() as u64),
        ],
        annotations: preview
            .problems
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.path.is_empty())
            .map(|(i, p)| Annotation {
                path: p.path.clone(),
                line: p.line,
                message: p.message.clone(),
                external_id: i.to_string(),
            })
            .collect(),
    }
}

/// Which preview a closed pull request leaves.
pub(crate) fn closed_key(source: &str, repository: &RepoRef, id: u64) -> PreviewKey {
    // Cloud previews are under the workspace, Data Center's the project.
    let owner = repository
        .workspace
        .as_deref()
        .or(repository.project.as_deref())
        .unwrap_or_default();
    PreviewKey::new(source, owner, &repository.slug, id)
}

/// Fails `preview` for files the check could not read: a problem of no file.
fn fail_unread(preview: &mut Preview, message: String) {
    preview.problems.push(PreviewProblem {
        path: String::new(),
        line: 1,
        column: 1,
        kind: "read".into(),
        entity_ref: None,
        message,
    });
    preview.result = "fail";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(project: Option<&str>, workspace: Option<&str>) -> RepoRef {
        RepoRef {
            project: project.map(str::to_owned),
            workspace: workspace.map(str::to_owned),
            slug: "svc".into(),
            id: None,
            web_url: None,
            archived: false,
            main_branch: None,
        }
    }

    #[test]
    fn a_fork_is_named_by_project_on_data_center_and_workspace_on_cloud() {
        // Cloud payloads carry a project too: it is not the owner.
        let fork = repo(Some("PROJ"), Some("acme"));
        let cloud = coords_of(&fork, Product::Cloud).unwrap();
        assert_eq!((cloud.owner.as_str(), cloud.slug.as_str()), ("acme", "svc"));
        let server = coords_of(&fork, Product::Server).unwrap();
        assert_eq!(server.owner, "PROJ");
        assert_eq!(coords_of(&repo(None, None), Product::Server), None);
    }

    #[test]
    fn the_files_shown_are_those_read_and_the_changed_yaml_a_location_may_name() {
        let changed = vec![
            "a.yaml".to_owned(),
            "catalog-info.yaml".into(),
            "x.md".into(),
        ];
        let read = vec!["catalog-info.yaml".to_owned()];
        assert_eq!(shown_files(&changed, &read, &[]), ["catalog-info.yaml"]);
        assert!(is_yaml("docs/more.yml") && !is_yaml("README.md"));
    }
}
