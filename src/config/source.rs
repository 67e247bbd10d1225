//! Reading `app-config.yaml` files the way Backstage's config-loader does:
//! `${VAR}` substitution, `$env` / `$file` includes, deep merge of several
//! files, and `APP_CONFIG_*` overrides. Every key remembers where it came from,
//! so an error can name the file (or variable) to fix.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{ConfigError, Origin};

/// The environment the loader sees. Tests pass their own instead of mutating
/// the process environment.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
}

impl Environment {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// The merged configuration tree plus where each key came from.
#[derive(Debug, Clone, Default)]
pub struct MergedSource {
    pub root: Value,
    origins: BTreeMap<String, Origin>,
    pub warnings: Vec<String>,
    /// Keys left out for an unset variable (display form → variable), so
    /// "missing field" errors can name the variable.
    pub unset: BTreeMap<String, String>,
    /// Values read from a `$file` include (dotted key → file), kept only
    /// where the merged value is still the file's: a rotated credential is
    /// re-read from there.
    pub file_includes: BTreeMap<String, PathBuf>,
}

impl MergedSource {
    /// The origin of `key` or of its nearest ancestor that has one.
    pub fn origin_of(&self, key: &str) -> Option<&Origin> {
        let mut candidate = key;
        loop {
            if let Some(origin) = self.origins.get(candidate) {
                return Some(origin);
            }
            match candidate.rfind('.') {
                Some(idx) => candidate = &candidate[..idx],
                None => return self.origins.get(""),
            }
        }
    }

    /// The value at a dotted key path, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        key.split('.')
            .try_fold(&self.root, |node, part| node.as_object()?.get(part))
    }

    fn record(&mut self, path: &str, value: &Value, origin: &Origin) {
        self.origins.insert(path.to_owned(), origin.clone());
        if let Value::Object(map) = value {
            for (key, child) in map {
                self.record(&join(path, key), child, origin);
            }
        }
    }
}

/// Reads, transforms and merges `files` in order, then applies `APP_CONFIG_*`
/// overrides from `env`.
pub(crate) fn load_sources(
    files: &[PathBuf],
    env: &Environment,
) -> Result<MergedSource, ConfigError> {
    let mut merged = MergedSource {
        root: Value::Object(Map::new()),
        ..MergedSource::default()
    };
    let mut includes = Vec::new();
    for file in files {
        let value = read_file(
            file,
            env,
            &mut merged.warnings,
            &mut merged.unset,
            &mut includes,
        )?;
        let origin = Origin::File(file.clone());
        merge_into(&mut merged, "", value, &origin);
    }
    apply_env_overrides(&mut merged, env)?;
    for (key, path, content) in includes {
        let value = key
            .split('.')
            .try_fold(&merged.root, |node, part| match node {
                Value::Array(items) => items.get(part.parse::<usize>().ok()?),
                other => other.get(part),
            });
        if value.and_then(Value::as_str) == Some(content.as_str()) {
            merged.file_includes.insert(key, path);
        }
    }
    Ok(merged)
}

fn read_file(
    path: &Path,
    env: &Environment,
    warnings: &mut Vec<String>,
    unset: &mut BTreeMap<String, String>,
    includes: &mut Vec<(String, PathBuf, String)>,
) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let value = parse_yaml(path, &text)?;
    let dir = path.parent().unwrap_or(Path::new(".")).to_owned();
    let transformer = Transformer {
        file: path,
        dir: &dir,
        env,
        warnings,
        unset,
        includes,
    };
    Ok(transformer.apply("", value)?.unwrap_or(Value::Null))
}

/// YAML events aliases may replay in one config file.
const MAX_CONFIG_ALIAS_EVENTS: usize = 100_000;

/// Parses a config file once, with a bound on alias expansion: a few KB of
/// nested aliases (an alias bomb) would otherwise take all memory.
fn parse_yaml(path: &Path, text: &str) -> Result<Value, ConfigError> {
    let parse_error = |message: String| ConfigError::Parse {
        path: path.to_owned(),
        message,
    };
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    // A config replays a handful of anchors; this is generous and bounds
    // the value built here to a few MB.
    options.alias_limits.max_total_replayed_events = MAX_CONFIG_ALIAS_EVENTS;
    // YAML 1.2's core schema, as the `config` crate's reader (yaml-rust2)
    // read these files before: `yes`, `1_000` and `<<` stay text.
    options.strict_booleans = true;
    options.underscored_numbers_as_strings = true;
    options.merge_keys = serde_saphyr::MergeKeyPolicy::AsOrdinary;
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_saphyr::from_str_with_options::<Value>(text, options) {
        // A file holding only comments.
        Ok(Value::Null) => Ok(Value::Object(Map::new())),
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(parse_error(
            "the document is not a mapping of keys; write e.g. `backend: {listen: ':7007'}`".into(),
        )),
        Err(err) if is_expansion_limit(&err) => Err(parse_error(format!(
            "{err}; its YAML aliases expand far beyond what a config needs (an alias bomb?)"
        ))),
        Err(err) => Err(parse_error(err.to_string())),
    }
}

