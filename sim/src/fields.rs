//! Bitbucket Cloud's partial responses (`fields=`): `-a.b` removes a path,
//! `+a.b.c` keeps a path even inside a removed one, `*` matches any key and
//! arrays are transparent (`values.file` is every value's `file`).
//!
//! Bare entries ("only these fields") are accepted and ignored: the
//! response stays complete, which no client relying on them can tell apart
//! from Bitbucket returning more than asked.

use serde_json::Value;

#[derive(Debug, Default)]
pub(crate) struct Fields {
    exclude: Vec<Vec<String>>,
    include: Vec<Vec<String>>,
}

impl Fields {
    pub(crate) fn parse(spec: &str) -> Self {
        let mut fields = Fields::default();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (list, path) = match entry.as_bytes().first() {
                Some(b'-') => (&mut fields.exclude, &entry[1..]),
                Some(b'+') => (&mut fields.include, &entry[1..]),
                _ => continue,
            };
            let segments: Vec<String> = path
                .split('.')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if !segments.is_empty() {
                list.push(segments);
            }
        }
        fields
    }

    pub(crate) fn apply(&self, value: &mut Value) {
        if self.exclude.is_empty() {
            return;
        }
        // Depth is bounded by our own responses (a handful of levels).
        self.prune(value, &mut Vec::new());
    }

    fn prune(&self, value: &mut Value, path: &mut Vec<String>) {
        match value {
            Value::Array(items) => {
                for item in items {
                    self.prune(item, path);
                }
            }
            Value::Object(map) => {
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    path.push(key.clone());
                    let excluded = self.exclude.iter().any(|p| matches(p, path));
                    if excluded && !self.include.iter().any(|p| matches(p, path)) {
                        if self.include.iter().any(|p| is_prefix(path, p)) {
                            if let Some(child) = map.get_mut(&key) {
                                self.retain_included(child, path);
                            }
                        } else {
                            map.remove(&key);
                        }
                    } else if let Some(child) = map.get_mut(&key) {
                        self.prune(child, path);
                    }
                    path.pop();
                }
            }
            _ => {}
        }
    }

    /// Inside a removed subtree: keep only what an include reaches.
    fn retain_included(&self, value: &mut Value, path: &mut Vec<String>) {
        match value {
            Value::Array(items) => {
                for item in items {
                    self.retain_included(item, path);
                }
            }
            Value::Object(map) => {
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    path.push(key.clone());
                    if self.include.iter().any(|p| matches(p, path)) {
                        // Kept whole.
                    } else if self.include.iter().any(|p| is_prefix(path, p)) {
                        if let Some(child) = map.get_mut(&key) {
                            self.retain_included(child, path);
                        }
                    } else {
                        map.remove(&key);
                    }
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

fn segment_matches(pattern: &str, key: &str) -> bool {
    pattern == "*" || pattern == key
}

/// `pattern` names exactly `path`.
fn matches(pattern: &[String], path: &[String]) -> bool {
    pattern.len() == path.len() && pattern.iter().zip(path).all(|(p, k)| segment_matches(p, k))
}

/// `path` is a proper ancestor of what `pattern` names.
fn is_prefix(path: &[String], pattern: &[String]) -> bool {
    pattern.len() > path.len() && pattern.iter().zip(path).all(|(p, k)| segment_matches(p, k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backstage_fields_string() {
        let spec = "-values.content_matches,+values.file.commit.repository.mainbranch.name,+values.file.commit.repository.project.key,+values.file.commit.repository.slug,-values.*.links,-values.*.*.links,-values.*.*.*.links,+values.file.commit.repository.links.html.href";
        let mut v = json!({"size": 1, "values": [{
            "content_matches": [1],
            "path_matches": [{"text": "catalog-info.yaml", "match": true}],
            "file": {"path": "catalog-info.yaml", "links": {"self": {"href": "x"}},
                "commit": {"hash": "h", "links": {"self": {"href": "y"}},
                    "repository": {"slug": "s", "mainbranch": {"name": "main"}, "project": {"key": "K"},
                        "links": {"html": {"href": "h"}, "self": {"href": "z"}}}}}}]});
        Fields::parse(spec).apply(&mut v);
        assert_eq!(
            v,
            json!({"size": 1, "values": [{
                "path_matches": [{"text": "catalog-info.yaml", "match": true}],
                "file": {"path": "catalog-info.yaml",
                    "commit": {"hash": "h",
                        "repository": {"slug": "s", "mainbranch": {"name": "main"}, "project": {"key": "K"},
                            "links": {"html": {"href": "h"}}}}}}]})
        );
    }

    #[test]
    fn no_exclusions_changes_nothing() {
        let mut v = json!({"a": {"b": 1}});
        Fields::parse("a.b,+a,,").apply(&mut v);
        assert_eq!(v, json!({"a": {"b": 1}}));
    }
}
