//! The query pool's budget and fairness: a pathological by-query is
//! stopped at its budget with a 503 naming it; clients hammering such
//! queries neither delay another client's query by their backlog nor
//! queue without bound.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{TestApp, assert_backstage_error, big_catalog};

/// The query: 999 `$hasPrefix` terms, none matching, so each
/// is compared against every entity (~43 KB).
fn heavy_query() -> Value {
    let terms: Vec<Value> = (0..999)
        .map(|i| json!({"metadata.name": {"$hasPrefix": format!("no-such-prefix-{i:04}")}}))
        .collect();
    json!({"query": {"$any": terms}, "limit": 10})
}

/// A client whose requests come from `127.0.0.{n}`: the pool tells
/// clients apart by address.
fn client(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn by_query(app: &TestApp) -> String {
    format!("{}/api/catalog/entities/by-query", app.address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_its_budget_is_stopped_with_a_503_naming_it() {
    let (_fake, app) = big_catalog(3000).await;
    let started = Instant::now();
    let response = client(2)
        .post(by_query(&app))
        .json(&heavy_query())
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 503, "{body:#}");
    assert_backstage_error(&body, 503, "ServiceUnavailableError");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("evaluation budget of 2000 ms"),
        "{message}"
    );
    // The 2 s budget, plus the check interval and a shared machine's hiccups.
    assert!(took < Duration::from_secs(6), "stopped after {took:?}");
    // A sane query still answers.
    let light = client(3)
        .post(by_query(&app))
        .json(&json!({"query": {"kind": "component"}, "limit": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(light.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_clients_do_not_delay_another_clients_query_by_their_backlog() {
    let (_fake, app) = big_catalog(3000).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let mut load = Vec::new();
    // 4 clients, 4 heavy queries each at all times.
    for n in 2..6 {
        let http = client(n);
        for _ in 0..4 {
            let (http, url, stop) = (http.clone(), by_query(&app), stop.clone());
            load.push(tokio::spawn(async move {
                let mut answered = 0;
                while !stop.is_cancelled() {
                    let sent = http.post(&url).json(&heavy_query()).send();
                    tokio::select! {
                        response = sent => {
                            if let Ok(response) = response {
                                assert!(
                                    [200, 503].contains(&response.status().as_u16()),
                                    "{}",
                                    response.status()
                                );
                                answered += 1;
                            }
                        }
                        () = stop.cancelled() => {}
                    }
                }
                answered
            }));
        }
    }
    // Let the backlog build: 16 heavy queries queued or running.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let light = client(9);
    let mut slowest = Duration::ZERO;
    for _ in 0..3 {
        let started = Instant::now();
        let response = light
            .post(by_query(&app))
            .json(&json!({"query": {"kind": "component"}, "limit": 5}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["items"].as_array().unwrap().len(), 5);
        slowest = slowest.max(started.elapsed());
    }
    // At most the heavy query in progress (2 s of CPU, held at most its
    // 3 s wall-clock backstop) before ours, plus our own evaluation on a
    // loaded machine; a first-come queue makes it wait for the whole
    // backlog (16 heavy queries, minutes without a budget, 32 s with one).
    assert!(
        slowest < Duration::from_secs(10),
        "a light query waited {slowest:?} behind 4 heavy clients"
    );

    // One client cannot queue without bound: past its share, 429.
    let greedy = client(10);
    let mut sent = Vec::new();
    for _ in 0..80 {
        let (http, url) = (greedy.clone(), by_query(&app));
        sent.push(tokio::spawn(async move {
            http.post(&url)
                .json(&heavy_query())
                .send()
                .await
                .map(|r| r.status().as_u16())
                .ok()
        }));
    }
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(index) = sent.iter().position(tokio::task::JoinHandle::is_finished) {
                let task = sent.swap_remove(index);
                if task.await.unwrap() == Some(429) {
                    return;
                }
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    })
    .await;
    for task in &sent {
        task.abort();
    }
    assert!(
        refused.is_ok(),
        "80 queries at once from one client: none refused"
    );

    stop.cancel();
    let mut answered = 0;
    for task in load {
        answered += task.await.unwrap();
    }
    assert!(answered > 0, "the heavy load ran");
    app.stop().await;
}
