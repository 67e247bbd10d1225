//! The per-entity search rows that filters, ordering, facets and full-text
//! search run on — Backstage's `buildEntitySearch`:
//!
//! - every scalar leaf becomes `path = value`; arrays repeat their path (no
//!   index), and a string item also yields `path.<item> = true`;
//! - `relations`, `status`, `attachments`, `metadata.{name,namespace,uid,etag}`
//!   are not traversed; `metadata.name`, `.namespace` (default `default`),
//!   `.uid` and `relations.<type> = <targetRef>` are added explicitly;
//! - keys are lowercased; keys over 200 characters are dropped; values over
//!   200 characters keep the key (it "exists") but lose the value.
//!
//! Rows are packed into one string per entity, compactly: the common keys
//! as a one-character code, and a value that is verbatim in the served JSON
//! (most are: description, annotations, uid, refs, ...) as a reference to
//! its place there, so the text is held once, in the body. Rows packed
//! before references into the body existed are read and packed again.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

const MAX_LEN: usize = 200;
const SKIPPED: &[&str] = &[
    "attachments",
    "relations",
    "status",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.etag",
];
/// Separators that cannot appear in a lowercased key or in JSON-derived text
/// without being escaped by us first.
const KEY_END: char = '\u{1}';
const NULL_VALUE: char = '\u{2}';
const ROW_END: char = '\u{3}';
/// Starts a key given as its index in [`KEYS`] (one character after it).
const KEY_CODE: char = '\u{4}';
/// Starts the compact form of the second version (read, no longer written).
const COMPACT: char = '\u{5}';
/// A value given as `offset:len` of earlier text in the rows (read only).
const VALUE_REF: char = '\u{6}';
/// Starts the current form: the length of the body the references point
/// into, then the rows; a value is then a [`JSON_REF`], or written out.
const IN_BODY: char = '\u{7}';
/// A value given as offset and length (each a [`number`]) of the body.
const JSON_REF: char = '\u{8}';
const SEPARATORS: [char; 8] = [
    KEY_END, NULL_VALUE, ROW_END, KEY_CODE, COMPACT, VALUE_REF, IN_BODY, JSON_REF,
];
/// The first character of a key code; `KEYS[i]` is `CODE_BASE + i`.
const CODE_BASE: u32 = 0x30;

/// Keys most entities have, written as a code (never reorder: stored rows
/// hold their indexes; append only).
const KEYS: &[&str] = &[
    "apiversion",
    "kind",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.title",
    "metadata.description",
    "metadata.tags",
    "metadata.links.url",
    "metadata.links.title",
    "metadata.links.icon",
    "metadata.links.type",
    "metadata.annotations.backstage.io/managed-by-location",
    "metadata.annotations.backstage.io/managed-by-origin-location",
    "metadata.annotations.backstage.io/view-url",
    "metadata.annotations.backstage.io/edit-url",
    "metadata.annotations.backstage.io/source-location",
    "metadata.annotations.backstage.io/techdocs-ref",
    "metadata.annotations.bitbucket.org/default-branch",
    "metadata.annotations.bitbucket-catalogd/generated",
    "spec.type",
    "spec.lifecycle",
    "spec.owner",
    "spec.system",
    "spec.domain",
    "spec.subcomponentof",
    "spec.providesapis",
    "spec.consumesapis",
    "spec.dependson",
    "spec.dependencyof",
    "spec.definition",
    "spec.target",
    "spec.targets",
    "spec.children",
    "spec.parent",
    "spec.memberof",
    "spec.profile.displayname",
    "spec.profile.email",
    "spec.profile.picture",
    "relations.ownedby",
    "relations.ownerof",
    "relations.partof",
    "relations.haspart",
    "relations.dependson",
    "relations.dependencyof",
    "relations.providesapi",
    "relations.apiprovidedby",
    "relations.consumesapi",
    "relations.apiconsumedby",
    "relations.childof",
    "relations.parentof",
    "relations.memberof",
    "relations.hasmember",
];

/// An entity's search rows, packed, beside the served body their values
/// point into (the same `Arc` as the entity's: 16 bytes, not a copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRows {
    body: Arc<str>,
    packed: Box<str>,
}

impl Default for SearchRows {
    fn default() -> Self {
        Self {
            body: Arc::from(""),
            packed: Box::from(""),
        }
    }
}

/// One row: the lowercased key and the original (not lowercased) value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row<'a> {
    pub key: &'a str,
    pub value: Option<&'a str>,
}

impl SearchRows {
    /// The rows of `entity`, every value written out (for values that have
    /// no served body, e.g. a location).
    pub fn build(entity: &Value) -> Self {
        Self::build_in(entity, Arc::from(""))
    }

