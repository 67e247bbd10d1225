//! Turning an untrusted `catalog-info.yaml` into entities, with explicit
//! budgets so that a hostile file costs milliseconds and a per-file error,
//! never the process (serde_yaml can be made to abort on a 50 KB alias bomb).

use serde_json::Value;

use super::entity::Entity;

/// Bounds on what one catalog file may cost.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Larger files are rejected unread.
    pub max_file_bytes: usize,
    pub max_documents: usize,
    /// Backstage's YAML reader allows 100 aliases per document.
    pub max_aliases: usize,
    pub max_depth: usize,
    pub max_nodes: usize,
    /// Events replayed through aliases; the guard against quadratic expansion.
    pub max_alias_replay_events: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 1024 * 1024,
            max_documents: 100_000,
            max_aliases: 100,
            max_depth: 64,
            max_nodes: 1_000_000,
            max_alias_replay_events: 200_000,
        }
    }
}

/// Why a whole file yielded nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("file is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("invalid YAML: {0}")]
    Yaml(String),
}

/// Why one document of a file was skipped; its siblings are kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {index}: {message}")]
pub struct DocumentError {
    /// Zero-based position among the file's non-empty documents (the parser
    /// drops empty ones before we see them).
    pub index: usize,
    pub message: String,
}

/// The outcome of reading one file.
#[derive(Debug, Default)]
pub struct ParsedFile {
    /// `(document index, entity)` for every usable document.
    pub entities: Vec<(usize, Entity)>,
    pub errors: Vec<DocumentError>,
}

/// Parses a multi-document catalog file. Null documents are skipped (as
/// Backstage does); a document that is not an entity is reported and skipped.
pub fn parse_catalog_file(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedFile, FileError> {
    if bytes.len() > limits.max_file_bytes {
        return Err(FileError::TooLarge {
            size: bytes.len(),
            limit: limits.max_file_bytes,
        });
    }
    // Backstage decodes lossily; so do we, and let the parser judge the rest.
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let documents: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options(limits))
        .map_err(|err| FileError::Yaml(condense(&err.to_string())))?;
    let mut parsed = ParsedFile::default();
    for (index, document) in documents.into_iter().enumerate() {
        if document.is_null() {
            continue;
        }
        match to_entity(document) {
            Ok(entity) => parsed.entities.push((index, entity)),
            Err(message) => parsed.errors.push(DocumentError { index, message }),
        }
    }
    Ok(parsed)
}

fn options(limits: &ParseLimits) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = Some(limits.max_file_bytes);
    budget.max_documents = limits.max_documents;
    budget.max_aliases = limits.max_aliases;
    budget.max_depth = limits.max_depth;
    budget.max_nodes = limits.max_nodes;
    budget.max_total_scalar_bytes = limits.max_file_bytes * 8;
    // Anchors replay recorded events; bound what may be recorded, too.
    budget.max_recorded_anchor_events = limits.max_alias_replay_events;
    budget.max_recorded_anchor_bytes = limits.max_file_bytes * 4;
    let mut alias_limits = serde_saphyr::options::AliasLimits::default();
    alias_limits.max_total_replayed_events = limits.max_alias_replay_events;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits = alias_limits;
    // Backstage's YAML reader rejects duplicate keys and, being YAML 1.2,
    // treats `<<` as an ordinary key.
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.merge_keys = serde_saphyr::MergeKeyPolicy::AsOrdinary;
    options.with_snippet = false;
    options
}

/// Parser messages can span lines; errors travel in one line.
fn condense(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn to_entity(document: Value) -> Result<Entity, String> {
    let Value::Object(map) = &document else {
        return Err(format!(
            "expected an entity object, found {}",
            kind_of(&document)
        ));
    };
    for field in ["apiVersion", "kind"] {
        match map.get(field) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(other) => {
                return Err(format!(
                    "{field} must be a non-empty string, found {}",
                    kind_of(other)
                ));
            }
            None => return Err(format!("{field} is missing")),
        }
    }
    match map.get("metadata") {
        Some(Value::Object(metadata)) => match metadata.get("name") {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(other) => {
                return Err(format!(
                    "metadata.name must be a non-empty string, found {}",
                    kind_of(other)
                ));
            }
            None => return Err("metadata.name is missing".into()),
        },
        Some(other) => {
            return Err(format!(
                "metadata must be an object, found {}",
                kind_of(other)
            ));
        }
        None => return Err("metadata is missing".into()),
    }
    serde_json::from_value(document).map_err(|err| err.to_string())
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ParsedFile, FileError> {
        parse_catalog_file(text.as_bytes(), &ParseLimits::default())
    }

    #[test]
    fn multi_document_with_null_and_bad_documents() {
        let file = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: a\n---\n---\n- not an entity\n---\napiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: b\n  namespace: team\n";
        let parsed = parse(file).unwrap();
        let names: Vec<_> = parsed
            .entities
            .iter()
            .map(|(i, e)| (*i, e.metadata.name.as_str(), e.metadata.namespace.as_str()))
            .collect();
        assert_eq!(names, vec![(0, "a", "default"), (2, "b", "team")]);
        assert_eq!(parsed.errors.len(), 1);
        assert_eq!(parsed.errors[0].index, 1);
    }

    #[test]
    fn syntax_errors_and_size_are_file_errors() {
        assert!(matches!(parse("a: [unclosed"), Err(FileError::Yaml(_))));
        let big = "#".repeat(ParseLimits::default().max_file_bytes + 1);
        assert!(matches!(parse(&big), Err(FileError::TooLarge { .. })));
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        assert!(matches!(
            parse("apiVersion: a/b\napiVersion: c/d\n"),
            Err(FileError::Yaml(_))
        ));
    }

    /// The files that abort or stall serde_yaml are plain per-file errors
    /// here (their cost is measured in BENCHMARKS.md, not asserted).
    #[test]
    fn hostile_files_are_file_errors() {
        let items = vec!["x"; 10_000].join(",");
        let aliases = vec!["*a"; 10_000].join(",");
        let alias_bomb = format!("a: &a [{items}]\nb: [{aliases}]\n");
        let deep = "[".repeat(100_000);
        for hostile in [alias_bomb, deep] {
            assert!(matches!(parse(&hostile), Err(FileError::Yaml(_))));
        }
    }
}
