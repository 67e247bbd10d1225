//! Following a Location entity's targets: each is resolved against the
//! entity's file, read once, and processed as a file of its own. The
//! Location is kept only when all of its targets are (Backstage fails the
//! Location otherwise); a target refused as out of scope is only skipped.

use serde_json::Value;

use super::{
    Entity, FetchError, FileSource, Overflow, ProcessedEntity, Processor, ResolveError, Visit, Walk,
};
use crate::catalog::parse::Part;
use crate::catalog::problem::{Problem, ProblemKind};

/// Why a Location entity (and everything under it) is not kept.
#[derive(Debug, thiserror::Error)]
enum LocationError {
    #[error(
        "location type '{0}' cannot be read here; only url targets on this Bitbucket are followed"
    )]
    NotUrl(String),
    #[error("{count} targets is more than catalog.processing.maxLocationTargets ({limit})")]
    TooManyTargets { count: usize, limit: usize },
    #[error("targets are nested deeper than catalog.processing.maxLocationDepth ({0})")]
    TooDeep(usize),
    #[error("target '{target}': {source}")]
    Resolve {
        target: String,
        source: ResolveError,
    },
    #[error("target {0} could not be processed (see its problems)")]
    Unprocessed(String),
    #[error(
        "reading {resolved} would exceed catalog.processing.maxLocationFiles ({limit}) for this discovered file"
    )]
    TooManyFiles { resolved: String, limit: usize },
    #[error(transparent)]
    Overflow(#[from] Overflow),
    #[error(
        "required target {0} does not exist (set spec.presence: optional if it may be missing)"
    )]
    Missing(String),
    #[error("target {0} could not be read")]
    Unread(String),
}

/// The Location entity being followed, for the problems it gets.
struct At<'a> {
    url: &'a str,
    number: usize,
    entity_ref: String,
}

impl At<'_> {
    fn problem(&self, message: String) -> Problem {
        Problem::new(self.url, ProblemKind::Location, message)
            .in_document(self.number)
            .for_entity(self.entity_ref.clone())
    }

    /// The Location fails for `error`, about the spec field at `path`.
    fn fail(&self, walk: &mut Walk, error: &LocationError, path: &[&str]) {
        walk.report(
            self.problem(format!(
                "{error}; the Location and everything under it are not kept"
            )),
            Some((field(path), Part::Value)),
        );
    }
}

fn field(path: &[&str]) -> Vec<String> {
    path.iter().map(|s| (*s).to_owned()).collect()
}

/// What a Location entity's spec asks for.
struct LocationSpec<'a> {
    type_: &'a str,
    optional: bool,
    /// Each target with where it is written (`spec.target` or an item of
    /// `spec.targets`).
    targets: Vec<(&'a str, Vec<&'static str>, Option<usize>)>,
}

impl<'a> LocationSpec<'a> {
    fn of(location: &'a Entity) -> Self {
        let spec = location.spec.as_ref().and_then(Value::as_object);
        let get = |key: &str| spec.and_then(|s| s.get(key));
        let mut targets = Vec::new();
        if let Some(target) = get("target").and_then(Value::as_str) {
            targets.push((target, vec!["spec", "target"], None));
        }
        if let Some(Value::Array(items)) = get("targets") {
            targets.extend(
                items.iter().enumerate().filter_map(|(i, item)| {
                    Some((item.as_str()?, vec!["spec", "targets"], Some(i)))
                }),
            );
        }
        Self {
            type_: get("type").and_then(Value::as_str).unwrap_or("url"),
            optional: get("presence").and_then(Value::as_str) == Some("optional"),
            targets,
        }
    }
}

