//! Backstage's PlaceholderProcessor: an object whose only key is `$text`,
//! `$json` or `$yaml` with a string value is replaced by the content of that
//! file (relative to the entity's file). Each read counts against
//! `maxLocationFiles` and each use against `maxExpandedSize`; any failure
//! fails the entity.

use serde_json::{Map, Value};

use super::{FetchError, FileSource, Overflow, Processor, ResolveError, Walk};
use crate::catalog::parse::{SingleDocumentError, parse_single_document};

/// Why a placeholder's file could not be read; kept per file, as each is
/// read once.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Placeholder ${kind} could not read location {target}: {source}")]
pub(super) struct UnreadPlaceholder {
    kind: &'static str,
    target: String,
    source: FetchError,
}

/// Why an entity's placeholder could not be filled in.
#[derive(Debug, thiserror::Error)]
pub(super) enum PlaceholderError {
    #[error("Placeholder ${kind} could not form a URL out of {url} and {target}, {source}")]
    Resolve {
        kind: &'static str,
        url: String,
        target: String,
        source: ResolveError,
    },
    #[error(
        "Placeholder ${kind} at {location} would exceed catalog.processing.maxLocationFiles ({limit}) for this discovered file"
    )]
    TooManyFiles {
        kind: &'static str,
        location: String,
        limit: usize,
    },
    #[error(transparent)]
    Overflow(#[from] Overflow),
    #[error(transparent)]
    Unread(#[from] UnreadPlaceholder),
    #[error("Placeholder ${kind} could not read location {target}: {location} does not exist")]
    Missing {
        kind: &'static str,
        target: String,
        location: String,
    },
    #[error(
        "Placeholder ${kind}: {location} is larger than catalog.processing.maxFileSize ({limit} bytes)"
    )]
    TooLarge {
        kind: &'static str,
        location: String,
        limit: usize,
    },
    #[error("Placeholder $json failed to parse JSON data at {target}, {source}")]
    Json {
        target: String,
        source: serde_json::Error,
    },
    #[error("Placeholder $yaml could not use the data at {target}: {source}")]
    Yaml {
        target: String,
        source: SingleDocumentError,
    },
}

/// One placeholder found in a document: where it is, its resolver and target.
struct Found {
    path: Vec<Step>,
    kind: &'static str,
    target: String,
}

impl<S: FileSource> Processor<'_, S> {
    /// Replaces every placeholder in `doc` (whose file is `url`) by the
    /// content it names; on failure, also the path of the target that
    /// failed (keys and indexes from the root).
    pub(super) async fn resolve_placeholders(
        &self,
        walk: &mut Walk,
        doc: &mut Map<String, Value>,
        url: &str,
    ) -> Result<(), (PlaceholderError, Vec<String>)> {
        let mut found = Vec::new();
        for (key, value) in doc.iter() {
            find_placeholders(value, &mut vec![Step::Key(key.clone())], &mut found);
        }
        for placeholder in found {
            let at = || {
                let mut path: Vec<String> = placeholder
                    .path
                    .iter()
                    .map(|step| match step {
                        Step::Key(key) => key.clone(),
                        Step::Index(index) => index.to_string(),
                    })
                    .collect();
                path.push(format!("${}", placeholder.kind));
                path
            };
            if let Err(err) = self.resolve_one(walk, doc, url, &placeholder).await {
                return Err((err, at()));
            }
        }
        Ok(())
    }

    /// Fills in one placeholder.
    async fn resolve_one(
        &self,
        walk: &mut Walk,
        doc: &mut Map<String, Value>,
        url: &str,
        placeholder: &Found,
    ) -> Result<(), PlaceholderError> {
        let Found { path, kind, target } = placeholder;
        let (kind, target) = (*kind, target.as_str());
        let location =
            self.source
                .resolve(target, url)
                .map_err(|source| PlaceholderError::Resolve {
                    kind,
                    url: url.to_owned(),
                    target: target.to_owned(),
                    source,
                })?;
        let bytes = self.placeholder_file(walk, kind, target, &location).await?;
        let value = self.placeholder_value(kind, target, &location, &bytes)?;
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
        if let Some(slot) = value_at(doc, path) {
            *slot = value;
        }
        Ok(())
    }

    /// The bytes of the file at `location`, read once per discovered file.
    async fn placeholder_file(
        &self,
        walk: &mut Walk,
        kind: &'static str,
        target: &str,
        location: &str,
    ) -> Result<Vec<u8>, PlaceholderError> {
        let fetched = match walk.placeholder_files.get(location) {
            Some(read) => read.clone(),
            None => {
                if walk.files_read >= self.config.max_location_files {
                    return Err(PlaceholderError::TooManyFiles {
                        kind,
                        location: location.to_owned(),
                        limit: self.config.max_location_files,
                    });
                }
                walk.has_room(self.config, &format!("Placeholder ${kind} of {location}"))?;
                let fetched = self.source.fetch(location).await;
                if !matches!(fetched, Err(FetchError::Refused(_))) {
                    walk.files_read += 1;
                }
                let read = fetched.map_err(|source| UnreadPlaceholder {
                    kind,
                    target: target.to_owned(),
                    source,
                });
                walk.placeholder_files
                    .insert(location.to_owned(), read.clone());
                read
            }
        }?;
        fetched.ok_or_else(|| PlaceholderError::Missing {
            kind,
            target: target.to_owned(),
            location: location.to_owned(),
        })
    }

    /// What the placeholder becomes: the text, or the parsed JSON or YAML.
    fn placeholder_value(
        &self,
        kind: &'static str,
        target: &str,
        location: &str,
        bytes: &[u8],
    ) -> Result<Value, PlaceholderError> {
        let limits = &self.config.limits;
        if bytes.len() > limits.max_file_bytes {
            return Err(PlaceholderError::TooLarge {
                kind,
                location: location.to_owned(),
                limit: limits.max_file_bytes,
            });
        }
        Ok(match kind {
            "text" => Value::String(String::from_utf8_lossy(bytes).into_owned()),
            "json" => serde_json::from_slice(bytes).map_err(|source| PlaceholderError::Json {
                target: target.to_owned(),
                source,
            })?,
            _ => parse_single_document(bytes, limits).map_err(|source| PlaceholderError::Yaml {
                target: target.to_owned(),
                source,
            })?,
        })
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
fn find_placeholders(value: &Value, path: &mut Vec<Step>, out: &mut Vec<Found>) {
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
                out.push(Found {
                    path: path.clone(),
                    kind,
                    target: target.clone(),
                });
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
