//! Turning an untrusted `catalog-info.yaml` into JSON documents, with
//! explicit budgets so that a hostile file costs milliseconds and an error,
//! never the process (serde_yaml can be made to abort on a 50 KB alias bomb).
//!
//! Backstage reads files with the `yaml` package (v2) `parseAllDocuments`:
//! YAML 1.2 core schema (`yes` is a string), merge keys off (`<<` is an
//! ordinary key), duplicate keys an error, null documents skipped, and errors
//! attached to the document they occur in. We split the stream into documents
//! ourselves so that an error names its document, as Backstage's does.

mod positions;

use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value};

pub(crate) use positions::{Part, Position, Wanted, locate};

/// Bounds on what one catalog file may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

pub(crate) const DEFAULT_MAX_FILE_BYTES: usize = 1024 * 1024;

impl Default for ParseLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_documents: 10_000,
            max_aliases: 100,
            max_depth: 64,
            max_nodes: 1_000_000,
            max_alias_replay_events: 200_000,
        }
    }
}

/// Why a whole file yielded nothing before any document was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error(
        "file is larger than the {limit}-byte limit (catalog.processing.maxFileSize); split it or raise the limit"
    )]
    TooLarge { size: usize, limit: usize },
    #[error("file has more than {limit} YAML documents")]
    TooManyDocuments { limit: usize },
}

/// One document of a file that is not usable; in Backstage such an error
/// fails the whole file's location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {document}: {message}")]
pub struct DocumentError {
    /// 1-based position of the document in the file.
    pub document: usize,
    pub message: String,
    /// Where in the file the parser stopped (the document's first line
    /// when it does not say).
    pub(crate) position: Position,
}

/// The documents of one file.
#[derive(Debug, Default)]
pub struct ParsedFile {
    /// `(1-based document number, object)` for every document that is a
    /// JSON object; null documents are skipped.
    pub documents: Vec<(usize, Map<String, Value>)>,
    pub errors: Vec<DocumentError>,
}

/// Parses a multi-document catalog file.
pub fn parse_catalog_file(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedFile, FileError> {
    if bytes.len() > limits.max_file_bytes {
        return Err(FileError::TooLarge {
            size: bytes.len(),
            limit: limits.max_file_bytes,
        });
    }
    // Backstage decodes lossily (Buffer.toString); so do we, and let the
    // validators judge the replacement characters.
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let chunks = split_documents(text);
    let counted = chunks.iter().filter(|c| c.is_document).count();
    if counted > limits.max_documents {
        return Err(FileError::TooManyDocuments {
            limit: limits.max_documents,
        });
    }
    let mut parsed = ParsedFile::default();
    let mut number = 0;
    for chunk in chunks {
        if chunk.is_document {
            number += 1;
        }
        let documents: Vec<Value> =
            match serde_saphyr::from_multiple_with_options(chunk.text, options(limits)) {
                Ok(documents) => documents,
                Err(err) => {
                    parsed.errors.push(DocumentError {
                        document: number.max(1),
                        message: format!(
                            "invalid YAML: {}",
                            shift_lines(&condense(&err.to_string()), chunk.first_line)
                        ),
                        position: error_position(&err, chunk.first_line),
                    });
                    continue;
                }
            };
        for document in documents {
            match normalize(document) {
                Value::Null => {}
                Value::Object(map) => parsed.documents.push((number.max(1), map)),
                other => parsed.errors.push(DocumentError {
                    document: number.max(1),
                    message: format!(
                        "expected an entity object at root, found {}",
                        kind_of(&other)
                    ),
                    position: first_node(chunk.text, chunk.first_line),
                }),
            }
        }
    }
    Ok(parsed)
}

/// Why a `$yaml` placeholder's file is not one usable document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SingleDocumentError {
    #[error("larger than the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("expected exactly one document, found {found}")]
    NotOne { found: usize },
    /// The YAML reader's message, condensed and with file line numbers.
    #[error("{0}")]
    Yaml(String),
}

/// One YAML document of any shape, for `$yaml` placeholders: exactly one
/// document is required, as Backstage's resolver does.
pub(crate) fn parse_single_document(
    bytes: &[u8],
    limits: &ParseLimits,
) -> Result<Value, SingleDocumentError> {
    if bytes.len() > limits.max_file_bytes {
        return Err(SingleDocumentError::TooLarge {
            limit: limits.max_file_bytes,
        });
    }
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let chunks: Vec<Chunk<'_>> = split_documents(text)
        .into_iter()
        .filter(|c| c.is_document)
        .collect();
    let [chunk] = chunks.as_slice() else {
        return Err(SingleDocumentError::NotOne {
            found: chunks.len(),
        });
    };
    let mut documents: Vec<Value> =
        serde_saphyr::from_multiple_with_options(chunk.text, options(limits)).map_err(|err| {
            SingleDocumentError::Yaml(shift_lines(&condense(&err.to_string()), chunk.first_line))
        })?;
    Ok(documents.pop().map_or(Value::Null, normalize))
}