    /// The rows of `entity`, served as `body` (its JSON text): values that
    /// are verbatim in it are references into it.
    pub fn build_in(entity: &Value, body: Arc<str>) -> Self {
        let mut builder = Builder::new(body);
        builder.traverse("", entity);
        let metadata = entity.get("metadata");
        let field = |name: &str| metadata.and_then(|m| m.get(name));
        builder.push("metadata.name", field("name"));
        builder.push("metadata.namespace", field("namespace"));
        builder.push("metadata.uid", field("uid"));
        if field("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            builder.push(
                "metadata.namespace",
                Some(&Value::String(
                    crate::catalog::entity::DEFAULT_NAMESPACE.to_owned(),
                )),
            );
        }
        if let Some(Value::Array(relations)) = entity.get("relations") {
            for relation in relations {
                if let (Some(Value::String(kind)), Some(target)) =
                    (relation.get("type"), relation.get("targetRef"))
                {
                    builder.push(&format!("relations.{kind}"), Some(target));
                }
            }
        }
        builder.finish()
    }

    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        let rows = self.packed.strip_prefix(IN_BODY).and_then(|rest| {
            let (_, rest) = number(rest)?;
            Some(rest)
        });
        rows.unwrap_or_default()
            .split_terminator(ROW_END)
            .filter_map(|row| self.row(row))
    }

    /// One row of the current form.
    fn row<'a>(&'a self, row: &'a str) -> Option<Row<'a>> {
        let (key, value) = match row.strip_prefix(KEY_CODE) {
            Some(coded) => {
                let code = coded.chars().next()?;
                let index = usize::try_from((code as u32).checked_sub(CODE_BASE)?).ok()?;
                (*KEYS.get(index)?, coded.get(code.len_utf8()..)?)
            }
            None => row.split_once(KEY_END)?,
        };
        let value = if value.starts_with(NULL_VALUE) {
            None
        } else if let Some(at) = value.strip_prefix(JSON_REF) {
            let (offset, rest) = number(at)?;
            let (len, _) = number(rest)?;
            Some(self.body.get(offset..offset.checked_add(len)?)?)
        } else {
            Some(value)
        };
        Some(Row { key, value })
    }

    /// The rows under `key` (already lowercased).
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = Option<&'a str>> + 'a {
        self.rows()
            .filter(move |row| row.key == key)
            .map(|row| row.value)
    }

    pub fn has_key(&self, key: &str) -> bool {
        self.rows().any(|row| row.key == key)
    }

    /// The packed form, for storage (valid with the same body only).
    pub fn packed(&self) -> &str {
        &self.packed
    }

    /// These rows in the first, plain form (keys and values written out), as
    /// an older version stored them.
    #[cfg(test)]
    pub(crate) fn plain_form(&self) -> String {
        let mut plain = String::new();
        for row in self.rows() {
            plain.push_str(row.key);
            plain.push(KEY_END);
            match row.value {
                Some(value) => plain.push_str(value),
                None => plain.push(NULL_VALUE),
            }
            plain.push(ROW_END);
        }
        plain
    }

    /// Whether `packed` is in the current form (rows of an earlier form are
    /// packed again at every load until stored anew).
    pub fn is_current(packed: &str) -> bool {
        packed.starts_with(IN_BODY)
    }

    /// Rows stored with [`SearchRows::packed`] for `body`. Rows packed in an
    /// earlier form are packed again; rows whose references do not fit
    /// `body` (it is not the one they were packed for) are built anew from it.
    pub fn from_packed(packed: String, body: Arc<str>) -> Self {
        if packed.starts_with(IN_BODY) {
            let rows = Self {
                body,
                packed: packed.into_boxed_str(),
            };
            if rows.fits() {
                return rows;
            }
            return match serde_json::from_str::<Value>(&rows.body) {
                Ok(value) => Self::build_in(&value, rows.body),
                Err(_) => Self {
                    body: rows.body,
                    ..Self::default()
                },
            };
        }
        let mut builder = Builder::new(body);
        for (key, value) in earlier_rows(&packed) {
            builder.write(&key, value.as_deref());
        }
        builder.finish()
    }

    /// Packed for a body of this length, and every row reads.
    fn fits(&self) -> bool {
        let Some(rest) = self.packed.strip_prefix(IN_BODY) else {
            return false;
        };
        let Some((len, rows)) = number(rest) else {
            return false;
        };
        len == self.body.len()
            && rows
                .split_terminator(ROW_END)
                .all(|row| self.row(row).is_some())
    }
}

