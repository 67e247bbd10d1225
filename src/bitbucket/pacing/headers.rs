//! What a Bitbucket answer says about its rate limit: `X-RateLimit-*`
//! headers (Data Center's bucket, Cloud's hourly allowance) and `Retry-After`.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// What `X-RateLimit-*` headers say, when a server sends them.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct RateHeaders {
    /// Data Center: `X-RateLimit-FillRate` tokens per `-Interval-Seconds`.
    pub(super) refill: Option<f64>,
    /// Data Center: `X-RateLimit-Limit`, the bucket's size.
    pub(super) burst: Option<f64>,
    /// Cloud: `X-RateLimit-NearLimit` with `X-RateLimit-Limit` per hour.
    pub(super) near_limit: Option<(bool, Option<f64>)>,
}

impl RateHeaders {
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let number = |name: &str| {
            headers
                .get(name)?
                .to_str()
                .ok()?
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
        };
        let limit = number("x-ratelimit-limit");
        let near_limit = headers
            .get("x-ratelimit-nearlimit")
            .and_then(|v| v.to_str().ok())
            .map(|v| (v.trim().eq_ignore_ascii_case("true"), limit));
        let fill = number("x-ratelimit-fillrate");
        match fill {
            // Data Center's bucket: `Limit` tokens, `FillRate` per interval.
            Some(fill) => Self {
                refill: Some(fill / number("x-ratelimit-interval-seconds").unwrap_or(1.0)),
                burst: limit,
                near_limit,
            },
            None => Self {
                refill: None,
                burst: None,
                near_limit,
            },
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn reads_data_center_and_cloud_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("X-RateLimit-Limit", HeaderValue::from_static("60"));
        headers.insert("X-RateLimit-FillRate", HeaderValue::from_static("10"));
        headers.insert(
            "X-RateLimit-Interval-Seconds",
            HeaderValue::from_static("2"),
        );
        headers.insert("X-RateLimit-Remaining", HeaderValue::from_static("12"));
        let parsed = RateHeaders::parse(&headers);
        assert_eq!(parsed.refill, Some(5.0));
        assert_eq!(parsed.burst, Some(60.0));
        assert_eq!(parsed.near_limit, None);

        let mut headers = HeaderMap::new();
        headers.insert("X-RateLimit-Limit", HeaderValue::from_static("1000"));
        headers.insert("X-RateLimit-NearLimit", HeaderValue::from_static("true"));
        headers.insert(
            "X-RateLimit-Resource",
            HeaderValue::from_static("api-repositories"),
        );
        let parsed = RateHeaders::parse(&headers);
        assert_eq!(parsed.refill, None);
        assert_eq!(parsed.near_limit, Some((true, Some(1000.0))));
        assert_eq!(
            RateHeaders::parse(&HeaderMap::new()),
            RateHeaders::default()
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("Retry-After", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        let at = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        headers.insert("Retry-After", HeaderValue::from_str(&at).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
        headers.insert(
            "Retry-After",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert("Retry-After", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
