//! An integration's HTTP settings (ours): `rateLimit`,
//! `maxConcurrentRequests`, `connectTimeout`, `requestTimeout`, `maxRetries`.
//! Each value is checked as it is deserialised (see [`super::loose`]).

use crate::integrations::{Budget, HttpSettings, RateLimit};

/// `rateLimit`, `maxConcurrentRequests`, `connectTimeout`,
/// `requestTimeout`, `maxRetries` of one integration.
pub(super) fn http_settings(raw: raw::Http) -> HttpSettings {
    let defaults = HttpSettings::default();
    HttpSettings {
        // The burst defaults to one second's worth.
        rate_limit: raw.rate_limit.as_ref().and_then(|rate| {
            let per_second = rate.requests_per_second.as_ref()?.0;
            Some(RateLimit {
                requests_per_second: per_second,
                burst: rate.burst.as_ref().map_or(per_second.ceil(), |b| b.0) as u32,
            })
        }),
        budget: raw
            .rate_limit
            .as_ref()
            .map_or_else(Budget::default, |rate| Budget {
                share: rate.share.as_ref().map(|s| s.0),
                per_hour: rate.per_hour.as_ref().map(|n| n.0 as u32),
            }),
        max_concurrent_requests: raw
            .max_concurrent_requests
            .map_or(defaults.max_concurrent_requests, |n| n.0 as usize),
        connect_timeout: raw
            .connect_timeout
            .map_or(defaults.connect_timeout, |d| d.0),
        request_timeout: raw
            .request_timeout
            .map_or(defaults.request_timeout, |d| d.0),
        max_retries: raw.max_retries.map_or(defaults.max_retries, |n| n.0 as u32),
    }
}

pub(super) mod raw {
    use serde::{Deserialize, Deserializer};

    use crate::config::loose::{Number, PositiveDuration, number};

    /// Pacing, concurrency, timeouts and retries (both integration kinds).
    pub(crate) struct Http {
        pub rate_limit: Option<RateLimit>,
        pub max_concurrent_requests: Option<Number<1, 256>>,
        pub connect_timeout: Option<PositiveDuration<30>>,
        pub request_timeout: Option<PositiveDuration<30>>,
        pub max_retries: Option<Number<0, 20>>,
    }

    /// Moves the shared HTTP keys out of an integration entry (each
    /// integration kind lists them itself, so unknown keys are still warned about).
    macro_rules! http_of {
        ($raw:expr) => {
            $crate::config::http::raw::Http {
                rate_limit: $raw.rate_limit,
                max_concurrent_requests: $raw.max_concurrent_requests,
                connect_timeout: $raw.connect_timeout,
                request_timeout: $raw.request_timeout,
                max_retries: $raw.max_retries,
            }
        };
    }
    pub(crate) use http_of;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(crate) struct RateLimit {
        /// A fixed pace; optional, so `share` or `perHour` may stand alone.
        pub requests_per_second: Option<PerSecond>,
        pub burst: Option<Number<1, 100_000>>,
        pub share: Option<Share>,
        pub per_hour: Option<Number<1, 100_000_000>>,
    }

    /// `rateLimit.share`: a share of the learnt rate, from 0.01 to 1.
    pub(crate) struct Share(pub f64);

    impl<'de> Deserialize<'de> for Share {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let value = serde_json::Value::deserialize(deserializer)?;
            number(&value, 0.01, 1.0)
                .map(Self)
                .map_err(serde::de::Error::custom)
        }
    }

    /// Requests per second: from 0.1 to 100000.
    pub(crate) struct PerSecond(pub f64);

    impl<'de> Deserialize<'de> for PerSecond {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let value = serde_json::Value::deserialize(deserializer)?;
            number(&value, 0.1, 100_000.0)
                .map(Self)
                .map_err(serde::de::Error::custom)
        }
    }
}
