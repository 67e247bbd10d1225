//! Backstage's task schedule forms: `{minutes: 30}` objects, ISO-8601
//! durations (`PT30M`), `{cron: '*/30 * * * *'}` and `{trigger: manual}`.

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::loose::{DurationError, parse_duration};

/// How often a provider runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Frequency {
    /// A fixed interval.
    Every(#[serde(with = "crate::iso_duration")] Duration),
    /// A cron expression, kept as written (five fields, or six with seconds).
    Cron(String),
    /// Only on request (start-up run aside).
    Manual,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub frequency: Frequency,
    #[serde(with = "crate::iso_duration")]
    pub timeout: Duration,
    /// Delay before the first run; `None` runs right after start-up.
    #[serde(with = "crate::iso_duration::option")]
    pub initial_delay: Option<Duration>,
}

impl Default for Schedule {
    /// Every 30 minutes with a 15-minute timeout: Bitbucket's rate limits make
    /// anything more eager a bad default.
    fn default() -> Self {
        Self {
            frequency: Frequency::Every(Duration::from_secs(30 * 60)),
            timeout: Duration::from_secs(15 * 60),
            initial_delay: None,
        }
    }
}

/// `listingSchedule` (Data Center providers): how often the listing alone
/// is checked for deleted, archived, moved and new repositories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListingSchedule {
    pub frequency: Frequency,
    /// A listing not done by then removes nothing and frees the provider.
    #[serde(with = "crate::iso_duration")]
    pub timeout: Duration,
}

impl Default for ListingSchedule {
    /// Every 5 minutes: a deleted repository leaves within minutes, for one
    /// request per listing page.
    fn default() -> Self {
        Self {
            frequency: Frequency::Every(Duration::from_secs(5 * 60)),
            timeout: Duration::from_secs(5 * 60),
        }
    }
}

/// `listingSchedule` as written: `false` (off), `true` (the default) or
/// `{frequency, timeout}`.
pub(super) enum RawListingSchedule {
    Switch(bool),
    Schedule(RawListingFields),
}

#[derive(Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    expecting = "false, true or an object with `frequency` and `timeout`"
)]
pub(super) struct RawListingFields {
    frequency: Option<Checked<Frequency>>,
    timeout: Option<Checked<Timeout>>,
}

impl<'de> Deserialize<'de> for RawListingSchedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Bool(on) => Ok(Self::Switch(on)),
            Value::Null => Ok(Self::Switch(false)),
            value => serde_json::from_value(value)
                .map(Self::Schedule)
                .map_err(D::Error::custom),
        }
    }
}

impl RawListingSchedule {
    /// `None`: no listing sweep (`false`, or `{trigger: manual}`).
    pub(super) fn into_schedule(self) -> Option<ListingSchedule> {
        let defaults = ListingSchedule::default();
        let schedule = match self {
            Self::Switch(false) => return None,
            Self::Switch(true) => defaults,
            Self::Schedule(raw) => ListingSchedule {
                frequency: raw.frequency.map_or(defaults.frequency, |f| f.0),
                timeout: raw.timeout.map_or(defaults.timeout, |t| t.0.0),
            },
        };
        (schedule.frequency != Frequency::Manual).then_some(schedule)
    }
}

/// `every 30m`, `cron '*/30 * * * *'`, `manual`: for the start-up log.
impl std::fmt::Display for Frequency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frequency::Every(interval) => {
                let secs = interval.as_secs();
                match (secs % 3600, secs % 60) {
                    (0, _) if secs > 0 => write!(f, "every {}h", secs / 3600),
                    (_, 0) if secs > 0 => write!(f, "every {}m", secs / 60),
                    _ => write!(f, "every {}s", interval.as_secs_f64()),
                }
            }
            Frequency::Cron(expr) => write!(f, "cron '{expr}'"),
            Frequency::Manual => f.write_str("manual"),
        }
    }
}

impl Frequency {
    /// The six-field (seconds first) form that `tokio-cron-scheduler` expects.
    pub fn six_field_cron(expr: &str) -> String {
        let fields = expr.split_whitespace().count();
        if fields == 5 {
            format!("0 {}", expr.trim())
        } else {
            expr.trim().to_owned()
        }
    }
}

