//! Black-box: no entity is lost to a 5xx, a reset, a truncated or slow body,
//! or a 429 storm; unreadable files keep their entities; partial listings
//! fail the run. Bitbucket is the in-repo simulator (or wiremock where a
//! precise sequence of answers is needed).

use std::time::Duration;

use crate::support::{FakeServer, TestApp, component, server_config};
use bitbucket_sim::{Behaviour, DatasetConfig, Faults, RateLimit, SimConfig, Simulator};
use serde_json::{Value, json};
use wiremock::matchers::{path, query_param};
use wiremock::{Mock, ResponseTemplate};

async fn simulator(behaviour: Behaviour) -> Simulator {
    Simulator::start(SimConfig {
        dataset: DatasetConfig {
            projects: 8,
            repos_per_project: 20,
            ..Default::default()
        },
        behaviour,
        ..Default::default()
    })
    .await
    .expect("simulator starts")
}

fn sim_config(sim: &Simulator, integration_extra: &str) -> String {
    format!(
        "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\n{integration_extra}\ncatalog:\n  providers:\n    bitbucketServer:\n      sim:\n        host: {host}\n        schedule:\n          frequency: {{ trigger: manual }}\n          timeout: {{ minutes: 5 }}\n",
        host = sim.host(),
        api = sim.server_api_base(),
    )
}

/// Runs the (manual) provider once and returns that run.
async fn finished_run(app: &TestApp, provider: &str) -> Value {
    app.refresh(provider, "").await["lastRun"].clone()
}

#[tokio::test]
async fn a_clean_run_makes_exactly_the_minimum_requests() {
    let sim = simulator(Behaviour::default()).await;
    let app = TestApp::spawn(&sim_config(&sim, "")).await;
    let run = finished_run(&app, "sim").await;
    assert_eq!(run["outcome"]["status"], "succeeded", "{run:#}");
    assert_eq!(
        app.entity_refs().await,
        sim.dataset().expected_server_tree_refs(false)
    );
    let stats = sim.stats();
    // Every listing page, one read per repository, and one per file a
    // Location entity points at (each read once).
    let location_targets = sim.dataset().server_location_target_reads();
    assert!(location_targets > 0, "the data set has no Location trees");
    let minimum =
        (sim.dataset().server_minimum_requests(1000, true, false) + location_targets) as u64;
    assert_eq!(stats.requests, minimum, "{stats:#?}");
    assert_eq!(stats.repeated_requests(), 0);
    assert_eq!(run["requests"], minimum);
    assert_eq!(run["retries"], 0);
    app.stop().await;
}

