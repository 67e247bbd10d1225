//! Durations as status output and `config check` print them: ISO-8601
//! (`PT30M`, `PT1.500S`). A leaf: used by `config` and `integrations` alike.

use std::time::Duration;

use serde::Serializer;

pub(crate) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let millis = d.subsec_millis();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::from("PT");
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    if s > 0 || millis > 0 || out == "PT" {
        if millis > 0 {
            out.push_str(&format!("{s}.{millis:03}S"));
        } else {
            out.push_str(&format!("{s}S"));
        }
    }
    out
}

/// For `#[serde(with = "crate::iso_duration")]`.
pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// For `#[serde(serialize_with = …)]`.
pub(crate) fn serialize_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    serialize(d, s)
}

pub(crate) mod option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }
}