/// The rows of the two earlier forms (plain, and compact with references
/// into the rows themselves), keys and values cleaned of separators.
fn earlier_rows(packed: &str) -> Vec<(String, Option<String>)> {
    let compact = packed.strip_prefix(COMPACT);
    let body = compact.unwrap_or(packed);
    let clean = |text: &str| text.replace(SEPARATORS, "");
    let mut out = Vec::new();
    for row in body.split_terminator(ROW_END) {
        let Some((key, value)) = row.split_once(KEY_END) else {
            continue;
        };
        let key = match key.strip_prefix(KEY_CODE).filter(|_| compact.is_some()) {
            Some(code) => {
                let index = code
                    .chars()
                    .next()
                    .and_then(|c| (c as u32).checked_sub(CODE_BASE))
                    .and_then(|i| usize::try_from(i).ok());
                match index.and_then(|i| KEYS.get(i)) {
                    Some(key) => (*key).to_owned(),
                    None => continue,
                }
            }
            None => clean(key),
        };
        let value = if value.starts_with(NULL_VALUE) {
            None
        } else if let Some(at) = value.strip_prefix(VALUE_REF).filter(|_| compact.is_some()) {
            let earlier = at.split_once(':').and_then(|(offset, len)| {
                let offset: usize = offset.parse().ok()?;
                let len: usize = len.parse().ok()?;
                packed.get(offset..offset.checked_add(len)?)
            });
            match earlier {
                Some(text) => Some(clean(text)),
                None => continue,
            }
        } else {
            Some(clean(value))
        };
        out.push((key, value));
    }
    out
}

/// Numbers in packed rows: base-47 digits, most significant first, every
/// digit but the last from `'P'` (0x50) on, the last from `'!'` (0x21) on;
/// a reference into a body of up to 2 KiB is two characters, not four.
const DIGITS: u32 = 47;
const LAST_DIGIT: u32 = 0x21;
const MORE_DIGIT: u32 = 0x50;

fn write_number(out: &mut String, value: usize) {
    let mut digits = [0u32; 16];
    let mut count = 0;
    let mut rest = value;
    loop {
        // DIGITS fits any usize's remainder.
        digits[count] = u32::try_from(rest % DIGITS as usize).unwrap_or(0);
        count += 1;
        rest /= DIGITS as usize;
        if rest == 0 || count == digits.len() {
            break;
        }
    }
    for (i, digit) in digits[..count].iter().rev().enumerate() {
        let base = if i + 1 == count {
            LAST_DIGIT
        } else {
            MORE_DIGIT
        };
        out.extend(char::from_u32(base + digit));
    }
}

/// A number written by [`write_number`] at the start of `text`, and the
/// text after it.
fn number(text: &str) -> Option<(usize, &str)> {
    let mut value: usize = 0;
    for (at, c) in text.char_indices() {
        let c = c as u32;
        let (digit, last) = if (MORE_DIGIT..MORE_DIGIT + DIGITS).contains(&c) {
            (c - MORE_DIGIT, false)
        } else if (LAST_DIGIT..LAST_DIGIT + DIGITS).contains(&c) {
            (c - LAST_DIGIT, true)
        } else {
            return None;
        };
        value = value
            .checked_mul(DIGITS as usize)?
            .checked_add(digit as usize)?;
        if last {
            return Some((value, text.get(at + 1..)?));
        }
    }
    None
}

struct Builder {
    body: Arc<str>,
    out: String,
    seen: HashSet<(String, Option<String>)>,
    /// Where in `body` the last value found was: values come in the order
    /// the body was written, so the next is usually just after.
    cursor: usize,
}

impl Builder {
    fn new(body: Arc<str>) -> Self {
        let mut out = String::new();
        out.push(IN_BODY);
        write_number(&mut out, body.len());
        Self {
            body,
            out,
            seen: HashSet::new(),
            cursor: 0,
        }
    }

