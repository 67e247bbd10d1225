//! Times as the records, reports and status carry them: RFC 3339 in UTC
//! with milliseconds (`2026-12-07T03:02:40.123Z`), held as
//! `DateTime<Utc>` in between, for `#[serde(with = …)]`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// The text form.
pub(crate) fn format(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn serialize<S: Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(time))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(serde::de::Error::custom)
}

/// An optional time; a stored text that is not RFC 3339 reads as `None`
/// (for a read time: read it again), so no record is lost over it.
pub(crate) mod option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => super::serialize(time, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        Ok(text
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Held {
        #[serde(default, with = "option", skip_serializing_if = "Option::is_none")]
        at: Option<DateTime<Utc>>,
    }

    #[test]
    fn stored_text_round_trips_byte_for_byte() {
        for text in [
            r#"{"at":"2026-12-07T03:02:40.123Z"}"#,
            r#"{"at":"2026-01-01T00:00:00.000Z"}"#,
            "{}",
        ] {
            let held: Held = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&held).unwrap(), text);
        }
        let held: Held = serde_json::from_str(r#"{"at":"yesterday"}"#).unwrap();
        assert_eq!(held.at, None);
        // The form reports were written in when they held text.
        let now = format(&Utc::now());
        assert_eq!(now.len(), "2026-12-07T03:02:40.123Z".len());
        assert!(now.ends_with('Z'));
    }
}
