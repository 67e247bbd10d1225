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
//! as a two-character code, and a value that repeats (part of) an earlier
//! one (the location annotations, view and edit URLs) as a reference to
//! it. Rows packed before codes existed are read and packed again.

use std::collections::HashSet;
use std::fmt::Write;

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
/// Starts the compact form (rows packed before it have none).
const COMPACT: char = '\u{5}';
/// Starts a value given as `offset:len` of earlier text in the rows.
const VALUE_REF: char = '\u{6}';
const SEPARATORS: [char; 6] = [KEY_END, NULL_VALUE, ROW_END, KEY_CODE, COMPACT, VALUE_REF];
/// Values shorter than this are written out (a reference would not pay).
const MIN_REF: usize = 12;
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

/// An entity's search rows, packed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchRows(Box<str>);

/// One row: the lowercased key and the original (not lowercased) value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row<'a> {
    pub key: &'a str,
    pub value: Option<&'a str>,
}

impl SearchRows {
    pub fn build(entity: &Value) -> Self {
        let mut builder = Builder::default();
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
        let all = self.0.as_ref();
        let body = all.strip_prefix(COMPACT).unwrap_or(all);
        body.split_terminator(ROW_END).filter_map(move |row| {
            let (key, value) = row.split_once(KEY_END)?;
            let key = match key.strip_prefix(KEY_CODE) {
                Some(code) => {
                    let index = code.chars().next()? as u32;
                    KEYS.get(usize::try_from(index.checked_sub(CODE_BASE)?).ok()?)?
                }
                None => key,
            };
            let value = if value.starts_with(NULL_VALUE) {
                None
            } else if let Some(at) = value.strip_prefix(VALUE_REF) {
                let (offset, len) = at.split_once(':')?;
                let offset: usize = offset.parse().ok()?;
                let len: usize = len.parse().ok()?;
                Some(all.get(offset..offset.checked_add(len)?)?)
            } else {
                Some(value)
            };
            Some(Row { key, value })
        })
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

    /// The packed form, for storage.
    pub fn packed(&self) -> &str {
        &self.0
    }

    /// Rows stored with [`SearchRows::packed`]; rows packed before the
    /// compact form are packed again.
    pub fn from_packed(packed: String) -> Self {
        if packed.is_empty() || packed.starts_with(COMPACT) {
            return Self(packed.into_boxed_str());
        }
        let mut builder = Builder::default();
        for row in packed.split_terminator(ROW_END) {
            let Some((key, value)) = row.split_once(KEY_END) else {
                continue;
            };
            let value = (!value.starts_with(NULL_VALUE)).then(|| value.replace(SEPARATORS, ""));
            builder.write(&key.replace(SEPARATORS, ""), value.as_deref());
        }
        builder.finish()
    }
}

#[derive(Default)]
struct Builder {
    out: String,
    seen: HashSet<(String, Option<String>)>,
    /// Where the values written out so far are: `(offset, len)` in `out`.
    written: Vec<(usize, usize)>,
}

impl Builder {
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
        if self.out.is_empty() {
            self.out.push(COMPACT);
        }
        match KEYS.iter().position(|k| *k == key) {
            Some(index) => {
                self.out.push(KEY_CODE);
                let code = u32::try_from(index).ok().map(|i| i + CODE_BASE);
                self.out.extend(code.and_then(char::from_u32));
            }
            None => self.out.push_str(key),
        }
        self.out.push(KEY_END);
        match value {
            None => self.out.push(NULL_VALUE),
            Some(text) => match self.earlier(text) {
                Some(offset) => {
                    let _ = write!(self.out, "{VALUE_REF}{offset}:{}", text.len());
                }
                None => {
                    if text.len() >= MIN_REF {
                        self.written.push((self.out.len(), text.len()));
                    }
                    self.out.push_str(text);
                }
            },
        }
        self.out.push(ROW_END);
    }

    /// Where `text` already is, whole or in part of an earlier value.
    fn earlier(&self, text: &str) -> Option<usize> {
        if text.len() < MIN_REF {
            return None;
        }
        self.written.iter().find_map(|&(offset, len)| {
            let earlier = self.out.get(offset..offset + len)?;
            earlier.find(text).map(|at| offset + at)
        })
    }

    fn finish(self) -> SearchRows {
        SearchRows(self.out.into_boxed_str())
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
        let built = SearchRows::build(&entity);
        let expected: Vec<(String, Option<String>)> = rows(entity.clone());
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
        let again = SearchRows::from_packed(old);
        assert_eq!(again, built);
        let reread = SearchRows::from_packed(built.packed().to_owned());
        assert_eq!(reread, built);
    }
}
