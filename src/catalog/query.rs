//! Backstage's query language over [`SearchRows`]: `filter=` strings, the
//! JSON predicate form (`$all`, `$any`, `$not`, `$exists`, `$in`,
//! `$hasPrefix`, `$contains`), `fields=` projection and full-text matching.

use serde_json::{Map, Value};

use super::search::{SearchRows, eq_ci};

/// Conditions (and `$in` values) one request may use across all its
/// filters and predicates: evaluation costs terms × entities.
pub(crate) const MAX_QUERY_TERMS: usize = 1000;
/// How deep `$all`/`$any`/`$not` may nest.
pub(crate) const MAX_QUERY_DEPTH: usize = 16;
/// Fields one request may project or search (`fields`, full-text fields).
pub(crate) const MAX_FIELDS: usize = 100;

/// Why a query was rejected; becomes a 400 `InputError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct QueryError(pub String);

/// A filter over entities. Keys and values are stored lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Predicate {
    All(Vec<Predicate>),
    Any(Vec<Predicate>),
    Not(Box<Predicate>),
    /// The key has one of these values.
    In {
        key: String,
        values: Vec<String>,
    },
    Exists {
        key: String,
        exists: bool,
    },
    HasPrefix {
        key: String,
        prefix: String,
    },
}

impl Predicate {
    /// Parses repeated `filter` parameters: within one, comma-separated
    /// `key=value` conditions are ANDed (a repeated key ORs its values, a
    /// bare key means "exists"); separate parameters are ORed. `None` when
    /// nothing is left to filter on.
    pub(crate) fn from_filter_params(filters: &[String]) -> Result<Option<Predicate>, QueryError> {
        let statements = filters
            .iter()
            .flat_map(|f| f.split(','))
            .filter(|s| !s.trim().is_empty())
            .count();
        if statements > MAX_QUERY_TERMS {
            return Err(too_many_terms(statements));
        }
        let mut any = Vec::new();
        for filter in filters {
            // (key as written, values; empty = exists)
            let mut conditions: Vec<(String, Vec<String>, bool)> = Vec::new();
            for statement in filter.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (key, value) = match statement.split_once('=') {
                    Some((key, value)) => (key.trim(), Some(value.trim())),
                    None => (statement, None),
                };
                if key.is_empty() {
                    return Err(QueryError(format!(
                        "Invalid filter, '{statement}' is not a valid statement (expected a string on the form a=b or a= or a)"
                    )));
                }
                let entry = match conditions.iter_mut().position(|(k, _, _)| k == key) {
                    Some(index) => &mut conditions[index],
                    None => {
                        conditions.push((key.to_owned(), Vec::new(), false));
                        let last = conditions.len() - 1;
                        &mut conditions[last]
                    }
                };
                match value {
                    Some(value) => entry.1.push(value.to_lowercase()),
                    None => entry.2 = true,
                }
            }
            let mut all: Vec<Predicate> = conditions
                .into_iter()
                .map(|(key, values, _)| {
                    let key = key.to_lowercase();
                    if values.is_empty() {
                        Predicate::Exists { key, exists: true }
                    } else {
                        Predicate::In { key, values }
                    }
                })
                .collect();
            match all.len() {
                0 => {}
                1 => any.extend(all.pop()),
                _ => any.push(Predicate::All(all)),
            }
        }
        Ok(match any.len() {
            0 => None,
            1 => any.pop(),
            _ => Some(Predicate::Any(any)),
        })
    }

    /// Parses the JSON predicate form used by `POST /entities/by-query`,
    /// within [`MAX_QUERY_DEPTH`] and [`MAX_QUERY_TERMS`].
    pub(crate) fn from_json(value: &Value) -> Result<Predicate, QueryError> {
        let mut terms = 0;
        Self::from_json_within(value, 0, &mut terms)
    }

    fn from_json_within(
        value: &Value,
        depth: usize,
        terms: &mut usize,
    ) -> Result<Predicate, QueryError> {
        if depth > MAX_QUERY_DEPTH {
            return Err(QueryError(format!(
                "Invalid filter predicate: nested deeper than {MAX_QUERY_DEPTH} levels of $all, $any and $not"
            )));
        }
        let Value::Object(map) = value else {
            return Err(QueryError("Invalid filter predicate: top-level primitive values are not supported. Wrap the value in a field expression, e.g. { \"kind\": <json> }".into()));
        };
        let mut parts = Vec::with_capacity(map.len());
        for (key, value) in map {
            *terms += 1;
            if *terms > MAX_QUERY_TERMS {
                return Err(too_many_terms(*terms));
            }
            parts.push(match key.as_str() {
                "$all" => Predicate::All(Self::list(value, "$all", depth, terms)?),
                "$any" => Predicate::Any(merge_values(Self::list(value, "$any", depth, terms)?)),
                "$not" => {
                    Predicate::Not(Box::new(Self::from_json_within(value, depth + 1, terms)?))
                }
                field => {
                    let predicate = Self::field(field, value)?;
                    *terms += predicate.values().saturating_sub(1);
                    if *terms > MAX_QUERY_TERMS {
                        return Err(too_many_terms(*terms));
                    }
                    predicate
                }
            });
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Predicate::All(parts)
        })
    }

    fn list(
        value: &Value,
        op: &str,
        depth: usize,
        terms: &mut usize,
    ) -> Result<Vec<Predicate>, QueryError> {
        value
            .as_array()
            .ok_or_else(|| QueryError(format!("Invalid filter predicate: {op} expects an array")))?
            .iter()
            .map(|item| Self::from_json_within(item, depth + 1, terms))
            .collect()
    }

    /// How many values a leaf compares against (1 for other predicates).
    fn values(&self) -> usize {
        match self {
            Predicate::In { values, .. } => values.len(),
            _ => 1,
        }
    }

    fn field(field: &str, value: &Value) -> Result<Predicate, QueryError> {
        let key = field.to_lowercase();
        let bad = || {
            QueryError(format!(
                "Invalid filter predicate value for field \"{field}\": expected a primitive value, $exists, $in, $hasPrefix, or $contains operator, but got {value}"
            ))
        };
        if let Some(text) = primitive(value) {
            return Ok(Predicate::In {
                key,
                values: vec![text.to_lowercase()],
            });
        }
        let Value::Object(op) = value else {
            return Err(bad());
        };
        if op.len() != 1 {
            return Err(bad());
        }
        let (name, arg) = op.iter().next().ok_or_else(bad)?;
        match name.as_str() {
            "$exists" => Ok(Predicate::Exists {
                key,
                exists: arg.as_bool().ok_or_else(bad)?,
            }),
            "$in" => {
                let values = arg
                    .as_array()
                    .ok_or_else(bad)?
                    .iter()
                    .map(|v| primitive(v).map(|t| t.to_lowercase()).ok_or_else(bad))
                    .collect::<Result<_, _>>()?;
                Ok(Predicate::In { key, values })
            }
            "$hasPrefix" => Ok(Predicate::HasPrefix {
                key,
                prefix: arg.as_str().ok_or_else(bad)?.to_lowercase(),
            }),
            "$contains" => match primitive(arg) {
                Some(text) => Ok(Predicate::In {
                    key,
                    values: vec![text.to_lowercase()],
                }),
                None if key == "relations" => {
                    let kind = arg.get("type").and_then(Value::as_str).ok_or_else(bad)?;
                    let key = format!("relations.{}", kind.to_lowercase());
                    match arg.get("targetRef") {
                        None => Ok(Predicate::Exists { key, exists: true }),
                        Some(target) => match primitive(target) {
                            Some(t) => Ok(Predicate::In {
                                key,
                                values: vec![t.to_lowercase()],
                            }),
                            None => Self::field(&key, target),
                        },
                    }
                }
                None => Err(bad()),
            },
            _ => Err(bad()),
        }
    }

    pub(crate) fn matches(&self, rows: &SearchRows) -> bool {
        match self {
            Predicate::All(parts) => parts.iter().all(|p| p.matches(rows)),
            Predicate::Any(parts) => parts.iter().any(|p| p.matches(rows)),
            Predicate::Not(inner) => !inner.matches(rows),
            Predicate::In { key, values } => rows
                .values(key)
                .flatten()
                .any(|v| values.iter().any(|want| eq_ci(v, want))),
            Predicate::Exists { key, exists } => rows.has_key(key) == *exists,
            Predicate::HasPrefix { key, prefix } => rows
                .values(key)
                .flatten()
                .any(|v| v.to_lowercase().starts_with(prefix.as_str())),
        }
    }
}

