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
//! Rows are packed into one string per entity (about the size of the
//! entity's JSON) instead of thousands of small allocations.

use std::collections::HashSet;

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
        Self(builder.out.into_boxed_str())
    }

    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.0.split_terminator(ROW_END).filter_map(|row| {
            let (key, value) = row.split_once(KEY_END)?;
            Some(Row {
                key,
                value: if value.starts_with(NULL_VALUE) {
                    None
                } else {
                    Some(value)
                },
            })
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

    /// Rows stored with [`SearchRows::packed`].
    pub fn from_packed(packed: String) -> Self {
        Self(packed.into_boxed_str())
    }
}

#[derive(Default)]
struct Builder {
    out: String,
    seen: HashSet<(String, Option<String>)>,
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
        let text = text.map(|t| t.replace([KEY_END, NULL_VALUE, ROW_END], ""));
        let key = key.replace([KEY_END, NULL_VALUE, ROW_END], "");
        let dedup_value = text.as_ref().map(|t| t.to_lowercase());
        if !self
            .seen
            .insert((key.clone(), dedup_value.or_else(|| Some(String::new()))))
        {
            return;
        }
        self.out.push_str(&key);
        self.out.push(KEY_END);
        match text {
            Some(text) => self.out.push_str(&text),
            None => self.out.push(NULL_VALUE),
        }
        self.out.push(ROW_END);
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
}
