//! Catalog processing: one discovered file (and every file its Location
//! entities lead to) → the entities Backstage would accept, plus a problem for
//! everything it would reject. The steps and their all-or-nothing scopes
//! follow Backstage's orchestrator and processing engine:
//!
//! - A file whose documents do not all parse, are not all objects with a
//!   valid envelope, or are not all allowed by `catalog.rules` yields nothing
//!   (in Backstage the reading location's result is not ok, so none of its
//!   output is stored).
//! - Each remaining entity is validated and processed on its own; a failure
//!   drops that entity only.
//! - A Location entity is kept only if all of its targets could be read and
//!   processed (Backstage fails the Location entity otherwise); the entities
//!   of its targets come with it ([`targets`]); `$text`/`$json`/`$yaml`
//!   placeholders are filled in ([`placeholders`]).

mod placeholders;
mod targets;

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use futures::future::BoxFuture;
use regex::Regex;
use serde_json::{Map, Value};

use super::entity::{
    ANNOTATION_DEFAULT_BRANCH, ANNOTATION_EDIT_URL, ANNOTATION_LOCATION,
    ANNOTATION_ORIGIN_LOCATION, ANNOTATION_SOURCE_LOCATION, ANNOTATION_VIEW_URL, Entity,
};
use super::parse::{ParseLimits, Part, Wanted, locate, parse_catalog_file};
use super::problem::{Problem, ProblemKind};
use super::relations;
use super::rules::CatalogRules;
use super::unit::ProcessedEntity;
use super::validate::{
    BuiltinKind, Failures, Invalid, check_envelope, entity_failures, envelope_failures,
};
use placeholders::UnreadPlaceholder;

/// Limits on processing, from `catalog.processing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessingConfig {
    pub limits: ParseLimits,
    /// How many Location entities deep targets are followed.
    pub max_location_depth: usize,
    /// Targets one Location entity may list.
    pub max_location_targets: usize,
    /// Files read through Location entities per discovered file.
    pub max_location_files: usize,
    /// Bytes Location targets and placeholders may add to one discovered
    /// file (each placeholder use counts, even of a file read before).
    pub max_expanded_bytes: usize,
}

/// The default of `catalog.processing.maxExpandedSize`.
pub(crate) const DEFAULT_MAX_EXPANDED_BYTES: usize = 4 * 1024 * 1024;

impl Default for ProcessingConfig {
    fn default() -> Self {
        Self {
            limits: ParseLimits::default(),
            max_location_depth: 5,
            max_location_targets: 50,
            max_location_files: 100,
            max_expanded_bytes: DEFAULT_MAX_EXPANDED_BYTES,
        }
    }
}

/// Why a file could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL is not a file on this Bitbucket; no request was made.
    #[error("{0}")]
    Refused(String),
    /// The request failed.
    #[error("{0}")]
    Failed(String),
}

/// Why a target could not become a file's address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// A local file named by an absolute path (`validate` on disk).
    #[error("'{target}' is an absolute path; give a path relative to the file")]
    AbsolutePath { target: String },
    /// The SCM's URL rules refused it; its message is the whole story.
    #[error(transparent)]
    Url(Box<dyn std::error::Error + Send + Sync>),
}

/// Where files come from, and the SCM's URL rules.
pub trait FileSource: Sync {
    /// The file at `url` (a web URL); `Ok(None)` when it does not exist.
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, FetchError>>;
    /// `target` resolved against the file `base` (the integration's `resolveUrl`).
    fn resolve(&self, target: &str, base: &str) -> Result<String, ResolveError>;
    /// What the location processors derive from the file's URL, read from
    /// one parse of it. By default only its directory.
    fn describe(&self, url: &str) -> FileFacts {
        FileFacts {
            directory: self.resolve("./", url).ok(),
            ..FileFacts::default()
        }
    }
}

/// What a file's URL says for its entities' annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileFacts {
    /// The integration's `resolveEditUrl`.
    pub edit_url: Option<String>,
    /// `./` resolved against the file: its directory (`source-location`).
    pub directory: Option<String>,
    /// The web URL of the repository holding the file.
    pub repo_url: Option<String>,
    /// The annotation key naming that repository (`<host>/repo-url`).
    pub repo_url_annotation: Option<String>,
}

