//! A co-tenant on the daemon's Bitbucket token: like a CI job, 8 requests
//! back to back every 3 s until stopped, counting the 429s it meets
//! (`benches/support` includes this file by path).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct CoTenant {
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    limited: AtomicU64,
    stop: AtomicBool,
}

/// What the co-tenant got: requests answered, and how many of them 429.
pub struct Got {
    pub sent: u64,
    pub limited: u64,
}

impl Got {
    /// The share of its requests that were refused, 0 to 1.
    pub fn limited_share(&self) -> f64 {
        self.limited as f64 / self.sent.max(1) as f64
    }
}

impl CoTenant {
    /// Starts sending to `url` (a cheap GET on the same token).
    pub fn start(url: String) -> Self {
        let counts = Arc::new(Counts::default());
        let shared = Arc::clone(&counts);
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !shared.stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                for _ in 0..8 {
                    let Ok(response) = http.get(&url).send().await else {
                        continue;
                    };
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                    if response.status() == 429 {
                        shared.limited.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep_until((started + Duration::from_secs(3)).into()).await;
            }
        });
        Self { counts, task }
    }

    /// Stops after the burst under way; what it got.
    pub async fn stop(self) -> Got {
        self.counts.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        Got {
            sent: self.counts.sent.load(Ordering::Relaxed),
            limited: self.counts.limited.load(Ordering::Relaxed),
        }
    }
}
