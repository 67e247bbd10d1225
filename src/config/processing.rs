//! `catalog.processing` (ours): size and fan-out limits for reading
//! catalog files and following their Location targets.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::loose::{Bounded, loose_text, shown};
use super::{ConfigError, Ctx};
use crate::catalog::parse::DEFAULT_MAX_FILE_BYTES;
use crate::catalog::process::{DEFAULT_MAX_EXPANDED_BYTES, ProcessingConfig};

const MAX_FILE_SIZE_CAP: usize = 64 * 1024 * 1024;
const MAX_EXPANDED_SIZE_CAP: usize = 1024 * 1024 * 1024;

pub(super) fn processing(ctx: &mut Ctx<'_>) -> Result<ProcessingConfig, ConfigError> {
    let base = "catalog.processing";
    let mut config = ProcessingConfig::default();
    let Some(value) = ctx.set(base) else {
        return Ok(config);
    };
    if !value.is_object() {
        return Err(ctx.error(base, "expected an object, e.g. {maxFileSize: 1MiB}"));
    }
    let raw: Processing = ctx.section(base, value)?;
    let limits = &mut config.limits;
    limits.max_file_bytes = raw.max_file_size.map_or(limits.max_file_bytes, |s| s.0);
    config.max_expanded_bytes = raw
        .max_expanded_size
        .map_or(config.max_expanded_bytes, |s| s.0);
    if let Some(n) = raw.max_location_depth {
        config.max_location_depth = n.0;
    }
    if let Some(n) = raw.max_location_targets {
        config.max_location_targets = n.0;
    }
    if let Some(n) = raw.max_location_files {
        config.max_location_files = n.0;
    }
    Ok(config)
}

/// `catalog.processing` as written; each value is checked as it is read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Processing {
    max_file_size: Option<FileSize>,
    max_expanded_size: Option<ExpandedSize>,
    max_location_depth: Option<Bounded<0, 20>>,
    max_location_targets: Option<Bounded<1, 1000>>,
    max_location_files: Option<Bounded<0, 10_000>>,
}

/// `maxFileSize`: from 1 byte to 64MiB.
struct FileSize(usize);

impl<'de> Deserialize<'de> for FileSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        size(deserializer, MAX_FILE_SIZE_CAP, |value| format!("{} is not a size from 1 byte to 64MiB; write bytes (1048576) or a size like 512KiB, 1MiB (default {DEFAULT_MAX_FILE_BYTES})", shown(value))).map(Self)
    }
}

/// `maxExpandedSize`: from 1 byte to 1GiB.
struct ExpandedSize(usize);

impl<'de> Deserialize<'de> for ExpandedSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        size(deserializer, MAX_EXPANDED_SIZE_CAP, |value| format!("{} is not a size from 1 byte to 1GiB; write bytes or a size like 4MiB (default {DEFAULT_MAX_EXPANDED_BYTES})", shown(value))).map(Self)
    }
}

fn size<'de, D: Deserializer<'de>>(
    deserializer: D,
    cap: usize,
    message: impl FnOnce(&Value) -> String,
) -> Result<usize, D::Error> {
    let value = Value::deserialize(deserializer)?;
    parse_size(&value)
        .filter(|n| (1..=cap).contains(n))
        .ok_or_else(|| serde::de::Error::custom(message(&value)))
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
