//! Where a field of a parsed document sits in its file. Positions are
//! looked up only for files with problems, in a second pass over the
//! parser's events (no values are built, aliases are not expanded), and
//! only the paths asked for are recorded: a valid file costs nothing and a
//! broken one costs one scan of the documents at fault.

use std::collections::{HashMap, HashSet};

use serde_saphyr::granit_parser::{Event, Parser, StructureStyle};

use super::{ParseLimits, split_documents};

/// A 1-based line and column (in characters) in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub line: u32,
    pub column: u32,
}

impl Position {
    pub(crate) const START: Position = Position { line: 1, column: 1 };

    /// Neither part below 1.
    pub(crate) fn clamped(self) -> Self {
        Position {
            line: self.line.max(1),
            column: self.column.max(1),
        }
    }
}

/// Which part of a field a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The key: an unknown or badly formed key.
    Key,
    /// The value: a wrong value, or (when missing) the nearest field that
    /// holds it.
    Value,
}

/// One position asked for: a field of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wanted {
    /// 1-based document number, as [`super::ParsedFile`] counts them.
    pub document: usize,
    /// Keys and list indexes from the document's root; empty for the
    /// document itself.
    pub path: Vec<String>,
    pub part: Part,
}

/// Where a found field's key and value start.
#[derive(Debug, Clone, Copy)]
struct Found {
    /// `None` for the document's root.
    key: Option<Position>,
    value: Position,
    /// A block mapping or list: its value starts on the next line, so the
    /// key's line is the one to show.
    block: bool,
}

impl Found {
    fn at(&self, part: Part) -> Position {
        match (part, self.key) {
            (Part::Key, Some(key)) => key,
            (Part::Value, Some(key)) if self.block => key,
            _ => self.value,
        }
    }
}

/// The position of each of `wanted` in `bytes` (the file as parsed), in
/// order: the field itself when it exists, else the nearest field holding
/// it (the line of `spec:` for a missing `spec.owner`), else the document's
/// first node. At most `limits.max_nodes` events are read per document.
pub(crate) fn locate(bytes: &[u8], wanted: &[Wanted], limits: &ParseLimits) -> Vec<Position> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let chunks: Vec<_> = split_documents(text)
        .into_iter()
        .filter(|c| c.is_document)
        .collect();
    let mut by_document: HashMap<usize, HashMap<Vec<String>, Found>> = HashMap::new();
    for document in wanted.iter().map(|w| w.document).collect::<HashSet<_>>() {
        let Some(chunk) = chunks.get(document.saturating_sub(1)) else {
            continue;
        };
        let paths: Vec<&[String]> = wanted
            .iter()
            .filter(|w| w.document == document)
            .map(|w| w.path.as_slice())
            .collect();
        let first_line = u32::try_from(chunk.first_line).unwrap_or(u32::MAX);
        by_document.insert(
            document,
            scan(chunk.text, &paths, first_line, limits.max_nodes),
        );
    }
    wanted
        .iter()
        .map(|w| {
            let Some(found) = by_document.get(&w.document) else {
                return Position::START;
            };
            // The field, else its nearest ancestor that exists.
            (0..=w.path.len())
                .rev()
                .find_map(|len| {
                    let hit = found.get(&w.path[..len])?;
                    Some(if len == w.path.len() {
                        hit.at(w.part)
                    } else {
                        hit.at(Part::Key)
                    })
                })
                .unwrap_or(Position::START)
        })
        .collect()
}

/// One open collection while scanning.
struct Frame {
    /// Whether any asked-for path lies under it (else nothing below is
    /// recorded, nor its keys copied).
    wanted: bool,
    /// Pushed a segment onto the current path.
    pushed: bool,
    kind: FrameKind,
}

enum FrameKind {
    /// In a mapping: the pending key (text and position) once read.
    Map(Option<(String, Position)>),
    /// In a list: the next index.
    Seq(usize),
    /// Inside a complex (non-scalar) key: skipped; open collections count.
    Skip(usize),
}