struct Chunk<'a> {
    text: &'a str,
    /// 1-based line of the chunk's first line in the file.
    first_line: usize,
    /// Has a `---` marker or content (a leading comment block is not a document).
    is_document: bool,
}

/// Splits a YAML stream at its document markers (`---` and `...` at column
/// 0). YAML forbids those markers inside any scalar, so a line-based split
/// finds the same boundaries as a full parser.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut first_line = 1;
    let mut is_document = false;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let line_no = index + 1;
        if is_marker(line, "---") {
            if is_document {
                chunks.push(Chunk {
                    text: &text[start..offset],
                    first_line,
                    is_document,
                });
                start = offset;
                first_line = line_no;
            }
            is_document = true;
        } else if is_marker(line, "...") {
            chunks.push(Chunk {
                text: &text[start..offset + line.len()],
                first_line,
                is_document,
            });
            start = offset + line.len();
            first_line = line_no + 1;
            is_document = false;
        } else {
            let trimmed = line.trim_start();
            if !(trimmed.is_empty() || trimmed.starts_with('#') || line.starts_with('%')) {
                is_document = true;
            }
        }
        offset += line.len();
    }
    if start < text.len() {
        chunks.push(Chunk {
            text: &text[start..],
            first_line,
            is_document,
        });
    }
    chunks
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

fn options(limits: &ParseLimits) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = Some(limits.max_file_bytes);
    budget.max_documents = 2;
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
    // The `yaml` package's defaults: unique keys, `<<` an ordinary key
    // (merge is off in YAML 1.2), only true/false are booleans, and
    // `.inf`/`.nan` become null once the entity is JSON.
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.merge_keys = serde_saphyr::MergeKeyPolicy::AsOrdinary;
    options.strict_booleans = true;
    options.non_finite_float_policy = serde_saphyr::options::NonFiniteFloatPolicy::PassThrough;
    options.with_snippet = false;
    options
}

/// JavaScript has one number type: `1e3` is `1000`, not `1000.0`.
fn normalize(value: Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                // Exact: |f| < 2^53 and integral.
                Value::from(f as i64)
            }
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, normalize(v))).collect())
        }
        other => other,
    }
}

/// Where the parser says `err` is, counted from the start of the file.
fn error_position(err: &serde_saphyr::Error, first_line: usize) -> Position {
    let Some(location) = err.location() else {
        return Position {
            line: u32::try_from(first_line).unwrap_or(u32::MAX),
            column: 1,
        };
    };
    let shift = u64::try_from(first_line.saturating_sub(1)).unwrap_or(0);
    Position {
        line: u32::try_from(location.line().saturating_add(shift)).unwrap_or(u32::MAX),
        column: u32::try_from(location.column()).unwrap_or(u32::MAX),
    }
    .clamped()
}

/// The first line of a chunk with content (past comments and markers).
fn first_node(text: &str, first_line: usize) -> Position {
    let skipped = text
        .lines()
        .take_while(|line| {
            let trimmed = line.trim_start();
            trimmed.is_empty() || trimmed.starts_with('#') || is_marker(line, "---")
        })
        .count();
    Position {
        line: u32::try_from(first_line.saturating_add(skipped)).unwrap_or(u32::MAX),
        column: 1,
    }
}

