//! `catalog.rules` (Backstage's shape) and `catalog.processing` (ours).

use std::sync::Arc;

use serde_json::Value;

use super::{ConfigError, Ctx, loose_text, shown};
use crate::catalog::parse::DEFAULT_MAX_FILE_BYTES;
use crate::catalog::process::ProcessingConfig;
use crate::catalog::rules::{AllowKind, CatalogRule, CatalogRules, LocationMatcher, TargetMatch};

/// How discovered files are processed; shared by every provider.
#[derive(Debug, Clone, Default)]
pub struct CatalogSettings {
    pub rules: Arc<CatalogRules>,
    pub processing: Arc<ProcessingConfig>,
}

const MAX_FILE_SIZE_CAP: usize = 64 * 1024 * 1024;

impl Ctx<'_> {
    pub(super) fn catalog_settings(&mut self) -> Result<CatalogSettings, ConfigError> {
        let rules = match self.source.get("catalog.rules").filter(|v| !v.is_null()) {
            None => CatalogRules::default(),
            Some(value) => self.catalog_rules(value)?,
        };
        let processing = self.processing()?;
        Ok(CatalogSettings {
            rules: Arc::new(rules),
            processing: Arc::new(processing),
        })
    }

    fn catalog_rules(&mut self, value: &Value) -> Result<CatalogRules, ConfigError> {
        let base = "catalog.rules";
        let Value::Array(items) = value else {
            return Err(self.error(
                base,
                "expected a list of rules, e.g. [{allow: [Component, API, Location]}]",
            ));
        };
        if items.is_empty() {
            self.warn(
                base,
                "an empty list allows no kind at all: every discovered entity will be rejected",
            );
        }
        let mut rules = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let key = format!("{base}.{index}");
            let Value::Object(rule) = item else {
                return Err(self.error(
                    &key,
                    "expected a rule object with `allow` (and optionally `locations`)",
                ));
            };
            for unknown in rule.keys().filter(|k| *k != "allow" && *k != "locations") {
                self.warn(
                    &format!("{key}.{unknown}"),
                    "unknown key is ignored; a rule has `allow` and `locations`",
                );
            }
            let allow_key = format!("{key}.allow");
            let Some(Value::Array(allows)) = rule.get("allow") else {
                return Err(self.error(
                    &allow_key,
                    "required: a list of kinds, e.g. [Component, API]",
                ));
            };
            let mut allow = Vec::with_capacity(allows.len());
            for (i, entry) in allows.iter().enumerate() {
                let entry_key = format!("{allow_key}.{i}");
                allow.push(match entry {
                    Value::String(kind) if !kind.trim().is_empty() => AllowKind {
                        kind: kind.trim().to_owned(),
                        spec_type: None,
                    },
                    Value::Object(obj) => {
                        let kind = obj.get("kind").and_then(Value::as_str).filter(|k| !k.trim().is_empty()).ok_or_else(|| {
                            self.error(&format!("{entry_key}.kind"), "required: the entity kind to allow")
                        })?;
                        let spec_type = match obj.get("spec.type") {
                            None => None,
                            Some(Value::String(t)) => Some(t.clone()),
                            Some(_) => return Err(self.error(&format!("{entry_key}.spec.type"), "expected a string")),
                        };
                        AllowKind {
                            kind: kind.trim().to_owned(),
                            spec_type,
                        }
                    }
                    other => {
                        return Err(self.error(&entry_key, format!("{} is not a kind; write a kind name or {{kind: Resource, 'spec.type': database}}", shown(other))));
                    }
                });
            }
            let locations = match rule.get("locations") {
                None | Some(Value::Null) => None,
                Some(Value::Array(locations)) => {
                    let mut matchers = Vec::with_capacity(locations.len());
                    for (i, location) in locations.iter().enumerate() {
                        matchers.push(
                            self.location_matcher(&format!("{key}.locations.{i}"), location)?,
                        );
                    }
                    Some(matchers)
                }
                Some(_) => {
                    return Err(self.error(
                        &format!("{key}.locations"),
                        "expected a list of {type, exact or pattern}",
                    ));
                }
            };
            rules.push(CatalogRule { allow, locations });
        }
        Ok(CatalogRules::new(rules))
    }

    fn location_matcher(
        &mut self,
        key: &str,
        value: &Value,
    ) -> Result<LocationMatcher, ConfigError> {
        let Value::Object(obj) = value else {
            return Err(self.error(
                key,
                "expected {type: url, exact: <url>} or {type: url, pattern: <glob>}",
            ));
        };
        for unknown in obj
            .keys()
            .filter(|k| !matches!(k.as_str(), "type" | "exact" | "pattern"))
        {
            self.warn(
                &format!("{key}.{unknown}"),
                "unknown key is ignored; use type, exact or pattern",
            );
        }
        let type_ = obj.get("type").and_then(Value::as_str).ok_or_else(|| {
            self.error(
                &format!("{key}.type"),
                "required: the location type, e.g. url",
            )
        })?;
        let target = match (obj.get("exact"), obj.get("pattern")) {
            (Some(_), Some(_)) => {
                return Err(self.error(
                    key,
                    "a catalog rule location cannot have both exact and pattern values",
                ));
            }
            (Some(Value::String(exact)), None) => TargetMatch::Exact(exact.clone()),
            (None, Some(Value::String(pattern))) => {
                TargetMatch::pattern(pattern).map_err(|message| {
                    self.error(
                        &format!("{key}.pattern"),
                        format!("invalid glob '{pattern}': {message}"),
                    )
                })?
            }
            (None, None) => TargetMatch::Any,
            (Some(_), None) => return Err(self.error(&format!("{key}.exact"), "expected a string")),
            (None, Some(_)) => {
                return Err(self.error(&format!("{key}.pattern"), "expected a string"));
            }
        };
        Ok(LocationMatcher {
            type_: type_.to_owned(),
            target,
        })
    }

    fn processing(&mut self) -> Result<ProcessingConfig, ConfigError> {
        let base = "catalog.processing";
        let mut config = ProcessingConfig::default();
        let Some(value) = self.source.get(base).filter(|v| !v.is_null()) else {
            return Ok(config);
        };
        let Value::Object(map) = value else {
            return Err(self.error(base, "expected an object, e.g. {maxFileSize: 1MiB}"));
        };
        for (name, value) in map {
            let key = format!("{base}.{name}");
            match name.as_str() {
                "maxFileSize" => {
                    config.limits.max_file_bytes = parse_size(value)
                        .filter(|n| (1..=MAX_FILE_SIZE_CAP).contains(n))
                        .ok_or_else(|| {
                            self.error(&key, format!("{} is not a size from 1 byte to 64MiB; write bytes (1048576) or a size like 512KiB, 1MiB (default {DEFAULT_MAX_FILE_BYTES})", shown(value)))
                        })?;
                }
                "maxLocationDepth" => config.max_location_depth = self.bounded(&key, value, 0, 20)?,
                "maxLocationTargets" => config.max_location_targets = self.bounded(&key, value, 1, 1000)?,
                "maxLocationFiles" => config.max_location_files = self.bounded(&key, value, 0, 10_000)?,
                _ => self.warn(&key, "unknown key is ignored; use maxFileSize, maxLocationDepth, maxLocationTargets or maxLocationFiles"),
            }
        }
        Ok(config)
    }

    fn bounded(
        &self,
        key: &str,
        value: &Value,
        min: usize,
        max: usize,
    ) -> Result<usize, ConfigError> {
        loose_text(value)
            .and_then(|t| t.parse::<usize>().ok())
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                self.error(
                    key,
                    format!("{} is not a number from {min} to {max}", shown(value)),
                )
            })
    }
}

/// Bytes as a number, or a string with an optional unit: `1048576`,
/// `512KiB`, `1MiB`, `2MB`, `100kB`.
fn parse_size(value: &Value) -> Option<usize> {
    let text = loose_text(value)?;
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: usize = digits.parse().ok()?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1024,
        "mb" => 1_000_000,
        "mib" | "m" => 1024 * 1024,
        _ => return None,
    };
    number.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes() {
        for (value, bytes) in [
            (json!(1048576), Some(1048576)),
            (json!("1048576"), Some(1048576)),
            (json!("512KiB"), Some(524288)),
            (json!("1MiB"), Some(1048576)),
            (json!("2 MB"), Some(2_000_000)),
            (json!("1.5MiB"), None),
            (json!("lots"), None),
            (json!(true), None),
        ] {
            assert_eq!(parse_size(&value), bytes, "{value}");
        }
    }
}