/// `$any` of values for one key is one `In`: evaluated in one pass over an
/// entity's rows, not one pass per term (a 999-term `$any` took seconds).
fn merge_values(parts: Vec<Predicate>) -> Vec<Predicate> {
    let mut merged: Vec<Predicate> = Vec::with_capacity(parts.len());
    let mut by_key: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for part in parts {
        let Predicate::In { key, values } = part else {
            merged.push(part);
            continue;
        };
        match by_key.get(&key).and_then(|&at| merged.get_mut(at)) {
            Some(Predicate::In { values: into, .. }) => into.extend(values),
            _ => {
                by_key.insert(key.clone(), merged.len());
                merged.push(Predicate::In { key, values });
            }
        }
    }
    merged
}

fn too_many_terms(count: usize) -> QueryError {
    QueryError(format!(
        "Invalid filter: {count} conditions and values is more than the {MAX_QUERY_TERMS} one request may use; split the query"
    ))
}

fn primitive(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Full-text search: `term` (lowercased) is a substring of any value under `fields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FullText {
    pub term: String,
    pub fields: Vec<String>,
}

impl FullText {
    pub(crate) fn matches(&self, rows: &SearchRows) -> bool {
        self.fields.iter().any(|field| {
            rows.values(field)
                .flatten()
                .any(|v| v.to_lowercase().contains(&self.term))
        })
    }
}

/// Parses `fields` parameters (comma lists, possibly repeated): trimmed,
/// empties dropped, first-seen order, de-duplicated.
pub(crate) fn parse_fields(params: &[String]) -> Result<Vec<String>, QueryError> {
    let mut fields: Vec<String> = Vec::new();
    for field in params
        .iter()
        .flat_map(|p| p.split(','))
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        if field.contains('[') {
            return Err(QueryError(format!(
                "Invalid field \"{field}\", array type fields are not supported"
            )));
        }
        if !fields.iter().any(|f| f == field) {
            if fields.len() == MAX_FIELDS {
                return Err(QueryError(format!(
                    "Invalid fields: more than {MAX_FIELDS} fields in one request"
                )));
            }
            fields.push(field.to_owned());
        }
    }
    Ok(fields)
}

/// Backstage's field projection: walk the dotted path left to right; a part
/// that is not a key is glued to the next one (`backstage.io/view-url`), no
/// backtracking; missing fields are left out.
pub(crate) fn project(entity: &Value, fields: &[String]) -> Value {
    let mut out = Map::new();
    for field in fields {
        let parts: Vec<&str> = field.split('.').collect();
        let mut node = entity;
        let mut path: Vec<String> = Vec::new();
        let mut pending = String::new();
        let mut found = true;
        for (index, part) in parts.iter().enumerate() {
            let candidate = if pending.is_empty() {
                (*part).to_owned()
            } else {
                format!("{pending}.{part}")
            };
            match child(node, &candidate) {
                Some(next) => {
                    node = next;
                    path.push(candidate);
                    pending.clear();
                }
                None if index + 1 < parts.len() => pending = candidate,
                None => found = false,
            }
        }
        if found && pending.is_empty() {
            set_path(&mut out, &path, node.clone());
        }
    }
    Value::Object(out)
}

fn child<'a>(node: &'a Value, key: &str) -> Option<&'a Value> {
    match node {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    }
}

fn set_path(out: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = out;
    for part in parents {
        let entry = node
            .entry(part.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(map) = entry else { return };
        node = map;
    }
    node.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entity() -> Value {
        json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "n", "tags": ["Java", "web"], "annotations": {"backstage.io/view-url": "u", "a.b.c": "abc"}},
            "spec": {"type": "service", "owner": "Team-A"},
            "relations": [{"type": "ownedBy", "targetRef": "group:default/team-a"}],
        })
    }

    fn filter(params: &[&str]) -> Option<Predicate> {
        Predicate::from_filter_params(&params.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap()
    }

    #[test]
    fn filter_strings_parse_like_backstage() {
        let cases: Vec<(Vec<&str>, Option<Predicate>)> = vec![
            (
                vec!["kind=component"],
                Some(Predicate::In {
                    key: "kind".into(),
                    values: vec!["component".into()],
                }),
            ),
            (
                vec![" a = 1 , b = 2 , a = 3 "],
                Some(Predicate::All(vec![
                    Predicate::In {
                        key: "a".into(),
                        values: vec!["1".into(), "3".into()],
                    },
                    Predicate::In {
                        key: "b".into(),
                        values: vec!["2".into()],
                    },
                ])),
            ),
            (
                vec!["kind=user", "kind=group,spec.type"],
                Some(Predicate::Any(vec![
                    Predicate::In {
                        key: "kind".into(),
                        values: vec!["user".into()],
                    },
                    Predicate::All(vec![
                        Predicate::In {
                            key: "kind".into(),
                            values: vec!["group".into()],
                        },
                        Predicate::Exists {
                            key: "spec.type".into(),
                            exists: true,
                        },
                    ]),
                ])),
            ),
            (
                vec!["a,a=1"],
                Some(Predicate::In {
                    key: "a".into(),
                    values: vec!["1".into()],
                }),
            ),
            (
                vec!["a="],
                Some(Predicate::In {
                    key: "a".into(),
                    values: vec!["".into()],
                }),
            ),
            (
                vec!["a=b=c"],
                Some(Predicate::In {
                    key: "a".into(),
                    values: vec!["b=c".into()],
                }),
            ),
            (vec![", ,"], None),
        ];
        for (params, expected) in cases {
            assert_eq!(filter(&params), expected, "{params:?}");
        }
        let err = Predicate::from_filter_params(&["=x".to_owned()]).unwrap_err();
        assert_eq!(
            err.0,
            "Invalid filter, '=x' is not a valid statement (expected a string on the form a=b or a= or a)"
        );
    }

    #[test]
    fn filters_match_case_insensitively_on_search_rows() {
        let rows = SearchRows::build(&entity());
        let yes = [
            "kind=component",
            "KIND=Component",
            "metadata.tags=java",
            "metadata.tags.java=true",
            "metadata.tags.JAVA",
            "spec.owner=team-a",
            "relations.ownedby=group:default/team-a",
            "metadata.namespace=default",
            "metadata.annotations.backstage.io/view-url=U",
            "kind=api,kind=component",
        ];
        for f in yes {
            assert!(filter(&[f]).unwrap().matches(&rows), "{f} should match");
        }
        let no = [
            "kind=api",
            "spec.lifecycle",
            "metadata.tags=go",
            "kind=component,spec.type=website",
        ];
        for f in no {
            assert!(
                !filter(&[f]).unwrap().matches(&rows),
                "{f} should not match"
            );
        }
    }

    #[test]
    fn json_predicates() {
        let rows = SearchRows::build(&entity());
        let cases = [
            (json!({"kind": "Component"}), true),
            (
                json!({"$all": [{"kind": "component"}, {"spec.type": {"$in": ["website", "service"]}}]}),
                true,
            ),
            (json!({"$any": []}), false),
            (json!({"$all": []}), true),
            (json!({"$not": {"kind": "component"}}), false),
            (json!({"spec.lifecycle": {"$exists": false}}), true),
            (json!({"metadata.name": {"$hasPrefix": "N"}}), true),
            (
                json!({"relations": {"$contains": {"type": "ownedBy", "targetRef": "group:default/team-a"}}}),
                true,
            ),
            (
                json!({"relations": {"$contains": {"type": "partOf"}}}),
                false,
            ),
            (
                json!({"$any": [{"kind": "api"}, {"spec.type": "x"}, {"kind": "COMPONENT"}]}),
                true,
            ),
            (
                json!({"$any": [{"kind": "api"}, {"kind": "system"}, {"spec.type": "x"}]}),
                false,
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(
                Predicate::from_json(&json).unwrap().matches(&rows),
                expected,
                "{json}"
            );
        }
        // Values for one key under `$any` are compared in one pass.
        let merged = Predicate::from_json(
            &json!({"$any": [{"kind": "api"}, {"spec.type": "x"}, {"kind": {"$in": ["a", "b"]}}]}),
        )
        .unwrap();
        let Predicate::Any(parts) = merged else {
            panic!("an $any: {merged:?}")
        };
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert!(Predicate::from_json(&json!("kind")).is_err());
        assert!(Predicate::from_json(&json!({"kind": {"$regex": "x"}})).is_err());
    }

    #[test]
    fn projection_follows_backstage_get_path() {
        let e = entity();
        let fields = |f: &str| parse_fields(&[f.to_owned()]).unwrap();
        assert_eq!(
            project(&e, &fields("metadata.annotations.backstage.io/view-url")),
            json!({"metadata": {"annotations": {"backstage.io/view-url": "u"}}})
        );
        assert_eq!(
            project(
                &e,
                &fields("kind,metadata.name, spec ,missing.path,metadata.missing")
            ),
            json!({"kind": "Component", "metadata": {"name": "n"}, "spec": {"type": "service", "owner": "Team-A"}})
        );
        assert_eq!(
            project(&e, &fields("metadata.annotations.a.b.c")),
            json!({"metadata": {"annotations": {"a.b.c": "abc"}}})
        );
        assert_eq!(project(&e, &fields("nope")), json!({}));
        assert!(parse_fields(&["relations[0]".to_owned()]).is_err());
    }
}
