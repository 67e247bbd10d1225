//! Liveness latency under each heavy load (figures for BENCHMARKS.md):
//! heavy by-queries from 4 clients, 16 clients paging the change feed's
//! full set, 4 clients fetching the status page. A measurement, run on
//! demand: `cargo nextest run --locked --run-ignored only -E 'test(/fair::liveness/)' --no-capture`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestApp, big_catalog};

const PROBES: usize = 200;

/// Builds one request of a load against the daemon at the given base URL.
type Request = fn(&reqwest::Client, &str) -> reqwest::RequestBuilder;

fn heavy_query() -> Value {
    let terms: Vec<Value> = (0..999)
        .map(|i| json!({"metadata.name": {"$hasPrefix": format!("no-such-prefix-{i:04}")}}))
        .collect();
    json!({"query": {"$any": terms}, "limit": 10})
}

/// p50 and p99 of [`PROBES`] liveness probes, 20 ms apart.
async fn probe(app: &TestApp) -> (Duration, Duration) {
    let samples = app
        .liveness_samples(PROBES, Duration::from_millis(20))
        .await;
    (samples[PROBES / 2], samples[PROBES * 99 / 100])
}

/// `clients` loops sending what `request` builds until stopped, each
/// from its own loopback address.
fn load(
    app: &TestApp,
    clients: u8,
    per_client: usize,
    request: Request,
) -> (
    tokio_util::sync::CancellationToken,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::new();
    for n in 0..clients {
        let http = reqwest::Client::builder()
            .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 1, n + 2)))
            .build()
            .unwrap();
        for _ in 0..per_client {
            let (http, base, stop) = (http.clone(), app.address.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.is_cancelled() {
                    tokio::select! {
                        response = request(&http, &base).send() => {
                            if let Ok(response) = response {
                                let _ = response.bytes().await;
                            }
                        }
                        () = stop.cancelled() => {}
                    }
                }
            }));
        }
    }
    (stop, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for BENCHMARKS.md, not a regression test"]
async fn liveness_under_each_load() {
    let (_fake, app) = big_catalog(3000).await;
    let (p50, p99) = probe(&app).await;
    println!("FIGURE idle: liveness p50 {p50:?} p99 {p99:?}");
    let loads: [(&str, u8, usize, Request); 3] = [
        (
            "4 clients x 4 heavy by-queries (999 $hasPrefix)",
            4,
            4,
            |http, base| {
                http.post(format!("{base}/api/catalog/entities/by-query"))
                    .json(&heavy_query())
            },
        ),
        (
            "16 clients paging GET /changes?limit=10000",
            16,
            1,
            |http, base| http.get(format!("{base}/api/catalog/changes?limit=10000")),
        ),
        ("4 clients x 4 GET / (status page)", 4, 4, |http, base| {
            http.get(format!("{base}/"))
        }),
    ];
    for (name, clients, per_client, request) in loads {
        let (stop, tasks) = load(&app, clients, per_client, request);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (p50, p99) = probe(&app).await;
        stop.cancel();
        for task in tasks {
            let _ = task.await;
        }
        println!("FIGURE {name}: liveness p50 {p50:?} p99 {p99:?}");
        assert!(p99 < Duration::from_secs(1), "{name}: p99 {p99:?}");
    }
    app.stop().await;
}
