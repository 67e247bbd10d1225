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
//!   of its targets come with it.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use futures::future::BoxFuture;
use regex::Regex;
use serde_json::{Map, Value};

use super::entity::{
    ANNOTATION_DEFAULT_BRANCH, ANNOTATION_EDIT_URL, ANNOTATION_LOCATION,
    ANNOTATION_ORIGIN_LOCATION, ANNOTATION_SOURCE_LOCATION, ANNOTATION_VIEW_URL, Entity,
};
use super::parse::{ParseLimits, parse_catalog_file, parse_single_document};
use super::problem::{Problem, ProblemKind};
use super::relations;
use super::rules::CatalogRules;
use super::validate::{BuiltinKind, check_envelope, validate_entity};

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
pub const DEFAULT_MAX_EXPANDED_BYTES: usize = 4 * 1024 * 1024;

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

/// Where files come from, and the SCM's URL rules.
pub trait FileSource: Sync {
    /// The file at `url` (a web URL); `Ok(None)` when it does not exist.
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, FetchError>>;
    /// `target` resolved against the file `base` (the integration's `resolveUrl`).
    fn resolve(&self, target: &str, base: &str) -> Result<String, String>;
    /// The integration's `resolveEditUrl`.
    fn edit_url(&self, url: &str) -> Option<String>;
    /// The web URL of the repository holding the file.
    fn repo_url(&self, url: &str) -> Option<String>;
    /// The annotation key naming that repository (`<host>/repo-url`).
    fn repo_url_annotation(&self, _url: &str) -> Option<String> {
        None
    }
}

/// What the listing told us about the discovered file's repository.
#[derive(Debug, Clone, Default)]
pub struct RepoInfo {
    /// The discovered repository's web URL and default branch, if listed.
    pub default_branch: Option<(String, String)>,
}

/// Everything one discovered file led to.
#[derive(Debug, Default)]
pub struct TreeOutcome {
    pub entities: Vec<Entity>,
    pub problems: Vec<Problem>,
    /// Files read through Location entities (requests spent).
    pub files_read: usize,
}

const REJECTED_URL: &str = "https://backstage.io/annotation-rejected-for-security-reasons";

pub struct Processor<'a, S: FileSource> {
    pub source: &'a S,
    pub rules: &'a CatalogRules,
    pub config: &'a ProcessingConfig,
    pub repo: &'a RepoInfo,
}

enum Visit {
    InProgress,
    Done(Option<Vec<Entity>>),
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
    placeholder_files: HashMap<String, Result<Option<Vec<u8>>, String>>,
}

impl Walk {
    /// Counts `bytes` more against `maxExpandedSize`; the message when over.
    fn expand(
        &mut self,
        bytes: usize,
        config: &ProcessingConfig,
        what: &str,
    ) -> Result<(), String> {
        self.expanded_bytes = self.expanded_bytes.saturating_add(bytes);
        if self.expanded_bytes > config.max_expanded_bytes {
            return Err(format!(
                "{what} would expand this discovered file by more than catalog.processing.maxExpandedSize ({} bytes)",
                config.max_expanded_bytes
            ));
        }
        Ok(())
    }

    /// Whether another file may be read at all: not once over
    /// `maxExpandedSize` (its bytes could not be used anyway).
    fn has_room(&self, config: &ProcessingConfig, what: &str) -> Result<(), String> {
        if self.expanded_bytes > config.max_expanded_bytes {
            return Err(format!(
                "{what} is not read: this discovered file already expanded by more than catalog.processing.maxExpandedSize ({} bytes)",
                config.max_expanded_bytes
            ));
        }
        Ok(())
    }
}

