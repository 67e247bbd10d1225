//! Black-box: schedules keep firing (an upstream tokio-cron-scheduler bug
//! reports repeating jobs that stop) and never overlap.

use std::time::{Duration, Instant};

use crate::support::{FakeServer, TestApp, server_config};
use wiremock::matchers::path;
use wiremock::{Mock, ResponseTemplate};

async fn one_service_fake() -> FakeServer {
    FakeServer::builder().component("PLAT", "svc").start().await
}

async fn wait_for_listings(fake: &FakeServer, at_least: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let runs = fake.requests_to("/rest/api/1.0/projects").await;
        if runs >= at_least || Instant::now() > deadline {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_interval_schedule_keeps_firing_over_many_ticks() {
    let fake = one_service_fake().await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        schedule:\n          frequency: { seconds: 1 }\n",
    ))
    .await;
    // The start-up run plus at least five ticks.
    let runs = wait_for_listings(&fake, 6, Duration::from_secs(15)).await;
    assert!(runs >= 6, "only {runs} runs");
    app.stop().await;
}

#[tokio::test]
async fn a_cron_schedule_keeps_firing_over_many_ticks() {
    let fake = one_service_fake().await;
    // Six fields: every second (the five-field form cannot tick fast enough for a test).
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        schedule:\n          frequency: { cron: '* * * * * *' }\n",
    ))
    .await;
    let runs = wait_for_listings(&fake, 6, Duration::from_secs(15)).await;
    assert!(runs >= 6, "only {runs} runs");
    app.stop().await;
}

#[tokio::test]
async fn a_slow_run_is_never_overlapped_by_the_next_tick() {
    let fake = FakeServer::start().await;
    Mock::given(path("/rest/api/1.0/projects"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"isLastPage": true, "values": []}))
                .set_delay(Duration::from_millis(2500)),
        )
        .mount(&fake.server)
        .await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        schedule:\n          frequency: { milliseconds: 500 }\n",
    ))
    .await;
    // In 3.5 s the 500 ms ticks would have started about 7 runs without the guard.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let runs = fake.requests_to("/rest/api/1.0/projects").await;
    assert!((1..=2).contains(&runs), "{runs} overlapping runs");
    app.stop().await;
}

#[tokio::test]
async fn initial_delay_postpones_the_first_run() {
    let fake = one_service_fake().await;
    let app = TestApp::spawn(&server_config(&fake, "", "        schedule:\n          frequency: { hours: 1 }\n          initialDelay: { seconds: 2 }\n")).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(fake.requests_to("/rest/api/1.0/projects").await, 0);
    let runs = wait_for_listings(&fake, 1, Duration::from_secs(10)).await;
    assert_eq!(runs, 1);
    app.stop().await;
}
