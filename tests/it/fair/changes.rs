//! Clients paging the change feed's full set do not stall the health
//! checks: large pages are built off the async workers.

use std::time::Duration;

use crate::support::big_catalog;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_the_full_change_feed_keeps_liveness_fast() {
    let (_fake, app) = big_catalog(3000).await;
    let url = format!("{}/api/catalog/changes?limit=10000", app.address);
    let (answered, samples) = app
        .liveness_under_load(16, move |http| {
            let url = url.clone();
            async move {
                let response = http.get(&url).send().await.unwrap();
                assert_eq!(response.status(), 200);
                let body = response.bytes().await.unwrap();
                assert!(body.len() > 100_000, "a full page of 3,000 entities");
                1
            }
        })
        .await;
    assert!(answered > 16, "the paging load ran ({answered} pages)");
    // Under 100 ms, allowing for a scheduling hiccup of a shared CI machine.
    let (p90, slowest) = (samples[26], samples[29]);
    assert!(
        p90 < Duration::from_millis(100) && slowest < Duration::from_millis(500),
        "liveness while 16 clients page the change feed: p90 {p90:?}, slowest {slowest:?}"
    );
    app.stop().await;
}
