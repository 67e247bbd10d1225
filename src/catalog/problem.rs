//! What went wrong with one file, document or entity. Problems are data,
//! not log lines: each run keeps them and the API serves them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What went wrong with one file or entity; the run goes on without it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The browse URL of the file the problem is about.
    pub url: String,
    pub kind: ProblemKind,
    /// 1-based position of the YAML document in the file, when one is meant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// The entity the problem is about, when it has a usable ref.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_ref: Option<String>,
    pub message: String,
    /// 1-based line of the field at fault in the file at `url` (the
    /// document's first line when nothing finer is known; 1 when unknown).
    #[serde(default = "first")]
    pub line: u32,
    /// 1-based column (in characters) on `line`; 1 when unknown.
    #[serde(default = "first")]
    pub column: u32,
    /// When the problem was found; `None` in problems stored before it was kept.
    #[serde(default, with = "crate::rfc3339::option")]
    pub at: Option<DateTime<Utc>>,
}

/// Problems stored before positions were kept are at 1:1.
fn first() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProblemKind {
    /// The file could not be read from Bitbucket.
    Read,
    /// The file is not usable YAML (or too large); none of its entities are kept.
    Parse,
    /// One entity failed validation or processing; its siblings are kept.
    Entity,
    /// `catalog.rules` does not allow a kind from this location; none of the
    /// file's entities are kept (as in Backstage).
    NotAllowed,
    /// A Location entity's target could not be followed; the Location and
    /// everything under it are not kept.
    Location,
    /// Another file or source already provides this entity.
    Conflict,
    /// The run's result could not be written to the store.
    Store,
}

/// The most of a message, URL or ref a problem keeps: problems quote what
/// files contain (a 5 MB entity name), and are logged and served.
const MAX_QUOTED_BYTES: usize = 2048;

/// `text` cut to [`MAX_QUOTED_BYTES`] (at a character boundary), saying how
/// much was left out.
pub(crate) fn capped(text: String) -> String {
    if text.len() <= MAX_QUOTED_BYTES {
        return text;
    }
    let mut end = MAX_QUOTED_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &text[..end], text.len() - end)
}

impl Problem {
    pub fn new(url: impl Into<String>, kind: ProblemKind, message: impl Into<String>) -> Self {
        Self {
            url: capped(url.into()),
            kind,
            document: None,
            entity_ref: None,
            message: capped(message.into()),
            line: 1,
            column: 1,
            at: Some(Utc::now()),
        }
    }

    pub fn in_document(mut self, document: usize) -> Self {
        self.document = Some(document);
        self
    }

    /// At 1-based `line` and `column` of its file (0 counts as 1).
    pub fn at_position(mut self, line: u32, column: u32) -> Self {
        self.line = line.max(1);
        self.column = column.max(1);
        self
    }

    pub fn for_entity(mut self, entity_ref: impl Into<String>) -> Self {
        self.entity_ref = Some(capped(entity_ref.into()));
        self
    }

    /// `url (document N, entity X)`, for one-line summaries.
    pub fn place(&self) -> String {
        let mut details = Vec::new();
        if let Some(document) = self.document {
            details.push(format!("document {document}"));
        }
        if let Some(entity_ref) = &self.entity_ref {
            details.push(entity_ref.clone());
        }
        if details.is_empty() {
            self.url.clone()
        } else {
            format!("{} ({})", self.url, details.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_served_and_old_records_read_as_1_1() {
        let problem = Problem::new("u", ProblemKind::Entity, "m").at_position(7, 3);
        let json = serde_json::to_value(&problem).unwrap();
        assert_eq!(
            (json["line"].as_u64(), json["column"].as_u64()),
            (Some(7), Some(3))
        );
        let old: Problem =
            serde_json::from_str(r#"{"url":"u","kind":"parse","message":"m"}"#).unwrap();
        assert_eq!((old.line, old.column), (1, 1));
    }
}
