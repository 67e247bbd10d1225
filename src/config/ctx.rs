//! The validation context every section is read with: it turns a key path
//! into an error or warning that names the file (or variable) it came from,
//! and deserialises sections with their key paths.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::source::{display_key, provenance_key};
use super::{ConfigError, MergedSource, typos};

pub(super) struct Ctx<'a> {
    pub(super) source: &'a MergedSource,
    pub(super) warnings: Vec<String>,
    /// Keys warned about as unknown, dotted with indices.
    pub(super) unknown_keys: Vec<String>,
}

impl<'a> Ctx<'a> {
    /// The value at `key`, unless it is unset (absent or null).
    pub(super) fn set(&self, key: &str) -> Option<&'a Value> {
        self.source.get(key).filter(|v| !v.is_null())
    }

    /// [`Self::section`] at `key`; `None` when it is unset.
    pub(super) fn optional<T: DeserializeOwned>(
        &mut self,
        key: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.set(key)
            .map(|value| self.section(key, value))
            .transpose()
    }

    /// The error at `key`; `message` is a text or a typed error whose
    /// message says what is wrong and what to write instead.
    pub(super) fn error(&self, key: &str, message: impl std::fmt::Display) -> ConfigError {
        let key = display_key(key);
        ConfigError::Invalid {
            origin: self.source.origin_of(&provenance_key(&key)).cloned(),
            key,
            message: message.to_string(),
        }
    }

    /// Like [`Self::warn`] for a key we do not know: its value is redacted
    /// in `config check` (it may be a misspelled secret).
    pub(super) fn warn_unknown(&mut self, key: &str, message: &str) {
        self.unknown_keys.push(provenance_key(&display_key(key)));
        let last = key.rsplit('.').next().unwrap_or(key);
        self.warn(
            key,
            &typos::with_suggestion(message, last, typos::KNOWN_KEYS),
        );
    }

    /// Warns (as [`Self::warn_unknown`]) about every key of `map`, an
    /// object at `key`, that is not in `known`.
    pub(super) fn warn_unknown_keys(
        &mut self,
        key: &str,
        map: &Map<String, Value>,
        known: &[&str],
        message: &str,
    ) {
        for unknown in map.keys().filter(|k| !known.contains(&k.as_str())) {
            self.warn_unknown(&format!("{key}.{unknown}"), message);
        }
    }

    /// The object at `key` (else the error `expected`), with a warning
    /// for each of its keys not in `known`.
    pub(super) fn object<'v>(
        &mut self,
        key: &str,
        value: &'v Value,
        expected: &str,
        known: &[&str],
        unknown: &str,
    ) -> Result<&'v Map<String, Value>, ConfigError> {
        let Value::Object(map) = value else {
            return Err(self.error(key, expected));
        };
        self.warn_unknown_keys(key, map, known, unknown);
        Ok(map)
    }

    /// Warns about misspellings of our section names and unknown keys
    /// directly under `catalog`; their values are redacted like any
    /// unknown key's. Backstage's other sections stay silent.
    pub(super) fn misspelled_sections(&mut self) {
        for typo in typos::misspelled_sections(&self.source.root) {
            self.unknown_keys
                .push(provenance_key(&display_key(&typo.key)));
            self.warn(&typo.key, &typo.message);
        }
    }

    /// Records "`origin`: `key`: `message`" for the operator.
    pub(super) fn warn(&mut self, key: &str, message: &str) {
        let key = display_key(key);
        let origin = self
            .source
            .origin_of(&provenance_key(&key))
            .map_or_else(|| "config".to_owned(), ToString::to_string);
        self.warnings.push(format!("{origin}: {key}: {message}"));
    }

    pub(super) fn join(base: &str, key: &str) -> String {
        if base.is_empty() {
            key.to_owned()
        } else {
            format!("{base}.{key}")
        }
    }

    /// Deserialises the value at `key` into `T`, reporting the failing field's
    /// full path and warning about keys `T` does not know.
    pub(super) fn section<T: DeserializeOwned>(
        &mut self,
        key: &str,
        value: &Value,
    ) -> Result<T, ConfigError> {
        let mut unknown = Vec::new();
        let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let result: Result<T, _> = serde_path_to_error::deserialize(
            serde_ignored::Deserializer::new(value.clone(), &mut record),
        );
        match result {
            Ok(parsed) => {
                for path in unknown {
                    self.warn_unknown(
                        &Self::join(key, &path),
                        "unknown key is ignored; check its spelling",
                    );
                }
                Ok(parsed)
            }
            Err(err) => {
                let inner = err.path().to_string();
                let full = if inner == "." {
                    key.to_owned()
                } else {
                    Self::join(key, &provenance_key(&inner))
                };
                let mut message = err.into_inner().to_string();
                // "missing field `host`" because `host: ${BB_HOST}` was unset.
                let missing = message
                    .strip_prefix("missing field `")
                    .and_then(|rest| rest.split('`').next())
                    .map(|field| display_key(&Self::join(&full, field)));
                if let Some(var) = missing.and_then(|k| self.source.unset.get(&k)) {
                    message.push_str(&format!(
                        " (it was left out because environment variable {var} is not set)"
                    ));
                }
                Err(self.error(&full, message))
            }
        }
    }
}