/// Parser messages can span lines; errors travel in one line.
fn condense(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The parser counts lines from the start of the document; users count from
/// the start of the file.
fn shift_lines(message: &str, first_line: usize) -> String {
    static LINE: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(re) = LINE.get_or_init(|| Regex::new(r"line (\d+)").ok()) else {
        return message.to_owned();
    };
    re.replace_all(message, |caps: &regex::Captures<'_>| {
        let line: usize = caps[1].parse().unwrap_or(0);
        format!("line {}", line + first_line - 1)
    })
    .into_owned()
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
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

    fn parse(text: &str) -> ParsedFile {
        parse_catalog_file(text.as_bytes(), &ParseLimits::default()).unwrap()
    }

    fn names(parsed: &ParsedFile) -> Vec<(usize, String)> {
        parsed
            .documents
            .iter()
            .map(|(n, doc)| {
                (
                    *n,
                    doc["metadata"]["name"].as_str().unwrap_or("?").to_owned(),
                )
            })
            .collect()
    }

    const A: &str = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: a\n";
    const B: &str = "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: b\n";

    #[test]
    fn documents_are_numbered_as_a_reader_counts_them() {
        let file = format!("# leading comment\n{A}---\n---\n- not an entity\n---\n{B}...\n");
        let parsed = parse(&file);
        assert_eq!(names(&parsed), vec![(1, "a".into()), (4, "b".into())]);
        assert_eq!(parsed.errors.len(), 1);
        assert_eq!(parsed.errors[0].document, 3);
        assert!(parsed.errors[0].message.contains("found a list"));
    }

    #[test]
    fn a_broken_document_is_reported_with_its_number_and_file_line() {
        let file = format!(
            "{A}---\napiVersion: backstage.io/v1alpha1\n  this: - is - not [valid] yaml\n---\n{B}"
        );
        let parsed = parse(&file);
        assert_eq!(names(&parsed), vec![(1, "a".into()), (3, "b".into())]);
        assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);
        assert_eq!(parsed.errors[0].document, 2);
        assert!(
            parsed.errors[0].message.contains("line 7"),
            "{}",
            parsed.errors[0].message
        );
        assert_eq!(parsed.errors[0].position.line, 7);
    }

    /// Each odd input and what Backstage's reader makes of it: `Ok(n)` is n
    /// object documents and no error, `Err(())` is a document error.
    #[test]
    fn odd_inputs_behave_like_backstage() {
        let cases: Vec<(&str, Vec<u8>, Result<usize, ()>)> = vec![
            ("empty file", b"".to_vec(), Ok(0)),
            ("only comments", b"# nothing\n   # here\n".to_vec(), Ok(0)),
            ("only markers", b"---\n---\n...\n".to_vec(), Ok(0)),
            (
                "json",
                br#"{"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "j"}}"#.to_vec(),
                Ok(1),
            ),
            ("tab indentation", b"metadata:\n\tname: x\n".to_vec(), Err(())),
            ("tab inside a value", b"a:\tb\nc: d\te\n".to_vec(), Ok(1)),
            ("duplicate keys", b"a: 1\na: 2\n".to_vec(), Err(())),
            ("scalar root", b"i-am-a-string".to_vec(), Err(())),
            ("reserved character", b"`".to_vec(), Err(())),
            ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec(), Err(())),
            ("invalid utf-8 in a value", b"a: caf\xe9\n".to_vec(), Ok(1)),
            ("directive", b"%YAML 1.2\n---\na: 1\n".to_vec(), Ok(1)),
        ];
        for (name, bytes, expected) in cases {
            let parsed = parse_catalog_file(&bytes, &ParseLimits::default()).unwrap();
            let got = if parsed.errors.is_empty() {
                Ok(parsed.documents.len())
            } else {
                Err(())
            };
            assert_eq!(got, expected, "{name}: {:?}", parsed.errors);
        }
    }

    #[test]
    fn yaml_1_2_core_schema_and_merge_keys_off() {
        let parsed = parse(
            "a: yes\nb: on\nc: 0x10\nd: 1e3\ne: ~\nf: 2001-01-01\ng: .inf\nbase: &b {x: 1}\nm:\n  <<: *b\n",
        );
        let doc = &parsed.documents[0].1;
        assert_eq!(doc["a"], "yes");
        assert_eq!(doc["b"], "on");
        assert_eq!(doc["c"], 16);
        assert_eq!(doc["d"], serde_json::json!(1000));
        assert!(doc["e"].is_null());
        assert_eq!(doc["f"], "2001-01-01");
        assert!(doc["g"].is_null());
        assert_eq!(doc["m"], serde_json::json!({"<<": {"x": 1}}));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        let parsed = parse_catalog_file(b"name: caf\xe9\n", &ParseLimits::default()).unwrap();
        assert_eq!(parsed.documents[0].1["name"], "caf\u{fffd}");
    }

    #[test]
    fn size_and_document_count_are_file_errors() {
        let big = "#".repeat(ParseLimits::default().max_file_bytes + 1);
        assert!(matches!(
            parse_catalog_file(big.as_bytes(), &ParseLimits::default()),
            Err(FileError::TooLarge { .. })
        ));
        let limits = ParseLimits {
            max_documents: 2,
            ..ParseLimits::default()
        };
        assert!(matches!(
            parse_catalog_file(b"a: 1\n---\nb: 2\n---\nc: 3\n", &limits),
            Err(FileError::TooManyDocuments { limit: 2 })
        ));
    }

    /// The files that abort or stall serde_yaml are plain document errors
    /// here (their cost is measured in BENCHMARKS.md, not asserted).
    #[test]
    fn hostile_documents_are_errors() {
        let items = vec!["x"; 10_000].join(",");
        let aliases = vec!["*a"; 10_000].join(",");
        let alias_bomb = format!("a: &a [{items}]\nb: [{aliases}]\n");
        let deep = "[".repeat(100_000);
        let deep_maps = "a:\n".to_owned()
            + &(1..200)
                .map(|i| format!("{}a:\n", "  ".repeat(i)))
                .collect::<String>();
        let laughs = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
        for hostile in [alias_bomb, deep, deep_maps, laughs.to_owned()] {
            let parsed = parse(&hostile);
            assert!(parsed.documents.is_empty(), "{}", &hostile[..40]);
            assert_eq!(parsed.errors.len(), 1);
        }
    }

    #[test]
    fn a_few_anchors_and_aliases_are_fine() {
        let parsed = parse("x: &owner team-a\nspec:\n  owner: *owner\n");
        assert_eq!(parsed.documents[0].1["spec"]["owner"], "team-a");
    }
}