/// Why a `schedule` value cannot be used; each says what to write instead.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScheduleError {
    #[error("must be longer than zero")]
    Zero,
    #[error("`cron` must be a string such as '*/30 * * * *'")]
    CronNotText,
    #[error("the only supported trigger is `manual`")]
    Trigger,
    #[error(
        "cron expression '{expr}' has {fields} fields; write five (minute hour day month weekday)"
    )]
    CronFields { expr: String, fields: usize },
    #[error("invalid cron expression '{expr}': {source}")]
    Cron {
        expr: String,
        #[source]
        source: tokio_cron_scheduler::JobSchedulerError,
    },
    #[error(transparent)]
    Duration(#[from] DurationError),
}

/// A `schedule` as written, each key checked as it is read (so an error
/// names `schedule.frequency`, and an unknown key is warned about).
#[derive(Deserialize)]
#[serde(
    rename_all = "camelCase",
    expecting = "an object with `frequency` and `timeout`"
)]
pub(super) struct RawSchedule {
    frequency: Option<Checked<Frequency>>,
    timeout: Option<Checked<Timeout>>,
    initial_delay: Option<Checked<Duration>>,
    /// Backstage's (`global`/`local`); taken, so it is not warned about,
    /// and not used: one daemon runs each schedule.
    #[serde(rename = "scope")]
    _scope: Option<Value>,
}

impl RawSchedule {
    pub(super) fn into_schedule(self) -> Schedule {
        let defaults = Schedule::default();
        Schedule {
            frequency: self.frequency.map_or(defaults.frequency, |f| f.0),
            timeout: self.timeout.map_or(defaults.timeout, |t| t.0.0),
            initial_delay: self.initial_delay.map(|d| d.0),
        }
    }
}

/// A `timeout`: longer than zero.
struct Timeout(Duration);

/// A schedule value, read from its written form by [`Parse`].
struct Checked<T>(T);

trait Parse: Sized {
    fn parse(value: &Value) -> Result<Self, ScheduleError>;
}

impl<'de, T: Parse> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        T::parse(&value).map(Self).map_err(D::Error::custom)
    }
}

impl Parse for Frequency {
    fn parse(value: &Value) -> Result<Self, ScheduleError> {
        parse_frequency(value)
    }
}

impl Parse for Timeout {
    fn parse(value: &Value) -> Result<Self, ScheduleError> {
        match parse_duration(value)? {
            timeout if timeout.is_zero() => Err(ScheduleError::Zero),
            timeout => Ok(Self(timeout)),
        }
    }
}

impl Parse for Duration {
    fn parse(value: &Value) -> Result<Self, ScheduleError> {
        Ok(parse_duration(value)?)
    }
}

fn parse_frequency(value: &Value) -> Result<Frequency, ScheduleError> {
    if let Some(obj) = value.as_object() {
        if let Some(cron) = obj.get("cron") {
            let expr = cron.as_str().ok_or(ScheduleError::CronNotText)?;
            validate_cron(expr)?;
            return Ok(Frequency::Cron(expr.trim().to_owned()));
        }
        if let Some(trigger) = obj.get("trigger") {
            return match trigger.as_str() {
                Some("manual") => Ok(Frequency::Manual),
                _ => Err(ScheduleError::Trigger),
            };
        }
    }
    let every = parse_duration(value)?;
    if every.is_zero() {
        return Err(ScheduleError::Zero);
    }
    Ok(Frequency::Every(every))
}

