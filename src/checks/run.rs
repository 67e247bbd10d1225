//! One pull request's check: the catalog files it changes, read at its
//! source commit and processed as a read of the provider would (its rules,
//! filters, budgets), collected instead of applied; compared with what the
//! repository serves; posted on the commit and kept as a preview.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::diff::diff;
use super::previews::{Preview, PreviewKey, PreviewProblem, Previews, preview_path};
use crate::bitbucket::RequestStats;
use crate::bitbucket::file_url::FileUrl;
use crate::bitbucket::pull_requests::{Annotation, Posted, RepoCoords, Report};
use crate::bitbucket::webhooks::PullRequest;
use crate::catalog::{Catalog, ProcessedEntity};
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
        if prs.glob {
            return Checked::Ignored(
                "pull requests are checked for a single catalogPath only, not a glob".into(),
            );
        }
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
        let mut listed = match self.reads.listed_one(&stats, &repository, None) {
            Ok(listed) => listed,
            Err(Unlisted::LeftOut(why)) => return Checked::Ignored(why),
            Err(Unlisted::NeedsBranch) => {
                return Checked::Ignored("its main branch is not known".into());
            }
        };
        let unit = listed.record.catalog_url.clone();
        let product = prs.api.product();
        let Ok(file) = FileUrl::parse(&unit, product) else {
            return Checked::Failed(format!("{unit} is not a file URL of this Bitbucket"));
        };
        let (owner, slug) = file.repository();
        let coords = RepoCoords {
            owner: owner.to_owned(),
            slug: slug.to_owned(),
        };
        let changed = match prs.api.changed_files(&coords, pr.id).await {
            Ok(changed) => changed,
            Err(err) => return Checked::Failed(err.to_string()),
        };
        let served = self.served(&unit);
        let follows_locations = served.iter().any(|e| e.entity.kind == "Location");
        let files: Vec<String> = changed
            .paths
            .iter()
            .filter(|p| {
                **p == prs.catalog_path
                    || (follows_locations && (p.ends_with(".yaml") || p.ends_with(".yml")))
            })
            .cloned()
            .collect();
        if files.is_empty() {
            return Checked::Ignored("it changes no catalog file".into());
        }
        listed.file_url = at_commit(
            &listed.file_url,
            product,
            &prs.catalog_path,
            &pr.source_commit,
        );
        let predicted = self.dry_read(listed, &unit).await;
        let mut preview = self.preview(&coords, pr, &unit, files, &served, predicted, product);
        if changed.truncated {
            preview.problems.push(PreviewProblem {
                path: String::new(),
                line: 1,
                column: 1,
                kind: "read".into(),
                entity_ref: None,
                message: "the pull request changes too many files to list them all; only the first were checked".into(),
            });
            preview.result = "fail";
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
                        "Code Insights is not available or not permitted on {}: pull-request checks are posted as build statuses linking to the preview; grant the integration's account the Insights permission (Data Center: repository write) or the Cloud scope `repository:write` for reports",
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

    /// What the repository serves now (its catalog file's and generated unit).
    fn served(&self, unit: &str) -> Vec<ProcessedEntity> {
        let mut served = self.catalog.unit_entities(self.source, unit);
        served.extend(
            self.catalog
                .unit_entities(self.source, &generated::unit(unit)),
        );
        served
    }

    /// Reads and processes the file as a read would, without applying.
    async fn dry_read(&self, listed: crate::discovery::plan::Listed, unit: &str) -> Predicted {
        let sink = Capture::default();
        let ctx = RunContext {
            stats: Arc::new(RequestStats::default()),
            progress: Arc::new(Progress::new()),
            // Nothing known: the file is read whatever was read before.
            known: Default::default(),
            sink: &sink,
            stop: self.stop.clone(),
        };
        let report = self.reads.read_now(&ctx, vec![listed]).await;
        let generated_unit = generated::unit(unit);
        let mut entities = None;
        let mut generated = None;
        for update in sink.updates.into_inner() {
            if update.unit == unit {
                entities = update.entities.or(entities);
            } else if update.unit == generated_unit {
                generated = update.entities.or(generated);
            }
        }
        Predicted {
            entities,
            generated,
            problems: report.problems,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn preview(
        &self,
        coords: &RepoCoords,
        pr: &PullRequest,
        unit: &str,
        files: Vec<String>,
        served: &[ProcessedEntity],
        predicted: Predicted,
        product: Product,
    ) -> Preview {
        let mut problems: Vec<PreviewProblem> = predicted
            .problems
            .iter()
            .map(|p| problem(p, product, pr))
            .collect();
        // Unreadable: what is served stays (as a read would keep it).
        let mut after = predicted.entities.unwrap_or_else(|| served.to_vec());
        // The generated entity stays unless the read replaced it.
        after.extend(predicted.generated.unwrap_or_default());
        let generated_unit = generated::unit(unit);
        let mut seen = HashSet::new();
        after.retain(|processed| {
            let key = processed.entity.key();
            let entity_ref = processed.entity.entity_ref();
            if !seen.insert(key.clone()) {
                problems.push(PreviewProblem {
                    path: file_path(unit, product),
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
                        path: file_path(unit, product),
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

/// What the dry read found.
struct Predicted {
    /// `None`: the file could not be read.
    entities: Option<Vec<ProcessedEntity>>,
    generated: Option<Vec<ProcessedEntity>>,
    problems: Vec<Problem>,
}

/// A sink that keeps what a read would apply.
#[derive(Default)]
struct Capture {
    updates: Mutex<Vec<UnitUpdate>>,
}

impl RunSink for Capture {
    fn apply(&self, updates: Vec<UnitUpdate>) -> BoxFuture<'_, Vec<Problem>> {
        self.updates.lock().extend(updates);
        Box::pin(async { Vec::new() })
    }

    fn reconcile(&self, _listed: HashSet<String>) -> BoxFuture<'_, Result<(), Held>> {
        Box::pin(async { Ok(()) })
    }
}

/// The API URL of the catalog file at `commit` instead of the branch.
fn at_commit(url: &Url, product: Product, catalog_path: &str, commit: &str) -> Url {
    let mut url = url.clone();
    match product {
        Product::Server => {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != "at")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.query_pairs_mut()
                .clear()
                .extend_pairs(kept)
                .append_pair("at", commit);
        }
        Product::Cloud => {
            // `…/src/{branch}/{path}` → `…/src/{commit}/{path}`.
            let segments: Vec<String> = url
                .path_segments()
                .map(|s| s.map(str::to_owned).collect())
                .unwrap_or_default();
            if let Some(src) = segments.iter().position(|s| s == "src") {
                let head: Vec<String> = segments[..=src].to_vec();
                if let Ok(mut path) = url.path_segments_mut() {
                    path.clear()
                        .extend(head)
                        .push(commit)
                        .extend(catalog_path.split('/'));
                }
            }
        }
    }
    url
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
    {
        message = format!(
            "{message} (the pull request comes from the fork {}/{}: give the integration's account read access to it)",
            fork.project
                .as_deref()
                .or(fork.workspace.as_deref())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_read_at_the_pull_requests_commit() {
        let server =
            Url::parse("http://h/rest/api/1.0/projects/P/repos/s/raw/catalog-info.yaml?at=main")
                .unwrap();
        let at = at_commit(&server, Product::Server, "catalog-info.yaml", "abc");
        assert_eq!(at.query(), Some("at=abc"));
        let cloud =
            Url::parse("http://h/2.0/repositories/ws/s/src/main/catalog-info.yaml").unwrap();
        let at = at_commit(&cloud, Product::Cloud, "catalog-info.yaml", "abc");
        assert_eq!(
            at.path(),
            "/2.0/repositories/ws/s/src/abc/catalog-info.yaml"
        );
    }
}
