//! Loose values: numbers and booleans written as such or as strings (values
//! from `${VAR}` substitution are strings), and quoting them in messages.

use serde_json::Value;

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