/// What the listing told us about the discovered file's repository.
#[derive(Debug, Clone, Default)]
pub struct RepoInfo {
    /// The discovered repository's default branch, if listed.
    pub default_branch: Option<DefaultBranch>,
}

/// A listed repository's default branch, for the file's entities when
/// they lie in that repository.
#[derive(Debug, Clone)]
pub struct DefaultBranch {
    /// The repository's web URL, as [`FileFacts::repo_url`] names it.
    pub repo: String,
    pub branch: String,
}

/// Everything one discovered file led to.
#[derive(Debug, Default)]
pub(crate) struct TreeOutcome {
    pub entities: Vec<ProcessedEntity>,
    pub problems: Vec<Problem>,
    /// Files read through Location entities (requests spent).
    pub files_read: usize,
}

const REJECTED_URL: &str = "https://backstage.io/annotation-rejected-for-security-reasons";

/// The most problems one file reports; past it they are counted ("and N
/// more"): a generated file with thousands of mistakes costs a bounded
/// record, page and report.
pub(crate) const MAX_PROBLEMS_PER_FILE: usize = 100;

/// Appended to a file's problems when the whole file is dropped.
const NOTHING_KEPT: &str = "; none of this file's entities are kept";

pub(crate) struct Processor<'a, S: FileSource> {
    pub source: &'a S,
    pub rules: &'a CatalogRules,
    pub config: &'a ProcessingConfig,
    pub repo: &'a RepoInfo,
}

enum Visit {
    InProgress,
    Done(Option<Vec<ProcessedEntity>>),
}

#[derive(Default)]
struct Walk {
    visited: HashMap<String, Visit>,
    files_read: usize,
    problems: Vec<Problem>,
    /// Bytes added so far through Location targets and placeholders.
    expanded_bytes: usize,
    /// Placeholder files read so far (`None`: missing, `Err`: why the read
    /// failed): each is read once, failed or not.
    placeholder_files: HashMap<String, Result<Option<Vec<u8>>, UnreadPlaceholder>>,
    /// Problems whose field is placed once their file's processing ends.
    unplaced: Vec<Unplaced>,
    /// Per file URL: problems reported, and those past the cap.
    per_file: HashMap<String, (usize, usize)>,
}

/// A problem (by index in [`Walk::problems`]) about a field of its document.
struct Unplaced {
    index: usize,
    path: Vec<String>,
    part: Part,
}

/// A discovered file grown past `catalog.processing.maxExpandedSize`.
#[derive(Debug, Clone, thiserror::Error)]
enum Overflow {
    #[error(
        "{what} would expand this discovered file by more than catalog.processing.maxExpandedSize ({limit} bytes)"
    )]
    WouldExpand { what: String, limit: usize },
    #[error(
        "{what} is not read: this discovered file already expanded by more than catalog.processing.maxExpandedSize ({limit} bytes)"
    )]
    Full { what: String, limit: usize },
}

impl Walk {
    /// Records `problem` unless its file already has
    /// [`MAX_PROBLEMS_PER_FILE`]; `field` (a path in its document and the
    /// part at fault) is placed when the file is done (`None`: the
    /// document's first node).
    fn report(&mut self, problem: Problem, field: Option<(Vec<String>, Part)>) {
        if !self.room_for(&problem.url) {
            return;
        }
        if problem.document.is_some() {
            let (path, part) = field.unwrap_or((Vec::new(), Part::Value));
            self.unplaced.push(Unplaced {
                index: self.problems.len(),
                path,
                part,
            });
        }
        self.problems.push(problem);
    }

    /// Records `problem`, which has its position already, unless its file
    /// already has [`MAX_PROBLEMS_PER_FILE`].
    fn report_placed(&mut self, problem: Problem) {
        if self.room_for(&problem.url) {
            self.problems.push(problem);
        }
    }

    /// Whether another problem of `url` is listed (else it is counted).
    fn room_for(&mut self, url: &str) -> bool {
        let (shown, more) = self.per_file.entry(url.to_owned()).or_default();
        if *shown >= MAX_PROBLEMS_PER_FILE {
            *more += 1;
            return false;
        }
        *shown += 1;
        true
    }