/// The positions of `paths` (and their ancestors) in one document's text.
fn scan(
    text: &str,
    paths: &[&[String]],
    first_line: u32,
    max_events: usize,
) -> HashMap<Vec<String>, Found> {
    let prefixes: HashSet<&[String]> = paths
        .iter()
        .flat_map(|p| (0..=p.len()).map(move |len| &p[..len]))
        .collect();
    let shift = |line: usize, col: usize| Position {
        line: u32::try_from(line)
            .unwrap_or(u32::MAX)
            .saturating_add(first_line.saturating_sub(1))
            .max(1),
        column: u32::try_from(col).unwrap_or(u32::MAX).saturating_add(1),
    };
    let mut found = HashMap::new();
    let mut path: Vec<String> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    for event in Parser::new_from_str(text).take(max_events) {
        // The document parsed before; an error here ends the scan.
        let Ok((event, span)) = event else { break };
        let here = shift(span.start.line(), span.start.col());
        let (opens, block) = match &event {
            Event::MappingStart(style, ..) | Event::SequenceStart(style, ..) => {
                (true, *style == StructureStyle::Block)
            }
            Event::MappingEnd | Event::SequenceEnd => {
                close(&mut stack, &mut path);
                continue;
            }
            Event::Scalar(..) | Event::Alias(..) => (false, false),
            _ => continue,
        };
        // Where this node sits: the root, a key, a value or a list item.
        let (segment, key) = match role(&mut stack, &event, here, opens) {
            Role::Root => (None, None),
            Role::Child(name, parent_wanted, key) => (Some((name, parent_wanted)), Some(key)),
            Role::Done => continue,
            Role::ComplexKey => {
                stack.push(Frame {
                    wanted: false,
                    pushed: false,
                    kind: FrameKind::Skip(1),
                });
                continue;
            }
        };
        let wanted = match segment {
            None => true,
            Some((name, parent_wanted)) => {
                path.push(name);
                let wanted = parent_wanted && prefixes.contains(path.as_slice());
                if !wanted {
                    path.pop();
                }
                wanted
            }
        };
        if wanted {
            found.insert(
                path.clone(),
                Found {
                    key,
                    value: here,
                    block: opens && block,
                },
            );
        }
        let pushed = wanted && key.is_some();
        if opens {
            let kind = if matches!(event, Event::MappingStart(..)) {
                FrameKind::Map(None)
            } else {
                FrameKind::Seq(0)
            };
            stack.push(Frame {
                wanted,
                pushed,
                kind,
            });
        } else if pushed {
            path.pop();
        }
    }
    found
}

/// What a node is to the collection it is in.
enum Role {
    Root,
    /// A value or list item: its key or index, whether its parent is
    /// wanted, and where its key (or item) starts.
    Child(String, bool, Position),
    /// Nothing more to do (a key read, or inside a skipped key).
    Done,
    /// A key that is a collection: skipped.
    ComplexKey,
}

fn role(stack: &mut [Frame], event: &Event<'_>, here: Position, opens: bool) -> Role {
    let Some(frame) = stack.last_mut() else {
        return Role::Root;
    };
    match &mut frame.kind {
        FrameKind::Skip(open) => {
            if opens {
                *open += 1;
            }
            Role::Done
        }
        FrameKind::Map(pending) => match pending.take() {
            Some((name, key)) => Role::Child(name, frame.wanted, key),
            None => match event {
                Event::Scalar(value, ..) => {
                    // Keys are copied only where a wanted path may lie.
                    let name = if frame.wanted {
                        value.to_string()
                    } else {
                        String::new()
                    };
                    *pending = Some((name, here));
                    Role::Done
                }
                Event::Alias(..) => {
                    *pending = Some((String::new(), here));
                    Role::Done
                }
                _ => {
                    // Its value comes after it, under a name no path has.
                    *pending = Some((String::new(), here));
                    Role::ComplexKey
                }
            },
        },
        FrameKind::Seq(next) => {
            let index = *next;
            *next += 1;
            let name = if frame.wanted {
                index.to_string()
            } else {
                String::new()
            };
            Role::Child(name, frame.wanted, here)
        }
    }
}

/// A collection ends: its frame goes, with its path segment.
fn close(stack: &mut Vec<Frame>, path: &mut Vec<String>) {
    if let Some(Frame {
        kind: FrameKind::Skip(open),
        ..
    }) = stack.last_mut()
    {
        *open -= 1;
        if *open > 0 {
            return;
        }
    }
    if let Some(frame) = stack.pop()
        && frame.pushed
    {
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, document: usize, path: &str, part: Part) -> (u32, u32) {
        let path = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').map(str::to_owned).collect()
        };
        let wanted = [Wanted {
            document,
            path,
            part,
        }];
        let p = locate(text.as_bytes(), &wanted, &ParseLimits::default())[0];
        (p.line, p.column)
    }

    const FILE: &str = "# comment\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: Bad Name\n  tags: [ok, Bad]\n  labels:\n    ? [complex]\n    : x\n    k: v\nspec:\n  type: service\n---\nkind: API\nmetadata: {name: b}\n";

    #[test]
    fn fields_missing_fields_and_documents_have_their_place() {
        use Part::{Key, Value};
        let cases = [
            ("value", 1, "metadata/name", Value, (5, 9)),
            ("key", 1, "metadata/name", Key, (5, 3)),
            ("flow list item", 1, "metadata/tags/1", Value, (6, 14)),
            ("block mapping shows its key", 1, "metadata", Value, (4, 1)),
            (
                "after a complex key",
                1,
                "metadata/labels/k",
                Value,
                (10, 8),
            ),
            (
                "missing: the nearest holder",
                1,
                "spec/owner",
                Value,
                (11, 1),
            ),
            ("missing at the root", 1, "relations", Value, (2, 1)),
            ("second document", 2, "metadata/name", Value, (15, 18)),
            ("second document's root", 2, "", Value, (14, 1)),
            ("no such document", 3, "kind", Value, (1, 1)),
        ];
        for (case, document, path, part, expected) in cases {
            assert_eq!(at(FILE, document, path, part), expected, "{case}");
        }
    }

    #[test]
    fn aliases_are_not_followed() {
        let text = "x: &a {owner: t}\nspec: *a\n";
        assert_eq!(at(text, 1, "spec/owner", Part::Value), (2, 1));
        assert_eq!(at(text, 1, "spec", Part::Value), (2, 7));
    }
}
