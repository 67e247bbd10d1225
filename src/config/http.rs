//! An integration's HTTP settings (ours): `rateLimit`,
//! `maxConcurrentRequests`, `connectTimeout`, `requestTimeout`, `maxRetries`.

use serde_json::Value;

use super::loose::{loose_text, shown};
use super::{ConfigError, Ctx, schedule};
use crate::integrations::HttpSettings;

impl Ctx<'_> {
    /// `rateLimit`, `maxConcurrentRequests`, `connectTimeout`,
    /// `requestTimeout`, `maxRetries` of one integration.
    pub(super) fn http_settings(
        &self,
        key: &str,
        raw: raw::Http,
    ) -> Result<HttpSettings, ConfigError> {
        let defaults = HttpSettings::default();
        let number = |name: &str,
                      value: Option<Value>,
                      min: f64,
                      max: f64|
         -> Result<Option<f64>, ConfigError> {
            value
                .map(|v| {
                    loose_text(&v)
                        .and_then(|t| t.parse::<f64>().ok())
                        .filter(|n| n.is_finite() && (min..=max).contains(n))
                        .ok_or_else(|| {
                            self.error(
                                &format!("{key}.{name}"),
                                format!("{} is not a number from {min} to {max}", shown(&v)),
                            )
                        })
                })
                .transpose()
        };
        let duration = |name: &str,
                        value: Option<Value>,
                        default: std::time::Duration|
         -> Result<std::time::Duration, ConfigError> {
            match value {
                None => Ok(default),
                Some(v) => schedule::parse_duration(&v)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        self.error(
                            &format!("{key}.{name}"),
                            format!(
                                "{} is not a duration; write e.g. {{seconds: 30}} or 'PT30S'",
                                shown(&v)
                            ),
                        )
                    }),
            }
        };
        let rate_limit = match raw.rate_limit {
            None => None,
            Some(rate) => {
                let per_second = number(
                    "rateLimit.requestsPerSecond",
                    Some(rate.requests_per_second),
                    0.1,
                    100_000.0,
                )?
                .unwrap_or(1.0);
                let burst = number("rateLimit.burst", rate.burst, 1.0, 100_000.0)?
                    .unwrap_or(per_second.ceil());
                Some(crate::integrations::RateLimit {
                    requests_per_second: per_second,
                    burst: burst as u32,
                })
            }
        };
        Ok(HttpSettings {
            rate_limit,
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
}

pub(super) mod raw {
    use serde::Deserialize;
    use serde_json::Value;

    /// Pacing, concurrency, timeouts and retries (both integration kinds).
    pub struct Http {
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
    pub struct RateLimit {
        pub requests_per_second: Value,
        pub burst: Option<Value>,
    }
}