    /// Counts `count` problems of `url` that were not even made.
    fn not_listed(&mut self, url: &str, count: usize) {
        if count > 0 {
            self.per_file.entry(url.to_owned()).or_default().1 += count;
        }
    }

    /// Gives the problems of the file `url` (content `bytes`) their line
    /// and column, and says how many were past the cap.
    fn place(&mut self, url: &str, bytes: &[u8], limits: &ParseLimits) {
        let problems = &self.problems;
        let (mine, others): (Vec<Unplaced>, Vec<Unplaced>) = std::mem::take(&mut self.unplaced)
            .into_iter()
            .partition(|u| problems.get(u.index).is_some_and(|p| p.url == url));
        self.unplaced = others;
        if !mine.is_empty() {
            let wanted: Vec<Wanted> = mine
                .iter()
                .map(|u| Wanted {
                    document: self
                        .problems
                        .get(u.index)
                        .and_then(|p| p.document)
                        .unwrap_or(1),
                    path: u.path.clone(),
                    part: u.part,
                })
                .collect();
            let positions = locate(bytes, &wanted, limits);
            for (unplaced, position) in mine.iter().zip(positions) {
                if let Some(problem) = self.problems.get_mut(unplaced.index) {
                    problem.line = position.line;
                    problem.column = position.column;
                }
            }
        }
        self.sort_by_position(url);
        let more = self.per_file.get(url).map_or(0, |(_, more)| *more);
        if more > 0 {
            let kind = self
                .problems
                .iter()
                .rev()
                .find(|p| p.url == url)
                .map_or(ProblemKind::Entity, |p| p.kind);
            self.problems.push(Problem::new(
                url,
                kind,
                format!(
                    "and {more} more problem(s) in this file, not listed (at most {MAX_PROBLEMS_PER_FILE} are); fix these and check again"
                ),
            ));
            self.per_file
                .insert(url.to_owned(), (MAX_PROBLEMS_PER_FILE, 0));
        }
    }

    /// The problems of `url` in the order of the file, as a compiler lists
    /// them (they stay in their slots among other files' problems).
    fn sort_by_position(&mut self, url: &str) {
        if !self.per_file.contains_key(url) {
            return;
        }
        let slots: Vec<usize> = self
            .problems
            .iter()
            .enumerate()
            .filter(|(_, p)| p.url == url)
            .map(|(i, _)| i)
            .collect();
        let mut mine: Vec<Problem> = slots.iter().map(|&i| self.problems[i].clone()).collect();
        mine.sort_by_key(|p| (p.line, p.column));
        for (slot, problem) in slots.into_iter().zip(mine) {
            self.problems[slot] = problem;
        }
    }

    /// Counts `bytes` more against `maxExpandedSize`.
    fn expand(
        &mut self,
        bytes: usize,
        config: &ProcessingConfig,
        what: &str,
    ) -> Result<(), Overflow> {
        self.expanded_bytes = self.expanded_bytes.saturating_add(bytes);
        if self.expanded_bytes > config.max_expanded_bytes {
            return Err(Overflow::WouldExpand {
                what: what.to_owned(),
                limit: config.max_expanded_bytes,
            });
        }
        Ok(())
    }

    /// Whether another file may be read at all: not once over
    /// `maxExpandedSize` (its bytes could not be used anyway).
    fn has_room(&self, config: &ProcessingConfig, what: &str) -> Result<(), Overflow> {
        if self.expanded_bytes > config.max_expanded_bytes {
            return Err(Overflow::Full {
                what: what.to_owned(),
                limit: config.max_expanded_bytes,
            });
        }
        Ok(())
    }
}

