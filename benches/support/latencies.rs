//! Latencies a bench collected, reported as percentiles.

use std::time::Duration;

pub struct Latencies(Vec<Duration>);

impl Latencies {
    /// At least one latency, so every percentile exists.
    pub fn new(mut all: Vec<Duration>) -> Self {
        assert!(!all.is_empty(), "no latency measured");
        all.sort();
        Self(all)
    }

    /// The `q` quantile (0 < q ≤ 1), nearest rank.
    pub fn at(&self, q: f64) -> Duration {
        let rank = ((self.0.len() as f64 * q).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1]
    }

    /// `p50 …, p90 …, p99 …, max …` in milliseconds.
    pub fn summary(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(self.at(0.5)),
            ms(self.at(0.9)),
            ms(self.at(0.99)),
            ms(self.at(1.0))
        )
    }
}