/// The length of `value` as served (JSON), counted without building it and
/// given up past `limit`: escapes can make text several times its size.
fn served_len(value: &Value, limit: usize) -> usize {
    struct Count(usize, usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            if self.0 > self.1 {
                return Err(std::io::ErrorKind::FileTooLarge.into());
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0, limit);
    // An error is only ever the limit being passed.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

impl<S: FileSource> Processor<'_, S> {
    /// Processes the discovered file at `url` with content `bytes`; it is
    /// its own origin.
    pub async fn process_tree(&self, url: &str, bytes: &[u8]) -> TreeOutcome {
        let mut walk = Walk::default();
        walk.visited.insert(url.to_owned(), Visit::InProgress);
        let entities = self.process_file(&mut walk, url, bytes, url, 0).await;
        let mut seen = HashSet::new();
        // The same file reached twice yields the same entities; keep one.
        let entities = entities
            .unwrap_or_default()
            .into_iter()
            .filter(|e| {
                seen.insert((
                    e.key(),
                    e.metadata.annotations.get(ANNOTATION_LOCATION).cloned(),
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
    ) -> BoxFuture<'w, Option<Vec<Entity>>> {
        Box::pin(async move {
            let parsed = match parse_catalog_file(bytes, &self.config.limits) {
                Ok(parsed) => parsed,
                Err(err) => {
                    walk.problems
                        .push(Problem::new(url, ProblemKind::Parse, err.to_string()));
                    return None;
                }
            };
            let nothing_kept = "; none of this file's entities are kept";
            if !parsed.errors.is_empty() {
                for err in parsed.errors {
                    walk.problems.push(
                        Problem::new(
                            url,
                            ProblemKind::Parse,
                            format!("{}{nothing_kept}", err.message),
                        )
                        .in_document(err.document),
                    );
                }
                return None;
            }
            let mut failed = false;
            for (number, doc) in &parsed.documents {
                if let Err(invalid) = check_envelope(doc) {
                    walk.problems.push(
                        Problem::new(
                            url,
                            ProblemKind::Parse,
                            format!("not an entity: {invalid}{nothing_kept}"),
                        )
                        .in_document(*number),
                    );
                    failed = true;
                }
            }
            if failed {
                return None;
            }
            let mut documents = parsed.documents;
            for (_, doc) in &mut documents {
                self.annotate(doc, url, origin);
            }
            for (number, doc) in &documents {
                let kind = str_at(doc, &["kind"]).unwrap_or_default();
                let spec_type = str_at(doc, &["spec", "type"]);
                if !self.rules.is_allowed(kind, spec_type, "url", origin) {
                    let allowed = self.rules.allowed_kinds("url", origin);
                    walk.problems.push(
                        Problem::new(
                            url,
                            ProblemKind::NotAllowed,
                            format!(
                                "kind {kind} is not allowed from location url:{origin} by catalog.rules (allowed here: {}){nothing_kept}",
                                if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") }
                            ),
                        )
                        .in_document(*number)
                        .for_entity(doc_ref(doc)),
                    );
                    failed = true;
                }
            }
            if failed {
                return None;
            }
            let mut kept = Vec::new();
            for (number, mut doc) in documents {
                let entity_ref = doc_ref(&doc);
                let reject = |message: String| {
                    Problem::new(url, ProblemKind::Entity, message)
                        .in_document(number)
                        .for_entity(entity_ref.clone())
                };
                if let Err(message) = self.resolve_placeholders(walk, &mut doc, url).await {
                    walk.problems.push(reject(message));
                    continue;
                }
                let builtin = match validate_entity(&doc) {
                    Ok(builtin) => builtin,
                    Err(invalid) => {
                        walk.problems.push(reject(invalid.to_string()));
                        continue;
                    }
                };
                let entity: Entity = match serde_json::from_value(Value::Object(doc)) {
                    Ok(entity) => entity,
                    Err(err) => {
                        walk.problems.push(reject(err.to_string()));
                        continue;
                    }
                };
                if let Err(invalid) = relations::emitted(&entity) {
                    walk.problems.push(reject(invalid.to_string()));
                    continue;
                }
                if builtin == Some(BuiltinKind::Location) {
                    match self.follow(walk, &entity, number, url, origin, depth).await {
                        Some(children) => {
                            kept.push(entity);
                            kept.extend(children);
                        }
                        None => continue,
                    }
                } else {
                    kept.push(entity);
                }
            }
            Some(kept)
        })
    }

    /// Reads a Location entity's targets; `None` fails the Location.
    async fn follow(
        &self,
        walk: &mut Walk,
        location: &Entity,
        number: usize,
        url: &str,
        origin: &str,
        depth: usize,
    ) -> Option<Vec<Entity>> {
        let entity_ref = location.entity_ref();
        let fail = |walk: &mut Walk, message: String| {
            walk.problems.push(
                Problem::new(
                    url,
                    ProblemKind::Location,
                    format!("{message}; the Location and everything under it are not kept"),
                )
                .in_document(number)
                .for_entity(entity_ref.clone()),
            );
        };
        let spec = location.spec.as_ref().and_then(Value::as_object);
        let get = |key: &str| spec.and_then(|s| s.get(key));
        let type_ = get("type").and_then(Value::as_str).unwrap_or("url");
        let optional = get("presence").and_then(Value::as_str) == Some("optional");
        let mut targets: Vec<&str> = Vec::new();
        targets.extend(get("target").and_then(Value::as_str));
        if let Some(Value::Array(items)) = get("targets") {
            targets.extend(items.iter().filter_map(Value::as_str));
        }
        if targets.is_empty() {
            return Some(Vec::new());
        }
        if type_ != "url" {
            fail(
                walk,
                format!(
                    "location type '{type_}' cannot be read here; only url targets on this Bitbucket are followed"
                ),
            );
            return None;
        }
        if targets.len() > self.config.max_location_targets {
            fail(
                walk,
                format!(
                    "{} targets is more than catalog.processing.maxLocationTargets ({})",
                    targets.len(),
                    self.config.max_location_targets
                ),
            );
            return None;
        }
        if depth + 1 > self.config.max_location_depth {
            fail(
                walk,
                format!(
                    "targets are nested deeper than catalog.processing.maxLocationDepth ({})",
                    self.config.max_location_depth
                ),
            );
            return None;
        }
        let mut ok = true;
        let mut children = Vec::new();
        for target in targets {
            let resolved = match self.source.resolve(target, url) {
                Ok(resolved) => resolved,
                Err(message) => {
                    fail(walk, format!("target '{target}': {message}"));
                    ok = false;
                    continue;
                }
            };
            match walk.visited.get(&resolved) {
                // Reached again through a cycle: its entities come with the
                // Location that is already reading it (Backstage re-reads
                // and finds the same entities).
                Some(Visit::InProgress) => continue,
                Some(Visit::Done(Some(entities))) => {
                    children.extend(entities.iter().cloned());
                    continue;
                }
                Some(Visit::Done(None)) => {
                    fail(
                        walk,
                        format!("target {resolved} could not be processed (see its problems)"),
                    );
                    ok = false;
                    continue;
                }
                None => {}
            }
            if walk.files_read >= self.config.max_location_files {
                fail(
                    walk,
                    format!(
                        "reading {resolved} would exceed catalog.processing.maxLocationFiles ({}) for this discovered file",
                        self.config.max_location_files
                    ),
                );
                ok = false;
                continue;
            }
            if let Err(message) = walk.has_room(self.config, &format!("target {resolved}")) {
                fail(walk, message);
                ok = false;
                continue;
            }
            let bytes = match self.source.fetch(&resolved).await {
                Ok(Some(bytes)) => {
                    walk.files_read += 1;
                    if let Err(message) =
                        walk.expand(bytes.len(), self.config, &format!("target {resolved}"))
                    {
                        fail(walk, message);
                        ok = false;
                        continue;
                    }
                    bytes
                }
                Ok(None) => {
                    walk.files_read += 1;
                    walk.visited
                        .insert(resolved.clone(), Visit::Done(Some(Vec::new())));
                    if !optional {
                        fail(
                            walk,
                            format!(
                                "required target {resolved} does not exist (set spec.presence: optional if it may be missing)"
                            ),
                        );
                        ok = false;
                    }
                    continue;
                }
                // Only this target is lost: its siblings are in scope and
                // dropping them would remove entities for another's mistake.
                Err(FetchError::Refused(message)) => {
                    walk.problems.push(
                        Problem::new(
                            url,
                            ProblemKind::Location,
                            format!("target {resolved} is not read: {message}; the Location's other targets are kept"),
                        )
                        .in_document(number)
                        .for_entity(entity_ref.clone()),
                    );
                    continue;
                }
                Err(FetchError::Failed(message)) => {
                    walk.files_read += 1;
                    walk.problems
                        .push(Problem::new(resolved.clone(), ProblemKind::Read, message));
                    fail(walk, format!("target {resolved} could not be read"));
                    ok = false;
                    continue;
                }
            };
            walk.visited.insert(resolved.clone(), Visit::InProgress);
            let result = self
                .process_file(walk, &resolved, &bytes, origin, depth + 1)
                .await;
            walk.visited
                .insert(resolved.clone(), Visit::Done(result.clone()));
            match result {
                Some(entities) => children.extend(entities),
                None => {
                    fail(
                        walk,
                        format!("target {resolved} could not be processed (see its problems)"),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(children)
    }

    /// Backstage's PlaceholderProcessor: an object whose only key is
    /// `$text`, `$json` or `$yaml` with a string value is replaced by the
    /// content of that file (relative to `url`). Each read counts against
    /// `maxLocationFiles`; any failure fails the entity.
    async fn resolve_placeholders(
        &self,
        walk: &mut Walk,
        doc: &mut Map<String, Value>,
        url: &str,
    ) -> Result<(), String> {
        let mut found = Vec::new();
        for (key, value) in doc.iter() {
            find_placeholders(value, &mut vec![Step::Key(key.clone())], &mut found);
        }
        for (path, kind, target) in found {
            let location = self.source.resolve(&target, url).map_err(|e| {
                format!("Placeholder ${kind} could not form a URL out of {url} and {target}, {e}")
            })?;
            let fetched = match walk.placeholder_files.get(&location) {
                Some(read) => read.clone(),
                None => {
                    if walk.files_read >= self.config.max_location_files {
                        return Err(format!(
                            "Placeholder ${kind} at {location} would exceed catalog.processing.maxLocationFiles ({}) for this discovered file",
                            self.config.max_location_files
                        ));
                    }
                    walk.has_room(self.config, &format!("Placeholder ${kind} of {location}"))?;
                    let fetched = self.source.fetch(&location).await;
                    if !matches!(fetched, Err(FetchError::Refused(_))) {
                        walk.files_read += 1;
                    }
                    let read = fetched.map_err(|err| {
                        format!("Placeholder ${kind} could not read location {target}: {err}")
                    });
                    walk.placeholder_files
                        .insert(location.clone(), read.clone());
                    read
                }
            }?;
            let Some(bytes) = fetched else {
                return Err(format!(
                    "Placeholder ${kind} could not read location {target}: {location} does not exist"
                ));
            };
            let limits = &self.config.limits;
            if bytes.len() > limits.max_file_bytes {
                return Err(format!(
                    "Placeholder ${kind}: {location} is larger than catalog.processing.maxFileSize ({} bytes)",
                    limits.max_file_bytes
                ));
            }
            let value = match kind {
                "text" => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
                "json" => serde_json::from_slice(&bytes).map_err(|e| {
                    format!("Placeholder $json failed to parse JSON data at {target}, {e}")
                })?,
                _ => parse_single_document(&bytes, limits).map_err(|e| {
                    format!("Placeholder $yaml could not use the data at {target}: {e}")
                })?,
            };
            // What is served, not what was read: escapes and re-rendered
            // YAML can be larger than the file.
            let room = self
                .config
                .max_expanded_bytes
                .saturating_sub(walk.expanded_bytes);
            walk.expand(
                served_len(&value, room),
                self.config,
                &format!("Placeholder ${kind} of {location}"),
            )?;
            if let Some(slot) = value_at(doc, &path) {
                *slot = value;
            }
        }
        Ok(())
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
        if let Some(edit) = self.source.edit_url(url) {
            defaults.push((ANNOTATION_EDIT_URL.into(), edit));
        }
        if let Ok(dir) = self.source.resolve("./", url) {
            defaults.push((ANNOTATION_SOURCE_LOCATION.into(), format!("url:{dir}")));
        }
        let repo_url = self.source.repo_url(url);
        if let (Some(key), Some(repo_url)) = (self.source.repo_url_annotation(url), &repo_url) {
            defaults.push((key, repo_url.clone()));
        }
        if let (Some((listed_repo, branch)), Some(repo_url)) =
            (&self.repo.default_branch, &repo_url)
            && listed_repo == repo_url
        {
            defaults.push((ANNOTATION_DEFAULT_BRANCH.into(), branch.clone()));
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

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Placeholders as Backstage finds them: an object with exactly one key, a
/// known `$`-resolver with a string value. Other `$` keys (e.g. JSON
/// Schema's `$ref`) are left alone, and nothing inside them is searched.
fn find_placeholders(
    value: &Value,
    path: &mut Vec<Step>,
    out: &mut Vec<(Vec<Step>, &'static str, String)>,
) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                find_placeholders(item, path, out);
                path.pop();
            }
        }
        Value::Object(map) => {
            if !map.keys().any(|k| k.starts_with('$')) {
                for (k, v) in map {
                    path.push(Step::Key(k.clone()));
                    find_placeholders(v, path, out);
                    path.pop();
                }
                return;
            }
            if let [(key, Value::String(target))] = map.iter().collect::<Vec<_>>().as_slice() {
                let kind = match key.as_str() {
                    "$text" => "text",
                    "$json" => "json",
                    "$yaml" => "yaml",
                    _ => return,
                };
                out.push((path.clone(), kind, target.clone()));
            }
        }
        _ => {}
    }
}

fn value_at<'a>(doc: &'a mut Map<String, Value>, path: &[Step]) -> Option<&'a mut Value> {
    let (first, rest) = path.split_first()?;
    let Step::Key(key) = first else {
        return None;
    };
    let mut node = doc.get_mut(key)?;
    for step in rest {
        node = match step {
            Step::Key(key) => node.get_mut(key)?,
            Step::Index(i) => node.get_mut(*i)?,
        };
    }
    Some(node)
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
        fn resolve(&self, target: &str, base: &str) -> Result<String, String> {
            crate::bitbucket::server_urls::resolve_url(target, base).map_err(|e| e.to_string())
        }
        fn edit_url(&self, url: &str) -> Option<String> {
            Some(url.to_owned())
        }
        fn repo_url(&self, _: &str) -> Option<String> {
            None
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
            .map(|e| e.metadata.name.clone())
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
        let spec = outcome.entities[0].spec.clone().unwrap_or_default();
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
            .map(|e| e.metadata.name.as_str())
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