    fn traverse(&mut self, path: &str, value: &Value) {
        if SKIPPED.contains(&path) {
            return;
        }
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let child_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    self.traverse(&child_path, child);
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.traverse(path, item);
                    if let Value::String(text) = item {
                        self.push(&format!("{path}.{text}"), Some(&Value::Bool(true)));
                    }
                }
            }
            scalar => self.push(path, Some(scalar)),
        }
    }

    fn push(&mut self, key: &str, value: Option<&Value>) {
        let key = key.to_lowercase();
        if key.len() > MAX_LEN || key.is_empty() {
            return;
        }
        let text = match value {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        // Too long to index: the key still exists, without a value.
        let text = text.filter(|t| t.chars().count() <= MAX_LEN);
        // Our separators must not occur in the data.
        let text = text.map(|t| t.replace(SEPARATORS, ""));
        let key = key.replace(SEPARATORS, "");
        let dedup_value = text.as_ref().map(|t| t.to_lowercase());
        if !self
            .seen
            .insert((key.clone(), dedup_value.or_else(|| Some(String::new()))))
        {
            return;
        }
        self.write(&key, text.as_deref());
    }

    /// Appends one row (key and value already clean).
    fn write(&mut self, key: &str, value: Option<&str>) {
        match KEYS
            .iter()
            .position(|k| *k == key)
            .and_then(|i| u32::try_from(i).ok())
            .and_then(|i| char::from_u32(i + CODE_BASE))
        {
            Some(code) => {
                self.out.push(KEY_CODE);
                self.out.push(code);
            }
            None => {
                self.out.push_str(key);
                self.out.push(KEY_END);
            }
        }
        match value {
            None => self.out.push(NULL_VALUE),
            Some(text) => {
                let mut reference = String::new();
                if let Some(offset) = self.in_body(text) {
                    reference.push(JSON_REF);
                    write_number(&mut reference, offset);
                    write_number(&mut reference, text.len());
                }
                // A reference only where it is shorter than the text.
                if !reference.is_empty() && reference.len() < text.len() {
                    self.out.push_str(&reference);
                } else {
                    self.out.push_str(text);
                }
            }
        }
        self.out.push(ROW_END);
    }

    /// Where `text` is in the body (worth looking only when a reference
    /// would be shorter than it).
    fn in_body(&mut self, text: &str) -> Option<usize> {
        if text.len() < 4 {
            return None;
        }
        let after = self.body.get(self.cursor..)?;
        let at = match after.find(text) {
            Some(at) => self.cursor + at,
            None => self.body.find(text)?,
        };
        self.cursor = at + text.len();
        Some(at)
    }

    fn finish(self) -> SearchRows {
        SearchRows {
            body: self.body,
            packed: self.out.into_boxed_str(),
        }
    }
}

