//! Loose values, checked while deserialising so an error carries its key
//! path: numbers, booleans and durations written as such or as strings
//! (values from `${VAR}` substitution are strings), and quoting them in
//! messages. Each newtype's message says what to write instead.

use std::time::Duration;

use serde::de::{Deserialize, Deserializer, Error as _};
use serde_json::Value;

/// A number written as a number or as a string (values from `${VAR}` are strings).
pub(super) fn loose_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(text) => Some(text.trim().to_owned()),
        _ => None,
    }
}

/// A value quoted for a message: `'abc'`, `'8'`, or JSON for anything else.
pub(super) fn shown(value: &Value) -> String {
    loose_text(value).map_or_else(|| value.to_string(), |text| format!("'{text}'"))
}

/// Deserialises a [`Value`] and checks it with `check`, whose error is the message.
fn checked<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    check: impl FnOnce(&Value) -> Result<T, String>,
) -> Result<T, D::Error> {
    let value = Value::deserialize(deserializer)?;
    check(&value).map_err(D::Error::custom)
}

/// A port.
pub(super) struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked(deserializer, |value| {
            loose_text(value)
                .and_then(|p| p.parse().ok())
                .map(Self)
                .ok_or_else(|| format!("{} is not a port number (0-65535)", shown(value)))
        })
    }
}

/// A whole number from `MIN` to `MAX`.
pub(super) struct Bounded<const MIN: usize, const MAX: usize>(pub usize);

impl<'de, const MIN: usize, const MAX: usize> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked(deserializer, |value| bounded(value, MIN, MAX).map(Self))
    }
}

pub(super) fn bounded(value: &Value, min: usize, max: usize) -> Result<usize, String> {
    loose_text(value)
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{} is not a number from {min} to {max}", shown(value)))
}

/// A finite number from `MIN` to `MAX` (fractions allowed).
pub(super) struct Number<const MIN: usize, const MAX: usize>(pub f64);

impl<'de, const MIN: usize, const MAX: usize> Deserialize<'de> for Number<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked(deserializer, |value| {
            number(value, MIN as f64, MAX as f64).map(Self)
        })
    }
}

pub(super) fn number(value: &Value, min: f64, max: f64) -> Result<f64, String> {
    loose_text(value)
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|n| n.is_finite() && (min..=max).contains(n))
        .ok_or_else(|| format!("{} is not a number from {min} to {max}", shown(value)))
}

/// `true` / `false`, or the same as a string.
pub(super) struct LooseBool(pub bool);

impl<'de> Deserialize<'de> for LooseBool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked(deserializer, |value| match value {
            Value::Bool(b) => Ok(Self(*b)),
            Value::String(text) => text
                .trim()
                .parse()
                .map(Self)
                .map_err(|_| "expected true or false".to_owned()),
            _ => Err("expected true or false".to_owned()),
        })
    }
}

/// A share written as `0.5` or `'50%'`.
pub(super) struct Share(pub f64);

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked(deserializer, |value| {
            parse_share(value).map(Self).ok_or_else(|| {
                format!(
                    "{} is not a share; write e.g. 0.5 or '50%' (1 or '100%' turns the guard off)",
                    shown(value)
                )
            })
        })
    }
}

fn parse_share(value: &Value) -> Option<f64> {
    let text = loose_text(value)?;
    let share = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().ok()? / 100.0,
        None => text.parse::<f64>().ok()?,
    };
    (0.0..=1.0).contains(&share).then_some(share)
}

/// A duration longer than zero; the message's example is
/// `EXAMPLE_SECONDS` in both of Backstage's forms.
pub(super) struct PositiveDuration<const EXAMPLE_SECONDS: u32>(pub Duration);

impl<'de, const EXAMPLE_SECONDS: u32> Deserialize<'de> for PositiveDuration<EXAMPLE_SECONDS> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked(deserializer, |value| {
            parse_duration(value)
                .ok()
                .filter(|d| !d.is_zero())
                .map(Self)
                .ok_or_else(|| {
                    format!(
                        "{} is not a duration; write e.g. {{seconds: {EXAMPLE_SECONDS}}} or 'PT{EXAMPLE_SECONDS}S'",
                        shown(value)
                    )
                })
        })
    }
}

/// Why a duration cannot be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DurationError {
    #[error("empty duration; write e.g. {{minutes: 30}}")]
    Empty,
    #[error(
        "unknown duration unit `{0}`; use years, months, weeks, days, hours, minutes, seconds or milliseconds"
    )]
    Unit(String),
    #[error("`{0}` must be a non-negative number")]
    Amount(String),
    #[error("duration out of range: {0}")]
    OutOfRange(#[source] std::time::TryFromFloatSecsError),
    #[error("'{0}' is not an ISO-8601 duration; write e.g. 'PT30M' or {{minutes: 30}}")]
    Iso8601(String),
    #[error("expected an ISO-8601 duration such as 'PT30M' or an object such as {{minutes: 30}}")]
    Shape,
}

/// A duration as Backstage accepts it: an ISO-8601 string or a
/// `{years, months, weeks, days, hours, minutes, seconds, milliseconds}` object.
pub(crate) fn parse_duration(value: &Value) -> Result<Duration, DurationError> {
    match value {
        Value::String(text) => parse_iso8601(text),
        Value::Object(map) => {
            if map.is_empty() {
                return Err(DurationError::Empty);
            }
            let mut total = 0f64;
            for (unit, amount) in map {
                let seconds_per_unit = match unit.as_str() {
                    "years" => 365.0 * 86_400.0,
                    "months" => 30.0 * 86_400.0,
                    "weeks" => 7.0 * 86_400.0,
                    "days" => 86_400.0,
                    "hours" => 3_600.0,
                    "minutes" => 60.0,
                    "seconds" => 1.0,
                    "milliseconds" => 0.001,
                    other => return Err(DurationError::Unit(other.to_owned())),
                };
                let amount = amount
                    .as_f64()
                    .filter(|a| a.is_finite() && *a >= 0.0)
                    .ok_or_else(|| DurationError::Amount(unit.clone()))?;
                total += amount * seconds_per_unit;
            }
            Duration::try_from_secs_f64(total).map_err(DurationError::OutOfRange)
        }
        _ => Err(DurationError::Shape),
    }
}

fn parse_iso8601(text: &str) -> Result<Duration, DurationError> {
    // The parser's own message names grammar rules, not what to write.
    let parsed =
        iso8601::duration(text.trim()).map_err(|_| DurationError::Iso8601(text.to_owned()))?;
    Ok(parsed.into())
}