impl<S: FileSource> Processor<'_, S> {
    /// Processes the discovered file at `url` with content `bytes`; it is
    /// its own origin.
    pub(crate) async fn process_tree(&self, url: &str, bytes: &[u8]) -> TreeOutcome {
        let mut walk = Walk::default();
        walk.visited.insert(url.to_owned(), Visit::InProgress);
        let entities = self.process_file(&mut walk, url, bytes, url, 0).await;
        let mut seen = HashSet::new();
        // The same file reached twice yields the same entities; keep one.
        let entities = entities
            .unwrap_or_default()
            .into_iter()
            .filter(|p| {
                seen.insert((
                    p.entity.key(),
                    p.entity
                        .metadata
                        .annotations
                        .get(ANNOTATION_LOCATION)
                        .cloned(),
                ))
            })
            .collect();
        TreeOutcome {
            entities,
            problems: walk.problems,
            files_read: walk.files_read,
        }
    }

    /// `None` when the file yields nothing (its problems are recorded).
    fn process_file<'w>(
        &'w self,
        walk: &'w mut Walk,
        url: &'w str,
        bytes: &'w [u8],
        origin: &'w str,
        depth: usize,
    ) -> BoxFuture<'w, Option<Vec<ProcessedEntity>>> {
        Box::pin(async move {
            let kept = match self.accepted_documents(walk, url, bytes, origin) {
                Some(documents) => {
                    let mut kept = Vec::new();
                    for (number, doc) in documents {
                        kept.extend(
                            self.process_entity(walk, number, doc, url, origin, depth)
                                .await,
                        );
                    }
                    Some(kept)
                }
                None => None,
            };
            walk.place(url, bytes, &self.config.limits);
            kept
        })
    }

    /// The file's documents, annotated, when every one of them parses, is
    /// an entity envelope and is allowed here; `None` drops the whole file.
    fn accepted_documents(
        &self,
        walk: &mut Walk,
        url: &str,
        bytes: &[u8],
        origin: &str,
    ) -> Option<Vec<(usize, Map<String, Value>)>> {
        let parsed = match parse_catalog_file(bytes, &self.config.limits) {
            Ok(parsed) => parsed,
            Err(err) => {
                walk.report(Problem::new(url, ProblemKind::Parse, err.to_string()), None);
                return None;
            }
        };
        if !parsed.errors.is_empty() {
            for err in parsed.errors {
                // The parser's own position; nothing left to place.
                walk.report_placed(
                    Problem::new(
                        url,
                        ProblemKind::Parse,
                        format!("{}{NOTHING_KEPT}", err.message),
                    )
                    .in_document(err.document)
                    .at_position(err.position.line, err.position.column),
                );
            }
            entity_problems_anyway(walk, url, &parsed.documents);
            return None;
        }
        if !envelopes_valid(walk, url, &parsed.documents) {
            entity_problems_anyway(walk, url, &parsed.documents);
            return None;
        }
        let mut documents = parsed.documents;
        for (_, doc) in &mut documents {
            self.annotate(doc, url, origin);
        }
        if self.kinds_allowed(walk, url, origin, &documents) {
            Some(documents)
        } else {
            entity_problems_anyway(walk, url, &documents);
            None
        }
    }

    /// Whether `catalog.rules` allow every document's kind from `origin`;
    /// a problem for each one they do not.
    fn kinds_allowed(
        &self,
        walk: &mut Walk,
        url: &str,
        origin: &str,
        documents: &[(usize, Map<String, Value>)],
    ) -> bool {
        let mut allowed_all = true;
        for (number, doc) in documents {
            let kind = str_at(doc, &["kind"]).unwrap_or_default();
            let spec_type = str_at(doc, &["spec", "type"]);
            if !self.rules.is_allowed(kind, spec_type, "url", origin) {
                let allowed = self.rules.allowed_kinds("url", origin);
                walk.report(
                    Problem::new(
                        url,
                        ProblemKind::NotAllowed,
                        format!(
                            "kind {kind} is not allowed from location url:{origin} by catalog.rules (allowed here: {}){NOTHING_KEPT}",
                            if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") }
                        ),
                    )
                    .in_document(*number)
                    .for_entity(doc_ref(doc)),
                    Some((vec!["kind".to_owned()], Part::Value)),
                );
                allowed_all = false;
            }
        }
        allowed_all
    }

    /// One document → the entity (and, for a Location, everything under
    /// it); nothing when it is rejected (its problem is recorded).
    async fn process_entity(
        &self,
        walk: &mut Walk,
        number: usize,
        mut doc: Map<String, Value>,
        url: &str,
        origin: &str,
        depth: usize,
    ) -> Vec<ProcessedEntity> {
        let entity_ref = doc_ref(&doc);
        let reject = |walk: &mut Walk, message: String, field: Option<(Vec<String>, Part)>| {
            walk.report(
                Problem::new(url, ProblemKind::Entity, message)
                    .in_document(number)
                    .for_entity(entity_ref.clone()),
                field,
            );
            Vec::new()
        };
        if let Err((err, path)) = self.resolve_placeholders(walk, &mut doc, url).await {
            return reject(walk, err.to_string(), Some((path, Part::Value)));
        }
        // Every failure at once, each at its field; the verdict is the one
        // of the first, as in Backstage.
        let mut failures = Failures::new(MAX_PROBLEMS_PER_FILE);
        let builtin = entity_failures(&doc, &mut failures);
        if !failures.is_empty() {
            for invalid in failures.list {
                let field = invalid_field(&doc, &invalid);
                reject(walk, invalid.to_string(), Some(field));
            }
            walk.not_listed(url, failures.more);
            return Vec::new();
        }
        let entity: Entity = match serde_json::from_value(Value::Object(doc)) {
            Ok(entity) => entity,
            Err(err) => return reject(walk, err.to_string(), None),
        };
        // Derived once: the catalog indexes these very references.
        let references = match relations::references(&entity) {
            Ok(references) => references.into_boxed_slice(),
            Err(invalid) => {
                // Rare: the entity back as JSON only to place the field.
                let field = match serde_json::to_value(&entity) {
                    Ok(Value::Object(doc)) => invalid_field(&doc, &invalid),
                    _ => (Vec::new(), Part::Value),
                };
                return reject(walk, invalid.to_string(), Some(field));
            }
        };
        let processed = ProcessedEntity { entity, references };
        if builtin != Some(BuiltinKind::Location) {
            return vec![processed];
        }
        let location = &processed.entity;
        match self
            .follow(walk, location, number, url, origin, depth)
            .await
        {
            Some(children) => std::iter::once(processed).chain(children).collect(),
            None => Vec::new(),
        }
    }

    /// What the location processors add: `managed-by-location` and
    /// `-origin-location` always; view/edit/source URLs, the repository and
    /// its default branch unless the file set them.
    fn annotate(&self, doc: &mut Map<String, Value>, url: &str, origin: &str) {
        let Some(Value::Object(metadata)) = doc.get_mut("metadata") else {
            return;
        };
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        // Malformed annotations are left for validation to report.
        let Value::Object(annotations) = annotations else {
            return;
        };
        annotations.insert(ANNOTATION_LOCATION.into(), format!("url:{url}").into());
        annotations.insert(
            ANNOTATION_ORIGIN_LOCATION.into(),
            format!("url:{origin}").into(),
        );
        let mut defaults: Vec<(String, String)> =
            vec![(ANNOTATION_VIEW_URL.into(), url.to_owned())];
        let facts = self.source.describe(url);
        if let Some(edit) = facts.edit_url {
            defaults.push((ANNOTATION_EDIT_URL.into(), edit));
        }
        if let Some(dir) = facts.directory {
            defaults.push((ANNOTATION_SOURCE_LOCATION.into(), format!("url:{dir}")));
        }
        let repo_url = facts.repo_url;
        if let (Some(key), Some(repo_url)) = (facts.repo_url_annotation, &repo_url) {
            defaults.push((key, repo_url.clone()));
        }
        if let (Some(listed), Some(repo_url)) = (&self.repo.default_branch, &repo_url)
            && listed.repo == *repo_url
        {
            defaults.push((ANNOTATION_DEFAULT_BRANCH.into(), listed.branch.clone()));
        }
        for (key, value) in defaults {
            annotations.entry(key).or_insert(Value::String(value));
        }
        // Backstage's stitcher neutralises script URLs in these two.
        for key in [ANNOTATION_VIEW_URL, ANNOTATION_EDIT_URL] {
            if let Some(Value::String(value)) = annotations.get_mut(key)
                && is_script_url(value)
            {
                *value = REJECTED_URL.to_owned();
            }
        }
    }
}

