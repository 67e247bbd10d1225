//! `catalog.rules` (Backstage's shape) and `catalog.processing` (ours).

use std::sync::Arc;

use serde_json::Value;

use super::loose::{loose_text, shown};
use super::{ConfigError, Ctx, Schedule};
use crate::bitbucket::reader::Sites;
use crate::catalog::parse::DEFAULT_MAX_FILE_BYTES;
use crate::catalog::process::{DEFAULT_MAX_EXPANDED_BYTES, ProcessingConfig};
use crate::catalog::rules::{AllowKind, CatalogRule, CatalogRules, LocationMatcher, TargetMatch};

/// How discovered files are processed; shared by every provider.
#[derive(Debug, Clone, Default)]
pub struct CatalogSettings {
    pub rules: Arc<CatalogRules>,
    pub processing: Arc<ProcessingConfig>,
}

const MAX_FILE_SIZE_CAP: usize = 64 * 1024 * 1024;
const MAX_EXPANDED_SIZE_CAP: usize = 1024 * 1024 * 1024;

/// One `catalog.locations` entry this daemon reads: a Bitbucket file URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticLocation {
    pub target: String,
}

/// `catalog.locations` and `catalog.locationSchedule`.
#[derive(Debug, Clone, Default)]
pub struct LocationsConfig {
    pub locations: Vec<StaticLocation>,
    /// When static and registered locations are read again.
    pub schedule: Schedule,
    pub registrations: RegistrationLimits,
}

/// `catalog.changes.retainedRemovals`: how many removals the change feed
/// keeps; a follower whose cursor is older resynchronises (`410`).
pub const DEFAULT_RETAINED_REMOVALS: usize = 100_000;

/// What `POST /api/catalog/locations` may add (ours):
/// `catalog.maxRegisteredLocations` and `catalog.registrationsPerMinute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationLimits {
    /// Locations registered at once; each is read on every schedule tick.
    pub max_registered: usize,
    /// Registrations (dry runs and refreshes included) per minute, all
    /// clients together: each one reads Bitbucket.
    pub per_minute: u32,
}

