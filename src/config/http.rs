//! An integration's HTTP settings (ours): `rateLimit`,
//! `maxConcurrentRequests`, `connectTimeout`, `requestTimeout`, `maxRetries`.
//! Each value is checked as it is deserialised (see [`super::loose`]).

use super::{ConfigError, Ctx};
use crate::integrations::{Budget, HttpSettings, RateLimit};

/// `rateLimit`, `maxConcurrentRequests`, `connectTimeout`,
/// `requestTimeout`, `maxRetries` of the integration at `key`.
pub(super) fn http_settings(
    ctx: &Ctx<'_>,
    key: &str,
    raw: raw::Http,
) -> Result<HttpSettings, ConfigError> {
    if let Some(rate) = &raw.rate_limit {
        check_rate_limit(ctx, &format!("{key}.rateLimit"), rate)?;
    }
    let defaults = HttpSettings::default();
    Ok(HttpSettings {
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
    })
}

/// A `rateLimit` that limits nothing is a mistake (often a misspelt key,
/// warned about on its own): without this it would pass silently.
fn check_rate_limit(ctx: &Ctx<'_>, key: &str, rate: &raw::RateLimit) -> Result<(), ConfigError> {
    let pace = rate.requests_per_second.is_some();
    if !pace && rate.share.is_none() && rate.per_hour.is_none() {
        let message = if rate.burst.is_some() {
            "burst is set without requestsPerSecond, so nothing is limited; set requestsPerSecond (a fixed ceiling), or remove rateLimit to let the pace follow Bitbucket's 429s"
        } else {
            "rateLimit sets none of requestsPerSecond (a fixed ceiling), share (a share of the rate learnt from Bitbucket) or perHour (an hourly allowance); set one, or remove rateLimit to let the pace follow Bitbucket's 429s"
        };
        return Err(ctx.error(key, message));
    }
    if rate.burst.is_some() && !pace {
        return Err(ctx.error(
            &format!("{key}.burst"),
            "burst applies only to requestsPerSecond, which is not set; set requestsPerSecond or remove burst",
        ));
    }
    Ok(())
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
