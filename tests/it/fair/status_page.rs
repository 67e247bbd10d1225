//! The status page built once per change, not per request.

use std::time::{Duration, Instant};

use crate::support::{FakeServer, TestApp, server_config, with_write_token};

/// `catalog_status_page_builds_total` as `/metrics` reports it.
async fn builds(app: &TestApp) -> u64 {
    let metrics = app.get("/metrics").await.text().await.unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("catalog_status_page_builds_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

async fn page(app: &TestApp) -> String {
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_is_built_once_per_change_and_shows_the_change() {
    let fake = FakeServer::start().await;
    fake.mount_components("PLAT", &["svc"]).await;
    let app = TestApp::spawn(&with_write_token(&server_config(&fake, "", ""))).await;
    app.wait_for_run("main", |s| s["inProgress"] == false).await;
    let first = page(&app).await;
    assert!(
        first.contains("<strong id=\"total-entities\">1</strong>"),
        "{first}"
    );
    let before = builds(&app).await;
    assert!(before >= 1, "the first request builds the page");

    // 40 requests, 8 at a time, with nothing changing: no new build.
    for _ in 0..5 {
        let pages = futures::future::join_all((0..8).map(|_| page(&app))).await;
        assert!(pages.iter().all(|p| p.contains("id=\"total-entities\">1<")));
    }
    let unchanged = builds(&app).await;
    assert_eq!(
        unchanged, before,
        "requests without a change rebuilt the page"
    );

    // A change: a second repository, read by a refresh.
    fake.server.reset().await;
    FakeServer::builder()
        .component("PLAT", "svc")
        .component("PLAT", "api")
        .mount(&fake)
        .await;
    app.refresh("main", "").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let html = page(&app).await;
        if html.contains("<strong id=\"total-entities\">2</strong>") && html.contains(" · refresh")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed the change: {html}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(builds(&app).await > unchanged);
}