fn is_expansion_limit(err: &serde_saphyr::Error) -> bool {
    use serde_saphyr::Error;
    match err {
        Error::WithSnippet { error, .. } | Error::AliasError { error, .. } => {
            is_expansion_limit(error)
        }
        Error::Budget { .. }
        | Error::AliasReplayLimitExceeded { .. }
        | Error::AliasExpansionLimitExceeded { .. }
        | Error::AliasReplayStackDepthExceeded { .. }
        | Error::AliasReplayCounterOverflow { .. } => true,
        _ => false,
    }
}

struct Transformer<'a> {
    file: &'a Path,
    dir: &'a Path,
    env: &'a Environment,
    warnings: &'a mut Vec<String>,
    unset: &'a mut BTreeMap<String, String>,
    /// `$file` includes read: key, file, the value taken from it.
    includes: &'a mut Vec<(String, PathBuf, String)>,
}

impl Transformer<'_> {
    /// Returns `None` when the value resolves to "absent" (an unset variable).
    fn apply(mut self, path: &str, value: Value) -> Result<Option<Value>, ConfigError> {
        self.transform(path, value)
    }

    fn transform(&mut self, path: &str, value: Value) -> Result<Option<Value>, ConfigError> {
        match value {
            Value::String(text) => Ok(self.substitute(path, &text).map(Value::String)),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (index, item) in items.into_iter().enumerate() {
                    if let Some(item) = self.transform(&join(path, &index.to_string()), item)? {
                        out.push(item);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            Value::Object(map) => {
                if let Some(include) = self.include(path, &map)? {
                    return Ok(include);
                }
                let mut out = Map::with_capacity(map.len());
                for (key, child) in map {
                    if let Some(child) = self.transform(&join(path, &key), child)? {
                        out.insert(key, child);
                    }
                }
                Ok(Some(Value::Object(out)))
            }
            other => Ok(Some(other)),
        }
    }

    /// `$env: VAR` and `$file: path` replace the whole object they sit in.
    fn include(
        &mut self,
        path: &str,
        map: &Map<String, Value>,
    ) -> Result<Option<Option<Value>>, ConfigError> {
        let Some(kind) = ["$env", "$file"].into_iter().find(|k| map.contains_key(*k)) else {
            return Ok(None);
        };
        let invalid = |message: String| ConfigError::Invalid {
            origin: Some(Origin::File(self.file.to_owned())),
            key: display_key(path),
            message,
        };
        if map.len() != 1 {
            return Err(invalid(format!(
                "include key {kind} should not have adjacent keys; remove the other keys"
            )));
        }
        let Some(raw) = map.get(kind).and_then(Value::as_str) else {
            return Err(invalid(format!(
                "{kind} include value is not a string; write `{kind}: NAME`"
            )));
        };
        let Some(target) = self.substitute(path, raw) else {
            return Err(invalid(format!("{kind} substitution value was undefined")));
        };
        match kind {
            "$env" => {
                let value = self.env.get(&target).map(str::to_owned);
                if value.is_none() {
                    self.warn_unset(&target, path);
                }
                Ok(Some(value.map(Value::String)))
            }
            _ => {
                let file = self.dir.join(&target);
                let content =
                    std::fs::read_to_string(&file).map_err(|err| ConfigError::Invalid {
                        origin: Some(Origin::File(self.file.to_owned())),
                        key: display_key(path),
                        message: format!(
                            "failed to read $file {} ({err}); the path is relative to {}",
                            file.display(),
                            self.dir.display()
                        ),
                    })?;
                // As Backstage: mounted secrets usually end with a newline.
                let content = content.trim_end().to_owned();
                self.includes.push((path.to_owned(), file, content.clone()));
                Ok(Some(Some(Value::String(content))))
            }
        }
    }

    /// Backstage's `${VAR}` substitution: `$${` escapes, and any unset
    /// variable makes the whole value absent.
    fn substitute(&mut self, path: &str, text: &str) -> Option<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut missing = false;
        while let Some(start) = rest.find("${") {
            let escaped = start > 0 && rest.as_bytes()[start - 1] == b'$';
            let after = &rest[start + 2..];
            let Some(end) = after.find('}').filter(|end| !after[..*end].contains('{')) else {
                out.push_str(&rest[..start + 2]);
                rest = after;
                continue;
            };
            if escaped {
                out.push_str(&rest[..start - 1]);
                out.push_str(&rest[start..start + 3 + end]);
            } else {
                out.push_str(&rest[..start]);
                let name = after[..end].trim();
                match self.env.get(name) {
                    Some(value) => out.push_str(value),
                    None => {
                        self.warn_unset(name, path);
                        missing = true;
                    }
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        (!missing).then_some(out)
    }

    fn warn_unset(&mut self, var: &str, path: &str) {
        self.unset.insert(display_key(path), var.to_owned());
        self.warnings.push(format!(
            "{}: environment variable {var} is not set, so {} is left out",
            self.file.display(),
            display_key(path)
        ));
    }
}

/// Turns `a.0.b` (provenance form) into `a[0].b` (display form) and back.
pub(crate) fn display_key(path: &str) -> String {
    let mut out = String::new();
    for part in path.split('.').filter(|p| !p.is_empty() && *p != "?") {
        if part.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

pub(crate) fn provenance_key(display: &str) -> String {
    display.replace('[', ".").replace(']', "")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The node at a dotted path; numeric parts index into lists.
fn node_mut<'v>(root: &'v mut Value, path: &str) -> Option<&'v mut Value> {
    if path.is_empty() {
        return Some(root);
    }
    path.split('.').try_fold(root, |node, part| match node {
        Value::Object(map) => map.get_mut(part),
        Value::Array(items) => items.get_mut(part.parse::<usize>().ok()?),
        _ => None,
    })
}

/// Objects merge key by key; arrays and scalars replace (Backstage semantics).
fn merge_into(merged: &mut MergedSource, path: &str, overlay: Value, origin: &Origin) {
    let existing_is_object = node_mut(&mut merged.root, path).is_some_and(|v| v.is_object());
    match overlay {
        Value::Object(map) if existing_is_object => {
            merged
                .origins
                .entry(path.to_owned())
                .or_insert(origin.clone());
            for (key, child) in map {
                let child_path = join(path, &key);
                let child_exists = node_mut(&mut merged.root, path)
                    .and_then(Value::as_object_mut)
                    .is_some_and(|m| m.contains_key(&key));
                if child_exists {
                    merge_into(merged, &child_path, child, origin);
                } else {
                    merged.record(&child_path, &child, origin);
                    if let Some(Value::Object(parent)) = node_mut(&mut merged.root, path) {
                        parent.insert(key, child);
                    }
                }
            }
        }
        value => {
            merged.record(path, &value, origin);
            if let Some(slot) = node_mut(&mut merged.root, path) {
                *slot = value;
            }
        }
    }
}

const ENV_PREFIX: &str = "APP_CONFIG_";

/// `APP_CONFIG_backend_listen_port=7008` sets `backend.listen.port`; the value
/// is parsed as JSON and falls back to a plain string, as in Backstage.
fn apply_env_overrides(merged: &mut MergedSource, env: &Environment) -> Result<(), ConfigError> {
    let mut overrides: Vec<(&String, &String)> = env
        .vars
        .iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    overrides.sort();
    for (name, raw) in overrides {
        let path = name[ENV_PREFIX.len()..].replace('_', ".");
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(ConfigError::Invalid {
                origin: Some(Origin::EnvOverride(name.clone())),
                key: path,
                message:
                    "the variable name does not form a key path; use APP_CONFIG_a_b_c for a.b.c"
                        .into(),
            });
        }
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone()));
        let origin = Origin::EnvOverride(name.clone());
        ensure_objects_along(&mut merged.root, &path);
        merge_into(merged, &path, value, &origin);
    }
    Ok(())
}

/// Makes every node along `path` exist so an override can land there:
/// existing lists are indexed into (`APP_CONFIG_integrations_bitbucketServer_0_token`),
/// anything else that is not an object becomes one.
fn ensure_objects_along(root: &mut Value, path: &str) {
    let mut node = root;
    for part in path.split('.') {
        let index = part.parse::<usize>().ok();
        if let (Value::Array(items), Some(index)) = (&*node, index)
            && index < items.len()
        {
            let Value::Array(items) = node else { return };
            node = &mut items[index];
            continue;
        }
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else { return };
        node = map.entry(part.to_owned()).or_insert(Value::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn transform(value: Value, env: &[(&str, &str)]) -> (Option<Value>, Vec<String>) {
        let env = Environment::from_pairs(env.iter().copied());
        let mut warnings = Vec::new();
        let out = Transformer {
            file: Path::new("app-config.yaml"),
            dir: Path::new("."),
            env: &env,
            warnings: &mut warnings,
            unset: &mut BTreeMap::new(),
            includes: &mut Vec::new(),
        }
        .apply("", value)
        .unwrap();
        (out, warnings)
    }

    #[test]
    fn substitutes_and_escapes() {
        let (out, warnings) = transform(
            json!({"a": "x-${A}-y", "b": "$${A}", "c": "${ A }${A}", "d": "${"}),
            &[("A", "1")],
        );
        assert_eq!(
            out.unwrap(),
            json!({"a": "x-1-y", "b": "${A}", "c": "11", "d": "${"})
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn ordinary_anchors_pass_the_alias_budget() {
        // Bombs are refused: tests/it/hardening/operator.rs runs `config check` on one.
        assert_eq!(
            parse_yaml(Path::new("a.yaml"), "a: &a {b: 1}\nc: *a\n").unwrap(),
            json!({"a": {"b": 1}, "c": {"b": 1}})
        );
        assert_eq!(
            parse_yaml(Path::new("a.yaml"), "# only\n").unwrap(),
            json!({})
        );
        let core_schema = "a: yes\nb: 1_000\nc: true\nd: 0x1F\ne: ~\n";
        assert_eq!(
            parse_yaml(Path::new("a.yaml"), core_schema).unwrap(),
            json!({"a": "yes", "b": "1_000", "c": true, "d": 31, "e": null})
        );
        assert!(parse_yaml(Path::new("a.yaml"), "a: 1\na: 2\n").is_err());
        // Keys that are not text become text, as the `config` crate made them.
        assert_eq!(
            parse_yaml(Path::new("a.yaml"), "codes: {404: gone, true: yes}\n").unwrap(),
            json!({"codes": {"404": "gone", "true": "yes"}})
        );
    }

    #[test]
    fn unset_variable_makes_the_key_absent_and_warns() {
        let (out, warnings) = transform(json!({"a": {"token": "${MISSING}", "k": 1}}), &[]);
        assert_eq!(out.unwrap(), json!({"a": {"k": 1}}));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("MISSING") && warnings[0].contains("a.token"));
    }

    #[test]
    fn env_include() {
        let (out, _) = transform(
            json!({"t": {"$env": "TOKEN"}, "u": {"$env": "NOPE"}}),
            &[("TOKEN", "abc")],
        );
        assert_eq!(out.unwrap(), json!({"t": "abc"}));
    }

    #[test]
    fn merge_objects_deeply_and_replace_arrays() {
        let mut merged = MergedSource {
            root: json!({}),
            ..Default::default()
        };
        let a = Origin::File("a.yaml".into());
        let b = Origin::File("b.yaml".into());
        merge_into(
            &mut merged,
            "",
            json!({"x": {"y": 1, "z": [1, 2]}, "k": "v"}),
            &a,
        );
        merge_into(
            &mut merged,
            "",
            json!({"x": {"y": 2, "z": [3]}, "n": true}),
            &b,
        );
        assert_eq!(
            merged.root,
            json!({"x": {"y": 2, "z": [3]}, "k": "v", "n": true})
        );
        assert_eq!(merged.origin_of("x.y"), Some(&b));
        assert_eq!(merged.origin_of("k"), Some(&a));
        assert_eq!(merged.origin_of("x.z.0"), Some(&b));
    }

    #[test]
    fn env_overrides_parse_json_then_fall_back_to_string() {
        let mut merged = MergedSource {
            root: json!({"backend": {"listen": {"port": 7007}}}),
            ..Default::default()
        };
        let env = Environment::from_pairs([
            ("APP_CONFIG_backend_listen_port", "7008"),
            ("APP_CONFIG_backend_baseUrl", "http://x"),
            ("OTHER", "1"),
        ]);
        apply_env_overrides(&mut merged, &env).unwrap();
        assert_eq!(
            merged.root,
            json!({"backend": {"listen": {"port": 7008}, "baseUrl": "http://x"}})
        );
        assert_eq!(
            merged.origin_of("backend.listen.port"),
            Some(&Origin::EnvOverride(
                "APP_CONFIG_backend_listen_port".into()
            ))
        );
    }

    #[test]
    fn keys_display_with_indices() {
        assert_eq!(
            display_key("integrations.bitbucketServer.0.token"),
            "integrations.bitbucketServer[0].token"
        );
        assert_eq!(
            provenance_key("integrations.bitbucketServer[0].token"),
            "integrations.bitbucketServer.0.token"
        );
        assert_eq!(display_key("a.?.b"), "a.b");
    }
}