fn validate_cron(expr: &str) -> Result<(), ScheduleError> {
    let fields = expr.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(ScheduleError::CronFields {
            expr: expr.to_owned(),
            fields,
        });
    }
    tokio_cron_scheduler::Job::new_async(Frequency::six_field_cron(expr).as_str(), |_, _| {
        Box::pin(async {})
    })
    .map(drop)
    .map_err(|source| ScheduleError::Cron {
        expr: expr.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The schedule and its unknown keys, or the failing key and message.
    fn parse_schedule(value: &Value) -> Result<(Schedule, Vec<String>), (String, String)> {
        let mut unknown = Vec::new();
        let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let ignored = serde_ignored::Deserializer::new(value.clone(), &mut record);
        let parsed: Result<RawSchedule, _> = serde_path_to_error::deserialize(ignored);
        match parsed {
            Ok(raw) => Ok((raw.into_schedule(), unknown)),
            Err(err) => Err((err.path().to_string(), err.into_inner().to_string())),
        }
    }

    #[test]
    fn default_is_every_30_minutes_with_15_minute_timeout() {
        let (s, unknown) = parse_schedule(&json!({})).unwrap();
        assert!(unknown.is_empty());
        assert_eq!(s.frequency, Frequency::Every(Duration::from_secs(1800)));
        assert_eq!(s.timeout, Duration::from_secs(900));
        assert_eq!(s.initial_delay, None);
    }

    #[test]
    fn accepts_backstage_forms() {
        let (s, _) = parse_schedule(&json!({
            "frequency": {"minutes": 30},
            "timeout": "PT3M",
            "initialDelay": {"seconds": 15}
        }))
        .unwrap();
        assert_eq!(s.frequency, Frequency::Every(Duration::from_secs(1800)));
        assert_eq!(s.timeout, Duration::from_secs(180));
        assert_eq!(s.initial_delay, Some(Duration::from_secs(15)));

        let (s, _) = parse_schedule(&json!({"frequency": "PT1H30M"})).unwrap();
        assert_eq!(s.frequency, Frequency::Every(Duration::from_secs(5400)));

        let (s, _) = parse_schedule(&json!({"frequency": {"cron": "*/30 * * * *"}})).unwrap();
        assert_eq!(s.frequency, Frequency::Cron("*/30 * * * *".into()));

        let (s, _) = parse_schedule(&json!({"frequency": {"trigger": "manual"}})).unwrap();
        assert_eq!(s.frequency, Frequency::Manual);
    }

    fn listing(value: Value) -> Result<Option<ListingSchedule>, String> {
        serde_json::from_value::<RawListingSchedule>(value)
            .map(RawListingSchedule::into_schedule)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn listing_schedule_forms() {
        assert_eq!(listing(json!(false)), Ok(None));
        assert_eq!(listing(json!(null)), Ok(None));
        assert_eq!(listing(json!(true)), Ok(Some(ListingSchedule::default())));
        let every = listing(json!({"frequency": {"seconds": 2}}))
            .unwrap()
            .unwrap();
        assert_eq!(every.frequency, Frequency::Every(Duration::from_secs(2)));
        assert_eq!(every.timeout, ListingSchedule::default().timeout);
        assert_eq!(
            listing(json!({"frequency": {"trigger": "manual"}})),
            Ok(None)
        );
        let typo = listing(json!({"frequncy": {"minutes": 5}})).unwrap_err();
        assert!(typo.contains("frequncy"), "{typo}");
        assert!(listing(json!({"frequency": {"minutes": 0}})).is_err());
    }

    #[test]
    fn five_field_cron_gets_a_seconds_field() {
        assert_eq!(Frequency::six_field_cron("*/30 * * * *"), "0 */30 * * * *");
        assert_eq!(
            Frequency::six_field_cron("0 */30 * * * *"),
            "0 */30 * * * *"
        );
    }

    #[test]
    fn rejects_nonsense_with_the_key() {
        let (key, msg) = parse_schedule(&json!({"frequency": {"minuts": 3}})).unwrap_err();
        assert_eq!(key, "frequency");
        assert!(msg.to_string().contains("minuts"), "{msg}");
        let (key, msg) = parse_schedule(&json!({"frequency": {"cron": "* * *"}})).unwrap_err();
        assert_eq!(key, "frequency");
        assert!(msg.to_string().contains("3 fields"), "{msg}");
        let (key, _) = parse_schedule(&json!({"frequency": {"cron": "99 * * * *"}})).unwrap_err();
        assert_eq!(key, "frequency");
        let (key, _) = parse_schedule(&json!({"timeout": "30 minutes"})).unwrap_err();
        assert_eq!(key, "timeout");
        let (_, unknown) = parse_schedule(&json!({"frequncy": "PT1M"})).unwrap();
        assert_eq!(unknown, vec!["frequncy".to_owned()]);
    }
}
