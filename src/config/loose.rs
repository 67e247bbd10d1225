//! Loose values: numbers and booleans written as such or as strings (values
//! from `${VAR}` substitution are strings), and quoting them in messages.

use std::time::Duration;

use serde::de::{Deserialize, Deserializer, Error as _};
use serde_json::Value;

use super::schedule::parse_duration;
use super::{ConfigError, Ctx};

/// A number written as a number or as a string (values from `${VAR}` are strings).
pub(super) fn loose_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(text) => Some(text.trim().to_owned()),
        _ => None,
    }
}

/// A share written as `0.5` or `'50%'`.
pub(super) fn parse_share(value: &Value) -> Option<f64> {
    let text = loose_text(value)?;
    let share = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().ok()? / 100.0,
        None => text.parse::<f64>().ok()?,
    };
    (0.0..=1.0).contains(&share).then_some(share)
}

/// A value quoted for a message: `'abc'`, `'8'`, or JSON for anything else.
pub(super) fn shown(value: &Value) -> String {
    loose_text(value).map_or_else(|| value.to_string(), |text| format!("'{text}'"))
}

/// `true` / `false`, or the same as a string.
pub(super) fn loose_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

impl Ctx<'_> {
    /// A whole number from `min` to `max`, written as a number or a string.
    pub(super) fn bounded(
        &self,
        key: &str,
        value: &Value,
        min: usize,
        max: usize,
    ) -> Result<usize, ConfigError> {
        bounded(value, min, max).map_err(|message| self.error(key, message))
    }

    /// A finite number from `min` to `max`, written as a number or a string.
    pub(super) fn number(
        &self,
        key: &str,
        value: &Value,
        min: f64,
        max: f64,
    ) -> Result<f64, ConfigError> {
        loose_text(value)
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|n| n.is_finite() && (min..=max).contains(n))
            .ok_or_else(|| {
                self.error(
                    key,
                    format!("{} is not a number from {min} to {max}", shown(value)),
                )
            })
    }
}

/// A port, checked while deserialising (so the error carries its key path).
pub(super) struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        loose_text(&value)
            .and_then(|p| p.parse().ok())
            .map(Self)
            .ok_or_else(|| {
                D::Error::custom(format!("{} is not a port number (0-65535)", shown(&value)))
            })
    }
}

/// A whole number from `MIN` to `MAX`, checked while deserialising.
pub(super) struct Bounded<const MIN: usize, const MAX: usize>(pub usize);

impl<'de, const MIN: usize, const MAX: usize> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        bounded(&value, MIN, MAX)
            .map(Self)
            .map_err(D::Error::custom)
    }
}

/// A duration longer than zero, checked while deserialising; the message's
/// example is `EXAMPLE_SECONDS` in both of Backstage's forms.
pub(super) struct PositiveDuration<const EXAMPLE_SECONDS: u32>(pub Duration);

impl<'de, const EXAMPLE_SECONDS: u32> Deserialize<'de> for PositiveDuration<EXAMPLE_SECONDS> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        positive_duration(&value, EXAMPLE_SECONDS)
            .map(Self)
            .map_err(D::Error::custom)
    }
}

pub(super) fn bounded(value: &Value, min: usize, max: usize) -> Result<usize, String> {
    loose_text(value)
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{} is not a number from {min} to {max}", shown(value)))
}

pub(super) fn positive_duration(value: &Value, example_seconds: u32) -> Result<Duration, String> {
    parse_duration(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            format!(
                "{} is not a duration; write e.g. {{seconds: {example_seconds}}} or 'PT{example_seconds}S'",
                shown(value)
            )
        })
}