/// Whether every document has a valid entity envelope; a problem for each
/// one that has not.
fn envelopes_valid(walk: &mut Walk, url: &str, documents: &[(usize, Map<String, Value>)]) -> bool {
    let mut valid_all = true;
    for (number, doc) in documents {
        let mut failures = Failures::new(MAX_PROBLEMS_PER_FILE);
        envelope_failures(doc, &mut failures);
        valid_all &= failures.is_empty();
        for invalid in failures.list {
            let field = invalid_field(doc, &invalid);
            walk.report(
                Problem::new(
                    url,
                    ProblemKind::Parse,
                    format!("not an entity: {invalid}{NOTHING_KEPT}"),
                )
                .in_document(*number),
                Some(field),
            );
        }
    }
    valid_all
}

/// The validation failures of a dropped file's other documents, so that
/// one run shows all of the file's mistakes (nothing is read: placeholders
/// and Location targets wait until the file is usable).
fn entity_problems_anyway(walk: &mut Walk, url: &str, documents: &[(usize, Map<String, Value>)]) {
    for (number, doc) in documents {
        // Envelope failures are reported already.
        if check_envelope(doc).is_err() {
            continue;
        }
        let mut failures = Failures::new(MAX_PROBLEMS_PER_FILE);
        entity_failures(doc, &mut failures);
        for invalid in failures.list {
            let field = invalid_field(doc, &invalid);
            walk.report(
                Problem::new(url, ProblemKind::Entity, invalid.to_string())
                    .in_document(*number)
                    .for_entity(doc_ref(doc)),
                Some(field),
            );
        }
        walk.not_listed(url, failures.more);
    }
}

