//! An integration's HTTP settings (ours): `rateLimit`,
//! `maxConcurrentRequests`, `connectTimeout`, `requestTimeout`, `maxRetries`.

use std::time::Duration;

use serde_json::Value;

use super::{ConfigError, Ctx};
use crate::integrations::{HttpSettings, RateLimit};

impl Ctx<'_> {
    /// `rateLimit`, `maxConcurrentRequests`, `connectTimeout`,
    /// `requestTimeout`, `maxRetries` of one integration.
    pub(super) fn http_settings(
        &self,
        key: &str,
        raw: raw::Http,
    ) -> Result<HttpSettings, ConfigError> {
        let defaults = HttpSettings::default();
        let number = |name: &str, value: Option<Value>, min: f64, max: f64| {
            value
                .map(|v| self.number(&format!("{key}.{name}"), &v, min, max))
                .transpose()
        };
        let duration = |name: &str, value: Option<Value>, default: Duration| match value {
            None => Ok(default),
            Some(v) => self.positive_duration(&format!("{key}.{name}"), &v, 30),
        };
        Ok(HttpSettings {
            rate_limit: raw
                .rate_limit
                .map(|rate| self.rate_limit(key, rate))
                .transpose()?,
            max_concurrent_requests: number(
                "maxConcurrentRequests",
                raw.max_concurrent_requests,
                1.0,
                256.0,
            )?
            .map_or(defaults.max_concurrent_requests, |n| n as usize),
            connect_timeout: duration(
                "connectTimeout",
                raw.connect_timeout,
                defaults.connect_timeout,
            )?,
            request_timeout: duration(
                "requestTimeout",
                raw.request_timeout,
                defaults.request_timeout,
            )?,
            max_retries: number("maxRetries", raw.max_retries, 0.0, 20.0)?
                .map_or(defaults.max_retries, |n| n as u32),
        })
    }

    /// `rateLimit: {requestsPerSecond, burst}`; the burst defaults to one
    /// second's worth.
    fn rate_limit(&self, key: &str, rate: raw::RateLimit) -> Result<RateLimit, ConfigError> {
        let per_second = self.number(
            &format!("{key}.rateLimit.requestsPerSecond"),
            &rate.requests_per_second,
            0.1,
            100_000.0,
        )?;
        let burst = match rate.burst {
            Some(burst) => {
                self.number(&format!("{key}.rateLimit.burst"), &burst, 1.0, 100_000.0)?
            }
            None => per_second.ceil(),
        };
        Ok(RateLimit {
            requests_per_second: per_second,
            burst: burst as u32,
        })
    }
}

pub(super) mod raw {
    use serde::Deserialize;
    use serde_json::Value;

    /// Pacing, concurrency, timeouts and retries (both integration kinds).
    pub(crate) struct Http {
        pub rate_limit: Option<RateLimit>,
        pub max_concurrent_requests: Option<Value>,
        pub connect_timeout: Option<Value>,
        pub request_timeout: Option<Value>,
        pub max_retries: Option<Value>,
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
        pub requests_per_second: Value,
        pub burst: Option<Value>,
    }
}