#[tokio::test]
async fn no_entity_is_lost_to_5xx_resets_or_truncated_bodies() {
    let sim = simulator(Behaviour {
        faults: Faults {
            server_error: 0.05,
            reset: 0.05,
            truncate: 0.03,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let app = TestApp::spawn(&sim_config(&sim, "      maxRetries: 8\n")).await;
    let run = finished_run(&app, "sim").await;
    assert_eq!(run["outcome"]["status"], "succeeded", "{run:#}");
    assert_eq!(
        app.entity_refs().await,
        sim.dataset().expected_server_tree_refs(false)
    );
    let faults = sim.stats().faults;
    assert!(run["retries"].as_u64().unwrap() > 0, "{run:#}");
    assert!(
        faults.server_error > 0 && faults.reset > 0 && faults.truncated > 0,
        "{faults:?}"
    );
    assert_eq!(run["stale"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn a_429_storm_costs_time_not_entities() {
    let sim = simulator(Behaviour {
        rate_limit: Some(RateLimit {
            burst: 20,
            per_second: 100.0,
        }),
        ..Default::default()
    })
    .await;
    let app = TestApp::spawn(&sim_config(&sim, "")).await;
    let run = finished_run(&app, "sim").await;
    assert_eq!(run["outcome"]["status"], "succeeded", "{run:#}");
    assert_eq!(
        app.entity_refs().await,
        sim.dataset().expected_server_tree_refs(false)
    );
    let limited = sim.stats().status("429");
    assert!(limited > 0, "the bucket never emptied");
    assert_eq!(run["rateLimited"], limited);
    app.stop().await;
}

#[tokio::test]
async fn slow_bodies_past_the_request_timeout_are_retried() {
    let sim = simulator(Behaviour {
        faults: Faults {
            slow: 0.05,
            slow_body: Duration::from_secs(3),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let app = TestApp::spawn(&sim_config(
        &sim,
        "      requestTimeout: { seconds: 1 }\n      maxRetries: 8\n",
    ))
    .await;
    let run = finished_run(&app, "sim").await;
    assert_eq!(run["outcome"]["status"], "succeeded", "{run:#}");
    assert_eq!(
        app.entity_refs().await,
        sim.dataset().expected_server_tree_refs(false)
    );
    assert!(run["retries"].as_u64().unwrap() > 0, "{run:#}");
    app.stop().await;
}

/// A file that fails after retries keeps its entities (stale); only a 404
/// removes them.
#[tokio::test]
async fn an_unreadable_file_keeps_its_previous_entities_until_it_is_gone() {
    let fake = FakeServer::builder()
        .component("PLAT", "a")
        .component("PLAT", "b")
        .start()
        .await;
    let config = server_config(
        &fake,
        "      maxRetries: 1\n",
        "        schedule:\n          frequency: { trigger: manual }\n",
    );
    let app = TestApp::spawn(&config).await;
    finished_run(&app, "main").await;
    assert_eq!(app.entity_names().await, vec!["a", "b"]);

    let refresh = || async { app.refresh("main", "").await["lastRun"].clone() };

    // b's file now fails every time: b stays, marked stale.
    fake.server.reset().await;
    FakeServer::builder()
        .component("PLAT", "a")
        .repo("PLAT", "b")
        .mount(&fake)
        .await;
    Mock::given(path(
        "/rest/api/1.0/projects/PLAT/repos/b/raw/catalog-info.yaml",
    ))
    .respond_with(ResponseTemplate::new(502))
    .mount(&fake.server)
    .await;
    let run = refresh().await;
    assert_eq!(run["outcome"]["status"], "succeeded", "{run:#}");
    assert_eq!(app.entity_names().await, vec!["a", "b"]);
    let stale = run["stale"].as_array().unwrap();
    assert_eq!(stale.len(), 1);
    assert!(
        stale[0]
            .as_str()
            .unwrap()
            .ends_with("/repos/b/browse/catalog-info.yaml")
    );
    assert!(
        run["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("keeping its 1 previous entities"),
        "{run:#}"
    );

    // Gone for real (404): b goes.
    fake.server.reset().await;
    FakeServer::builder()
        .component("PLAT", "a")
        .repo("PLAT", "b")
        .mount(&fake)
        .await;
    let run = refresh().await;
    assert_eq!(run["stale"], json!([]));
    assert_eq!(app.entity_names().await, vec!["a"]);
    app.stop().await;
}

#[tokio::test]
async fn a_listing_that_fails_part_way_fails_the_run_and_keeps_everything() {
    let fake = FakeServer::start().await;
    fake.mount_projects(&["PLAT"], 25).await;
    fake.mount_repos("PLAT", &[("a", false), ("b", false)], 1)
        .await;
    fake.mount_file("PLAT", "a", "catalog-info.yaml", &component("a"))
        .await;
    fake.mount_file("PLAT", "b", "catalog-info.yaml", &component("b"))
        .await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "      maxRetries: 1\n",
        "        schedule:\n          frequency: { trigger: manual }\n",
    ))
    .await;
    finished_run(&app, "main").await;
    assert_eq!(app.entity_names().await, vec!["a", "b"]);

    // The second page of repositories now fails: never read that as "b was deleted".
    fake.server.reset().await;
    fake.mount_projects(&["PLAT"], 25).await;
    Mock::given(path("/rest/api/1.0/projects/PLAT/repos"))
        .and(query_param("start", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"isLastPage": false, "nextPageStart": 1, "values": [{"slug": "a", "project": {"key": "PLAT"}}]})))
        .mount(&fake.server)
        .await;
    Mock::given(path("/rest/api/1.0/projects/PLAT/repos"))
        .and(query_param("start", "1"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&fake.server)
        .await;
    let status = app.refresh("main", "").await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "failed",
        "{status:#}"
    );
    assert!(
        status["lastRun"]["outcome"]["error"]
            .as_str()
            .unwrap()
            .contains("listing repositories of project PLAT failed")
    );
    assert_eq!(app.entity_names().await, vec!["a", "b"]);
    app.stop().await;
}
