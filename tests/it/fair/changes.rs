//! Clients paging the change feed's full set do not stall the health
//! checks: large pages are built off the async workers.

use std::time::Duration;

use crate::support::big_catalog;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_the_full_change_feed_keeps_liveness_fast() {
    let (_fake, app) = big_catalog(3000).await;
    let url = format!("{}/api/catalog/changes?limit=10000", app.address);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut load = Vec::new();
    for _ in 0..16 {
        let (http, url, stop) = (app.http.clone(), url.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut answered = 0;
            while !stop.is_cancelled() {
                let response = http.get(&url).send().await.unwrap();
                assert_eq!(response.status(), 200);
                let body = response.bytes().await.unwrap();
                assert!(body.len() > 100_000, "a full page of 3,000 entities");
                answered += 1;
            }
            answered
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let samples = app.liveness_samples(30, Duration::from_millis(50)).await;
    stop.cancel();
    let mut answered = 0;
    for task in load {
        answered += task.await.unwrap();
    }
    assert!(answered > 16, "the paging load ran ({answered} pages)");
    // Under 100 ms, allowing for a scheduling hiccup of a shared CI machine.
    let (p90, slowest) = (samples[26], samples[29]);
    assert!(
        p90 < Duration::from_millis(100) && slowest < Duration::from_millis(500),
        "liveness while 16 clients page the change feed: p90 {p90:?}, slowest {slowest:?}"
    );
    app.stop().await;
}
