//! `catalog.processing` (ours): size and fan-out limits for reading
//! catalog files and following their Location targets.

use serde_json::Value;

use super::loose::{loose_text, shown};
use super::{ConfigError, Ctx};
use crate::catalog::parse::DEFAULT_MAX_FILE_BYTES;
use crate::catalog::process::{DEFAULT_MAX_EXPANDED_BYTES, ProcessingConfig};

const MAX_FILE_SIZE_CAP: usize = 64 * 1024 * 1024;
const MAX_EXPANDED_SIZE_CAP: usize = 1024 * 1024 * 1024;

impl Ctx<'_> {
    pub(super) fn processing(&mut self) -> Result<ProcessingConfig, ConfigError> {
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