impl<S: FileSource> Processor<'_, S> {
    /// Reads a Location entity's targets; `None` fails the Location.
    pub(super) async fn follow(
        &self,
        walk: &mut Walk,
        location: &Entity,
        number: usize,
        url: &str,
        origin: &str,
        depth: usize,
    ) -> Option<Vec<ProcessedEntity>> {
        let at = At {
            url,
            number,
            entity_ref: location.entity_ref(),
        };
        let spec = LocationSpec::of(location);
        if spec.targets.is_empty() {
            return Some(Vec::new());
        }
        if let Err(error) = self.followable(&spec, depth) {
            let path: &[&str] = match error {
                LocationError::NotUrl(_) => &["spec", "type"],
                LocationError::TooManyTargets { .. } => &["spec", "targets"],
                _ => &["spec"],
            };
            at.fail(walk, &error, path);
            return None;
        }
        let mut ok = true;
        let mut children = Vec::new();
        for (target, written, index) in &spec.targets {
            let index = index.map(|i| i.to_string());
            let mut path = written.clone();
            path.extend(index.as_deref());
            match self
                .follow_target(walk, &at, (target, &path), spec.optional, origin, depth)
                .await
            {
                Ok(entities) => children.extend(entities),
                Err(error) => {
                    at.fail(walk, &error, &path);
                    ok = false;
                }
            }
        }
        ok.then_some(children)
    }

    /// Whether the Location's targets may be followed at all.
    fn followable(&self, spec: &LocationSpec<'_>, depth: usize) -> Result<(), LocationError> {
        if spec.type_ != "url" {
            return Err(LocationError::NotUrl(spec.type_.to_owned()));
        }
        if spec.targets.len() > self.config.max_location_targets {
            return Err(LocationError::TooManyTargets {
                count: spec.targets.len(),
                limit: self.config.max_location_targets,
            });
        }
        if depth + 1 > self.config.max_location_depth {
            return Err(LocationError::TooDeep(self.config.max_location_depth));
        }
        Ok(())
    }

    /// One target's entities (none for one skipped or reached through a
    /// cycle); `Err` fails the Location. `path` is where the target is
    /// written in the Location's spec.
    async fn follow_target(
        &self,
        walk: &mut Walk,
        at: &At<'_>,
        (target, path): (&str, &[&str]),
        optional: bool,
        origin: &str,
        depth: usize,
    ) -> Result<Vec<ProcessedEntity>, LocationError> {
        let resolved =
            self.source
                .resolve(target, at.url)
                .map_err(|source| LocationError::Resolve {
                    target: target.to_owned(),
                    source,
                })?;
        match walk.visited.get(&resolved) {
            // Reached again through a cycle: its entities come with the
            // Location that is already reading it (Backstage re-reads and
            // finds the same entities).
            Some(Visit::InProgress) => return Ok(Vec::new()),
            Some(Visit::Done(Some(entities))) => return Ok(entities.clone()),
            Some(Visit::Done(None)) => return Err(LocationError::Unprocessed(resolved)),
            None => {}
        }
        let Some(bytes) = self
            .read_target(walk, at, &resolved, path, optional)
            .await?
        else {
            return Ok(Vec::new());
        };
        walk.visited.insert(resolved.clone(), Visit::InProgress);
        let result = self
            .process_file(walk, &resolved, &bytes, origin, depth + 1)
            .await;
        walk.visited
            .insert(resolved.clone(), Visit::Done(result.clone()));
        result.ok_or(LocationError::Unprocessed(resolved))
    }

    /// The target's bytes, counted against the discovered file's budgets;
    /// `None` when it is skipped (optional and missing, or out of scope).
    async fn read_target(
        &self,
        walk: &mut Walk,
        at: &At<'_>,
        resolved: &str,
        path: &[&str],
        optional: bool,
    ) -> Result<Option<Vec<u8>>, LocationError> {
        if walk.files_read >= self.config.max_location_files {
            return Err(LocationError::TooManyFiles {
                resolved: resolved.to_owned(),
                limit: self.config.max_location_files,
            });
        }
        let what = format!("target {resolved}");
        walk.has_room(self.config, &what)?;
        match self.source.fetch(resolved).await {
            Ok(Some(bytes)) => {
                walk.files_read += 1;
                walk.expand(bytes.len(), self.config, &what)?;
                Ok(Some(bytes))
            }
            Ok(None) => {
                walk.files_read += 1;
                walk.visited
                    .insert(resolved.to_owned(), Visit::Done(Some(Vec::new())));
                if optional {
                    Ok(None)
                } else {
                    Err(LocationError::Missing(resolved.to_owned()))
                }
            }
            // Only this target is lost: its siblings are in scope and
            // dropping them would remove entities for another's mistake.
            Err(FetchError::Refused(message)) => {
                walk.report(
                    at.problem(format!(
                        "target {resolved} is not read: {message}; the Location's other targets are kept"
                    )),
                    Some((field(path), Part::Value)),
                );
                Ok(None)
            }
            Err(FetchError::Failed(message)) => {
                walk.files_read += 1;
                walk.report(Problem::new(resolved, ProblemKind::Read, message), None);
                Err(LocationError::Unread(resolved.to_owned()))
            }
        }
    }
}