/// Case-insensitive equality without allocating for ASCII text.
pub(crate) fn eq_ci(a: &str, b_lower: &str) -> bool {
    if a.is_ascii() && b_lower.is_ascii() {
        a.eq_ignore_ascii_case(b_lower)
    } else {
        a.to_lowercase() == b_lower
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(entity: Value) -> Vec<(String, Option<String>)> {
        SearchRows::build(&entity)
            .rows()
            .map(|r| (r.key.to_owned(), r.value.map(str::to_owned)))
            .collect()
    }

    /// The example from Backstage's buildEntitySearch, row for row.
    #[test]
    fn matches_backstage_build_entity_search() {
        let out = rows(json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {
                "name": "My-Svc", "uid": "u1", "etag": "e1",
                "tags": ["Java", "java", "Go"],
                "annotations": {"backstage.io/view-url": "https://X"},
                "links": [{"url": "https://a", "title": "A"}],
                "description": "x".repeat(201),
            },
            "spec": {"type": "service", "owner": "Team-A", "replicas": 3, "public": true, "nothing": null, "empty": "", "list": [1, {"a": "b"}]},
            "relations": [{"type": "ownedBy", "targetRef": "group:default/team-a"}],
            "status": {"items": []},
        }));
        let s = |k: &str, v: Option<&str>| (k.to_owned(), v.map(str::to_owned));
        assert_eq!(
            out,
            vec![
                s("apiversion", Some("backstage.io/v1alpha1")),
                s("kind", Some("Component")),
                s("metadata.tags", Some("Java")),
                s("metadata.tags.java", Some("true")),
                s("metadata.tags", Some("Go")),
                s("metadata.tags.go", Some("true")),
                s(
                    "metadata.annotations.backstage.io/view-url",
                    Some("https://X")
                ),
                s("metadata.links.url", Some("https://a")),
                s("metadata.links.title", Some("A")),
                s("metadata.description", None),
                s("spec.type", Some("service")),
                s("spec.owner", Some("Team-A")),
                s("spec.replicas", Some("3")),
                s("spec.public", Some("true")),
                s("spec.nothing", None),
                s("spec.empty", Some("")),
                s("spec.list", Some("1")),
                s("spec.list.a", Some("b")),
                s("metadata.name", Some("My-Svc")),
                s("metadata.namespace", None),
                s("metadata.uid", Some("u1")),
                s("metadata.namespace", Some("default")),
                s("relations.ownedby", Some("group:default/team-a")),
            ]
        );
    }

    /// Common keys are codes and repeated values references: the rows of
    /// an entity as discovery serves it are well under its JSON, read back
    /// the same, and rows packed the old way are read and packed anew.
    #[test]
    fn rows_are_compact_and_old_rows_are_packed_again() {
        let browse =
            "https://bitbucket.example.com/projects/PAY/repos/payments/browse/catalog-info.yaml";
        let entity = json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {
                "name": "payments", "uid": "0b7c3ef2-7a7e-5b47-9a5e-3f1f0b0c1d2e",
                "tags": ["java"],
                "annotations": {
                    "backstage.io/managed-by-location": format!("url:{browse}"),
                    "backstage.io/managed-by-origin-location": format!("url:{browse}"),
                    "backstage.io/view-url": browse,
                    "backstage.io/source-location": "url:https://bitbucket.example.com/projects/PAY/repos/payments/browse/",
                },
            },
            "spec": {"type": "service", "owner": "team-a", "lifecycle": "production"},
            "relations": [{"type": "ownedBy", "targetRef": "group:default/team-a"}],
        });
        let body: Arc<str> = Arc::from(entity.to_string());
        let built = SearchRows::build_in(&entity, Arc::clone(&body));
        let expected: Vec<(String, Option<String>)> = rows(entity.clone());
        let read: Vec<(String, Option<String>)> = built
            .rows()
            .map(|r| (r.key.to_owned(), r.value.map(str::to_owned)))
            .collect();
        assert_eq!(read, expected, "references into the body read back");
        assert!(
            built.packed().len() * 2 < entity.to_string().len(),
            "{} bytes of rows for {} of JSON",
            built.packed().len(),
            entity.to_string().len()
        );
        assert_eq!(
            built
                .values("metadata.annotations.backstage.io/view-url")
                .collect::<Vec<_>>(),
            [Some(browse)]
        );
        // The same rows the old way: plain keys, every value written out.
        let mut old = String::new();
        for (key, value) in &expected {
            old.push_str(key);
            old.push(KEY_END);
            match value {
                Some(v) => old.push_str(v),
                None => old.push(NULL_VALUE),
            }
            old.push(ROW_END);
        }
        let again = SearchRows::from_packed(old, Arc::clone(&body));
        assert_eq!(again, built);
        let reread = SearchRows::from_packed(built.packed().to_owned(), Arc::clone(&body));
        assert_eq!(reread, built);
    }

    /// The rows hold no second copy of a value that is in the body; rows
    /// packed the second way (codes, references into the rows) are read
    /// and packed anew; rows packed for another body are built from this one.
    #[test]
    fn values_in_the_body_are_references_and_other_bodies_rebuild() {
        let description =
            "A service of the benchmark catalog, with a description of ordinary length.";
        let entity = json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "svc", "description": description, "title": "Tab\there \"quoted\""},
            "spec": {"owner": "team-a"},
        });
        let body: Arc<str> = Arc::from(entity.to_string());
        let built = SearchRows::build_in(&entity, Arc::clone(&body));
        assert!(
            !built.packed().contains(description),
            "{:?}",
            built.packed()
        );
        assert_eq!(
            built.values("metadata.description").collect::<Vec<_>>(),
            [Some(description)]
        );
        // Escaped in the body: written out, and read as it is.
        assert_eq!(
            built.values("metadata.title").collect::<Vec<_>>(),
            [Some("Tab\there \"quoted\"")]
        );
        let second = "\u{5}\u{4}6\u{1}Short\u{3}\u{4}2\u{1}svc\u{3}spec.owner\u{1}team-a\u{3}";
        let again = SearchRows::from_packed(second.to_owned(), Arc::clone(&body));
        assert_eq!(
            again.rows().map(|r| (r.key, r.value)).collect::<Vec<_>>(),
            [
                ("metadata.description", Some("Short")),
                ("metadata.name", Some("svc")),
                ("spec.owner", Some("team-a")),
            ]
        );
        let other: Arc<str> =
            Arc::from(json!({"kind": "Group", "metadata": {"name": "x"}}).to_string());
        let rebuilt = SearchRows::from_packed(built.packed().to_owned(), Arc::clone(&other));
        assert_eq!(rebuilt.values("kind").collect::<Vec<_>>(), [Some("Group")]);
        assert!(!rebuilt.has_key("metadata.description"));
    }

    #[test]
    fn numbers_read_back() {
        for n in [0, 1, 46, 47, 2_208, 2_209, 103_822, 1 << 40, usize::MAX] {
            let mut out = String::new();
            write_number(&mut out, n);
            out.push('x');
            assert_eq!(number(&out), Some((n, "x")), "{n}: {out:?}");
        }
        assert_eq!(number(""), None);
        assert_eq!(number("P"), None, "a number ends with a last digit");
    }
}