impl Default for RegistrationLimits {
    fn default() -> Self {
        Self {
            max_registered: 500,
            per_minute: 30,
        }
    }
}

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

    /// `catalog.locations` (as in Backstage) and `catalog.locationSchedule`
    /// (ours). Entries this daemon cannot read (`type: file`, URLs on hosts
    /// without a Bitbucket integration) are skipped with a warning, so a
    /// shared Backstage config still loads. An entry's `rules` allow more
    /// kinds from that location, as in Backstage; they are added to
    /// `settings`.
    pub(super) fn locations(
        &mut self,
        sites: &Sites,
        settings: &mut CatalogSettings,
    ) -> Result<LocationsConfig, ConfigError> {
        let schedule_key = "catalog.locationSchedule";
        let raw_schedule = self
            .source
            .get(schedule_key)
            .filter(|v| !v.is_null())
            .cloned();
        let schedule = self.schedule(schedule_key, raw_schedule)?;
        let base = "catalog.locations";
        let mut registrations = RegistrationLimits::default();
        if let Some(value) = self.source.get("catalog.maxRegisteredLocations") {
            registrations.max_registered =
                self.bounded("catalog.maxRegisteredLocations", value, 0, 100_000)?;
        }
        if let Some(value) = self.source.get("catalog.registrationsPerMinute") {
            let per_minute = self.bounded("catalog.registrationsPerMinute", value, 1, 10_000)?;
            registrations.per_minute = u32::try_from(per_minute).unwrap_or(10_000);
        }
        let mut config = LocationsConfig {
            locations: Vec::new(),
            schedule,
            registrations,
        };
        let Some(value) = self.source.get(base).filter(|v| !v.is_null()) else {
            return Ok(config);
        };
        let Value::Array(items) = value else {
            return Err(self.error(
                base,
                "expected a list of locations, e.g. [{type: url, target: https://bitbucket.org/ws/repo/src/main/catalog-info.yaml}]",
            ));
        };
        let mut extra_rules = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let key = format!("{base}.{index}");
            let Value::Object(entry) = item else {
                return Err(self.error(&key, "expected {type: url, target: <file URL>}"));
            };
            for unknown in entry
                .keys()
                .filter(|k| !matches!(k.as_str(), "type" | "target" | "rules"))
            {
                self.warn_unknown(
                    &format!("{key}.{unknown}"),
                    "unknown key is ignored; a location has type, target and rules",
                );
            }
            let type_ = entry.get("type").and_then(Value::as_str).ok_or_else(|| {
                self.error(&format!("{key}.type"), "required: the location type, url")
            })?;
            let target = entry
                .get("target")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    self.error(
                        &format!("{key}.target"),
                        "required: the URL of a catalog file",
                    )
                })?;
            if type_ != "url" {
                self.warn(
                    &format!("{key}.type"),
                    &format!("type '{type_}' is not read by this daemon (it reads Bitbucket file URLs); the location is skipped"),
                );
                continue;
            }
            if let Err(err) = sites.api_url(target) {
                self.warn(
                    &format!("{key}.target"),
                    &format!("{err}; the location is skipped"),
                );
                continue;
            }
            if config.locations.iter().any(|l| l.target == target) {
                self.warn(
                    &format!("{key}.target"),
                    "the same target is listed twice; it is read once",
                );
                continue;
            }
            if let Some(rules) = entry.get("rules").filter(|v| !v.is_null()) {
                let Value::Array(rules) = rules else {
                    return Err(self.error(
                        &format!("{key}.rules"),
                        "expected a list of rules, e.g. [{allow: [Group, User]}]",
                    ));
                };
                for (i, rule) in rules.iter().enumerate() {
                    let rule_key = format!("{key}.rules.{i}");
                    for unknown in rule
                        .as_object()
                        .into_iter()
                        .flat_map(|r| r.keys())
                        .filter(|k| *k != "allow")
                    {
                        self.warn_unknown(
                            &format!("{rule_key}.{unknown}"),
                            "unknown key is ignored; a location's rule has `allow`",
                        );
                    }
                    let allow = self.allow_list(&format!("{rule_key}.allow"), rule.get("allow"))?;
                    extra_rules.push(CatalogRule {
                        allow,
                        locations: Some(vec![LocationMatcher {
                            type_: "url".into(),
                            target: TargetMatch::Exact(target.to_owned()),
                        }]),
                    });
                }
            }
            config.locations.push(StaticLocation {
                target: target.to_owned(),
            });
        }
        if !extra_rules.is_empty() {
            settings.rules = Arc::new(settings.rules.extended(extra_rules));
        }
        Ok(config)
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
                self.warn_unknown(
                    &format!("{key}.{unknown}"),
                    "unknown key is ignored; a rule has `allow` and `locations`",
                );
            }
            let allow = self.allow_list(&format!("{key}.allow"), rule.get("allow"))?;
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

    /// A rule's `allow`: kind names or `{kind, 'spec.type'}` objects.
    fn allow_list(&self, key: &str, value: Option<&Value>) -> Result<Vec<AllowKind>, ConfigError> {
        let Some(Value::Array(allows)) = value else {
            return Err(self.error(key, "required: a list of kinds, e.g. [Component, API]"));
        };
        let mut allow = Vec::with_capacity(allows.len());
        for (i, entry) in allows.iter().enumerate() {
            let entry_key = format!("{key}.{i}");
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
        Ok(allow)
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
            self.warn_unknown(
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
                "maxExpandedSize" => {
                    config.max_expanded_bytes = parse_size(value)
                        .filter(|n| (1..=MAX_EXPANDED_SIZE_CAP).contains(n))
                        .ok_or_else(|| {
                            self.error(&key, format!("{} is not a size from 1 byte to 1GiB; write bytes or a size like 4MiB (default {DEFAULT_MAX_EXPANDED_BYTES})", shown(value)))
                        })?;
                }
                "maxLocationDepth" => config.max_location_depth = self.bounded(&key, value, 0, 20)?,
                "maxLocationTargets" => config.max_location_targets = self.bounded(&key, value, 1, 1000)?,
                "maxLocationFiles" => config.max_location_files = self.bounded(&key, value, 0, 10_000)?,
                _ => self.warn_unknown(&key, "unknown key is ignored; use maxFileSize, maxExpandedSize, maxLocationDepth, maxLocationTargets or maxLocationFiles"),
            }
        }
        Ok(config)
    }

    /// `catalog.changes.retainedRemovals`.
    pub(super) fn retained_removals(&self) -> Result<usize, ConfigError> {
        let key = "catalog.changes.retainedRemovals";
        match self.source.get(key).filter(|v| !v.is_null()) {
            Some(value) => self.bounded(key, value, 1, 100_000_000),
            None => Ok(DEFAULT_RETAINED_REMOVALS),
        }
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