/// Where `invalid` points in `doc`: its path and the part at fault.
fn invalid_field(doc: &Map<String, Value>, invalid: &Invalid) -> (Vec<String>, Part) {
    (invalid.path_in(doc), invalid.part())
}

fn is_script_url(value: &str) -> bool {
    static SCRIPT: OnceLock<Option<Regex>> = OnceLock::new();
    SCRIPT
        .get_or_init(|| {
            Regex::new(r"(?i)^[\x00-\x1F ]*j[\r\n\t]*a[\r\n\t]*v[\r\n\t]*a[\r\n\t]*s[\r\n\t]*c[\r\n\t]*r[\r\n\t]*i[\r\n\t]*p[\r\n\t]*t[\r\n\t]*:").ok()
        })
        .as_ref()
        .is_some_and(|re| re.is_match(value))
}

fn str_at<'a>(doc: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    let (first, rest) = path.split_first()?;
    let mut value = doc.get(*first)?;
    for key in rest {
        value = value.get(key)?;
    }
    value.as_str()
}

/// `kind:namespace/name` of a document whose envelope is valid.
fn doc_ref(doc: &Map<String, Value>) -> String {
    format!(
        "{}:{}/{}",
        str_at(doc, &["kind"]).unwrap_or("?").to_lowercase(),
        str_at(doc, &["metadata", "namespace"]).unwrap_or(super::entity::DEFAULT_NAMESPACE),
        str_at(doc, &["metadata", "name"]).unwrap_or("?")
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const ROOT: &str = "https://bb/projects/P/repos/r/browse/catalog-info.yaml";

    /// Files by web URL; anything else is missing. Counts fetches.
    struct Files {
        files: HashMap<String, String>,
        fetched: std::sync::Mutex<Vec<String>>,
    }

    impl Files {
        fn new(files: &[(&str, String)]) -> Self {
            Self {
                files: files
                    .iter()
                    .map(|(path, body)| {
                        (
                            format!("https://bb/projects/P/repos/r/browse/{path}"),
                            body.clone(),
                        )
                    })
                    .collect(),
                fetched: std::sync::Mutex::new(Vec::new()),
            }
        }
    }

    impl FileSource for Files {
        fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, FetchError>> {
            Box::pin(async move {
                if !url.starts_with("https://bb/") {
                    return Err(FetchError::Refused("other host".into()));
                }
                if let Ok(mut fetched) = self.fetched.lock() {
                    fetched.push(url.to_owned());
                }
                Ok(self.files.get(url).map(|s| s.clone().into_bytes()))
            })
        }
        fn resolve(&self, target: &str, base: &str) -> Result<String, ResolveError> {
            crate::bitbucket::server_urls::resolve_url(target, base)
                .map_err(|err| ResolveError::Url(Box::new(err)))
        }
        fn describe(&self, url: &str) -> FileFacts {
            FileFacts {
                edit_url: Some(url.to_owned()),
                directory: self.resolve("./", url).ok(),
                ..FileFacts::default()
            }
        }
    }

    fn component(name: &str) -> String {
        format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n"
        )
    }

    fn location(name: &str, spec: &str) -> String {
        format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: {name}\nspec:\n{spec}"
        )
    }

    async fn run(
        root: &str,
        files: &Files,
        config: &ProcessingConfig,
    ) -> (Vec<String>, Vec<(ProblemKind, String)>) {
        let rules = CatalogRules::default();
        let repo = RepoInfo::default();
        let processor = Processor {
            source: files,
            rules: &rules,
            config,
            repo: &repo,
        };
        let outcome = processor.process_tree(ROOT, root.as_bytes()).await;
        let mut names: Vec<String> = outcome
            .entities
            .iter()
            .map(|e| e.entity.metadata.name.clone())
            .collect();
        names.sort();
        let problems = outcome
            .problems
            .into_iter()
            .map(|p| (p.kind, p.message))
            .collect();
        (names, problems)
    }

    /// `(case, root file, other files, config change, entities kept, problem kinds)`.
    #[tokio::test]
    async fn location_following_table() {
        let deep_files: Vec<(&str, String)> = vec![
            ("l1.yaml", location("l1", "  target: ./l2.yaml\n")),
            ("l2.yaml", location("l2", "  target: ./leaf.yaml\n")),
            ("leaf.yaml", component("leaf")),
        ];
        type Case<'a> = (
            &'a str,
            String,
            Vec<(&'a str, String)>,
            fn(&mut ProcessingConfig),
            Vec<&'a str>,
            Vec<ProblemKind>,
        );
        let same: fn(&mut ProcessingConfig) = |_| {};
        let cases: Vec<Case<'_>> = vec![
            ("no targets", location("empty", "  type: url\n"), vec![], same, vec!["empty"], vec![]),
            ("nested within depth", location("l0", "  target: ./l1.yaml\n"), deep_files.clone(), same, vec!["l0", "l1", "l2", "leaf"], vec![]),
            ("nested too deep", location("l0", "  target: ./l1.yaml\n"), deep_files.clone(), |c| c.max_location_depth = 2,
                vec!["l0", "l1"], vec![ProblemKind::Location]),
            ("depth 0 follows nothing", location("l0", "  target: ./l1.yaml\n"), deep_files.clone(), |c| c.max_location_depth = 0,
                vec![], vec![ProblemKind::Location]),
            ("too many targets", location("wide", "  targets: [a.yaml, b.yaml, c.yaml]\n"), vec![], |c| c.max_location_targets = 2,
                vec![], vec![ProblemKind::Location]),
            ("file budget", location("wide", "  targets: [a.yaml, b.yaml]\n"),
                vec![("a.yaml", component("a")), ("b.yaml", component("b"))], |c| c.max_location_files = 1,
                vec![], vec![ProblemKind::Location]),
            ("file type is not read", location("f", "  type: file\n  target: ./x.yaml\n"), vec![], same, vec![], vec![ProblemKind::Location]),
            // Only the refused target is lost, not the Location (nor its other targets).
            ("other host refused", location("o", "  target: https://elsewhere/x.yaml\n"), vec![], same, vec!["o"], vec![ProblemKind::Location]),
            ("self cycle", location("me", "  target: ./catalog-info.yaml\n"), vec![], same, vec!["me"], vec![]),
            ("diamond", format!("{}---\n{}", location("x", "  target: ./shared.yaml\n"), location("y", "  target: ./shared.yaml\n")),
                vec![("shared.yaml", component("shared"))], same, vec!["shared", "x", "y"], vec![]),
            ("broken target fails the Location only", format!("{}---\n{}", location("x", "  target: ./bad.yaml\n"), component("sibling")),
                vec![("bad.yaml", "a: [".into())], same, vec!["sibling"], vec![ProblemKind::Parse, ProblemKind::Location]),
            ("disallowed kind in a target", location("x", "  target: ./group.yaml\n"),
                vec![("group.yaml", "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: g\nspec:\n  type: team\n  children: []\n".into())],
                same, vec![], vec![ProblemKind::NotAllowed, ProblemKind::Location]),
            ("invalid Location is not followed", location("Bad Name", "  target: ./a.yaml\n"), vec![("a.yaml", component("a"))], same,
                vec![], vec![ProblemKind::Entity]),
            ("envelope failure sinks the file", format!("{}---\nkind: Component\nmetadata:\n  name: x\n", component("a")), vec![], same,
                vec![], vec![ProblemKind::Parse]),
            ("lower-case location kind is not a Location", location("l", "  target: ./a.yaml\n").replace("kind: Location", "kind: location"),
                vec![], same, vec![], vec![ProblemKind::Entity]),
        ];
        for (case, root, files, change, expected_names, expected_kinds) in cases {
            let files = Files::new(&files);
            let mut config = ProcessingConfig::default();
            change(&mut config);
            let (names, problems) = run(&root, &files, &config).await;
            assert_eq!(names, expected_names, "{case}: {problems:?}");
            let kinds: Vec<ProblemKind> = problems.iter().map(|(k, _)| *k).collect();
            assert_eq!(kinds, expected_kinds, "{case}: {problems:?}");
        }
    }

    #[tokio::test]
    async fn placeholders_are_resolved_like_backstage() {
        let api = |definition: &str| {
            format!(
                "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: api\nspec:\n  type: openapi\n  lifecycle: production\n  owner: team-a\n  definition:\n    {definition}\n  schema:\n    $ref: '#/definitions/x'\n  extra:\n    - $json: ./extra.json\n  meta:\n    $yaml: ./meta.yaml\n"
            )
        };
        let files = Files::new(&[
            ("specs/openapi.yaml", "openapi: 3.0.0\n".into()),
            ("extra.json", r#"{"a": [1, 2]}"#.into()),
            ("meta.yaml", "k: v\n".into()),
        ]);
        let rules = CatalogRules::default();
        let repo = RepoInfo::default();
        let config = ProcessingConfig::default();
        let processor = Processor {
            source: &files,
            rules: &rules,
            config: &config,
            repo: &repo,
        };
        let outcome = processor
            .process_tree(ROOT, api("$text: ./specs/openapi.yaml").as_bytes())
            .await;
        assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
        let spec = outcome.entities[0].entity.spec.clone().unwrap_or_default();
        assert_eq!(spec["definition"], "openapi: 3.0.0\n");
        assert_eq!(
            spec["schema"],
            serde_json::json!({"$ref": "#/definitions/x"})
        );
        assert_eq!(spec["extra"], serde_json::json!([{"a": [1, 2]}]));
        assert_eq!(spec["meta"], serde_json::json!({"k": "v"}));
        assert_eq!(outcome.files_read, 3);

        // A missing file fails that entity only.
        let broken = format!("{}---\n{}", api("$text: ./nope.yaml"), component("sibling"));
        let outcome = processor.process_tree(ROOT, broken.as_bytes()).await;
        let names: Vec<_> = outcome
            .entities
            .iter()
            .map(|e| e.entity.metadata.name.as_str())
            .collect();
        assert_eq!(names, vec!["sibling"]);
        assert_eq!(outcome.problems.len(), 1);
        assert!(
            outcome.problems[0]
                .message
                .contains("Placeholder $text could not read location ./nope.yaml"),
            "{:?}",
            outcome.problems
        );
    }

    #[tokio::test]
    async fn a_shared_target_is_read_once() {
        let files = Files::new(&[("shared.yaml", component("shared"))]);
        let root = format!(
            "{}---\n{}",
            location("x", "  target: ./shared.yaml\n"),
            location("y", "  target: ./shared.yaml?x=1\n")
        );
        let (names, _) = run(&root, &files, &ProcessingConfig::default()).await;
        assert_eq!(names, vec!["shared", "x", "y"]);
        let fetched = files.fetched.lock().map(|f| f.clone()).unwrap_or_default();
        assert_eq!(
            fetched,
            vec!["https://bb/projects/P/repos/r/browse/shared.yaml".to_owned()]
        );
    }
}
