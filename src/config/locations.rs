//! `catalog.locations` (Backstage's shape), `catalog.locationSchedule`
//! and the limits on registered locations (ours).

use std::sync::Arc;

use serde_json::Value;

use super::loose::Bounded;
use super::rules;
use super::schedule::RawSchedule;
use super::{CatalogSettings, ConfigError, Ctx, Schedule};
use crate::bitbucket::reader::Sites;
use crate::catalog::rules::{CatalogRule, LocationMatcher, TargetMatch};

/// The keys of a `catalog.locations` entry, and of one of its rules.
pub(super) const LOCATION_KEYS: &[&str] = &["type", "target", "rules"];
pub(super) const LOCATION_RULE_KEYS: &[&str] = &["allow"];

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

/// `catalog.locations` (as in Backstage) and `catalog.locationSchedule`
/// (ours). Entries this daemon cannot read (`type: file`, URLs on hosts
/// without a Bitbucket integration) are skipped with a warning, so a
/// shared Backstage config still loads. An entry's `rules` allow more
/// kinds from that location, as in Backstage; they are added to
/// `settings`.
pub(super) fn locations(
    ctx: &mut Ctx<'_>,
    sites: &Sites,
    settings: &mut CatalogSettings,
) -> Result<LocationsConfig, ConfigError> {
    let schedule = ctx
        .optional::<RawSchedule>("catalog.locationSchedule")?
        .map_or_else(Schedule::default, RawSchedule::into_schedule);
    let mut config = LocationsConfig {
        locations: Vec::new(),
        schedule,
        registrations: registration_limits(ctx)?,
    };
    let base = "catalog.locations";
    let Some(value) = ctx.set(base) else {
        return Ok(config);
    };
    let Value::Array(items) = value else {
        return Err(ctx.error(
            base,
            "expected a list of locations, e.g. [{type: url, target: https://bitbucket.org/ws/repo/src/main/catalog-info.yaml}]",
        ));
    };
    let mut extra_rules = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let key = format!("{base}.{index}");
        let Some(target) = static_location(ctx, &key, item, sites, &config)? else {
            continue;
        };
        if let Some(rules) = item.get("rules").filter(|v| !v.is_null()) {
            extra_rules.extend(location_rules(ctx, &key, rules, target)?);
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

/// `catalog.maxRegisteredLocations` and `catalog.registrationsPerMinute`.
fn registration_limits(ctx: &mut Ctx<'_>) -> Result<RegistrationLimits, ConfigError> {
    let mut registrations = RegistrationLimits::default();
    let source = ctx.source;
    if let Some(value) = source.get("catalog.maxRegisteredLocations") {
        registrations.max_registered = ctx
            .section::<Bounded<0, 100_000>>("catalog.maxRegisteredLocations", value)?
            .0;
    }
    if let Some(value) = source.get("catalog.registrationsPerMinute") {
        let per_minute = ctx
            .section::<Bounded<1, 10_000>>("catalog.registrationsPerMinute", value)?
            .0;
        registrations.per_minute = u32::try_from(per_minute).unwrap_or(10_000);
    }
    Ok(registrations)
}

/// One `catalog.locations` entry: its target when this
/// daemon reads it, `None` (with a warning) when it is skipped.
fn static_location<'v>(
    ctx: &mut Ctx<'_>,
    key: &str,
    item: &'v Value,
    sites: &Sites,
    config: &LocationsConfig,
) -> Result<Option<&'v str>, ConfigError> {
    let entry = ctx.object(
        key,
        item,
        "expected {type: url, target: <file URL>}",
        LOCATION_KEYS,
        "unknown key is ignored; a location has type, target and rules",
    )?;
    let type_ = entry
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ctx.error(&format!("{key}.type"), "required: the location type, url"))?;
    let target = entry
        .get("target")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ctx.error(
                &format!("{key}.target"),
                "required: the URL of a catalog file",
            )
        })?;
    if type_ != "url" {
        ctx.warn(
            &format!("{key}.type"),
            &format!("type '{type_}' is not read by this daemon (it reads Bitbucket file URLs); the location is skipped"),
        );
        return Ok(None);
    }
    if let Err(err) = sites.api_url(target) {
        ctx.warn(
            &format!("{key}.target"),
            &format!("{err}; the location is skipped"),
        );
        return Ok(None);
    }
    if config.locations.iter().any(|l| l.target == target) {
        ctx.warn(
            &format!("{key}.target"),
            "the same target is listed twice; it is read once",
        );
        return Ok(None);
    }
    Ok(Some(target))
}

/// A location's `rules`: each allows its kinds from exactly `target`.
fn location_rules(
    ctx: &mut Ctx<'_>,
    key: &str,
    rules: &Value,
    target: &str,
) -> Result<Vec<CatalogRule>, ConfigError> {
    let Value::Array(rules) = rules else {
        return Err(ctx.error(
            &format!("{key}.rules"),
            "expected a list of rules, e.g. [{allow: [Group, User]}]",
        ));
    };
    let mut extra_rules = Vec::with_capacity(rules.len());
    for (i, rule) in rules.iter().enumerate() {
        let rule_key = format!("{key}.rules.{i}");
        if let Some(rule) = rule.as_object() {
            ctx.warn_unknown_keys(
                &rule_key,
                rule,
                LOCATION_RULE_KEYS,
                "unknown key is ignored; a location's rule has `allow`",
            );
        }
        let allow = rules::allow_list(ctx, &format!("{rule_key}.allow"), rule.get("allow"))?;
        extra_rules.push(CatalogRule {
            allow,
            locations: Some(vec![LocationMatcher {
                type_: "url".into(),
                target: TargetMatch::Exact(target.to_owned()),
            }]),
        });
    }
    Ok(extra_rules)
}
