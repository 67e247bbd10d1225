//! Black-box: the repository is the unit of work. A rate-limited Bitbucket
//! whose full run takes longer than the timeout still fills the catalog,
//! run after run, serving entities within seconds; Cloud files at an
//! unchanged commit are not read again; a contested entity ref stays with
//! the repository that was served first, across restarts.

use std::time::{Duration, Instant};

use crate::support::{FakeCloud, FakeServer, Hit, TestApp, cloud_config, server_config};
use bitbucket_sim::{Behaviour, DatasetConfig, RateLimit, SimConfig, Simulator};
use serde_json::Value;

#[tokio::test]
async fn a_rate_limited_data_center_fills_progressively_across_runs_that_time_out() {
    let sim = Simulator::start(SimConfig {
        dataset: DatasetConfig {
            projects: 3,
            repos_per_project: 20,
            ..Default::default()
        },
        behaviour: Behaviour {
            // About 90 requests at 10 per second: well over the 2 s timeout.
            rate_limit: Some(RateLimit {
                burst: 5,
                per_second: 10.0,
            }),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("simulator starts");
    let expected = sim.dataset().expected_server_tree_refs(false);
    let config = format!(
        "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\ncatalog:\n  providers:\n    bitbucketServer:\n      sim:\n        host: {host}\n        schedule:\n          frequency: {{ seconds: 1 }}\n          timeout: {{ seconds: 2 }}\n",
        host = sim.host(),
        api = sim.server_api_base(),
    );
    let started = Instant::now();
    let app = TestApp::spawn(&config).await;

    let mut served = 0;
    let mut first_served = None;
    let mut saw_progress = false;
    let mut incomplete: Option<Value> = None;
    let deadline = started + Duration::from_secs(40);
    while app.entity_refs().await != expected {
        if Instant::now() >= deadline {
            let status = app.get_json("/api/catalog/providers/sim").await;
            let missing: Vec<_> = expected
                .difference(&app.entity_refs().await)
                .cloned()
                .collect();
            panic!("the catalog never completed; missing {missing:?}; {status:#}");
        }
        let now = app.entity_refs().await.len();
        assert!(
            now >= served,
            "entities went from {served} to {now}: a run removed some"
        );
        served = now;
        if served > 0 && first_served.is_none() {
            first_served = Some(started.elapsed());
        }
        let status = app.get_json("/api/catalog/providers/sim").await;
        if status["inProgress"] == true && status["progress"]["read"].as_u64() > Some(0) {
            saw_progress = true;
            assert!(
                status["progress"]["listed"].as_u64() > Some(0),
                "{status:#}"
            );
            assert!(status["progress"]["remaining"].is_u64(), "{status:#}");
        }
        if status["lastRun"]["outcome"]["status"] == "incomplete" {
            incomplete = Some(status["lastRun"].clone());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_served = first_served.expect("entities were served before the catalog completed");
    assert!(
        first_served < Duration::from_secs(4),
        "first entities after {first_served:?}"
    );
    assert!(saw_progress, "the status never showed a run's progress");
    let incomplete = incomplete.expect("a run reached its timeout");
    assert!(incomplete["requests"].as_u64() > Some(0), "{incomplete:#}");
    assert!(
        incomplete["outcome"]["read"].as_u64() > Some(0),
        "{incomplete:#}"
    );
    assert!(
        incomplete["outcome"]["message"]
            .as_str()
            .unwrap()
            .contains("the next run starts with"),
        "{incomplete:#}"
    );
    app.stop().await;
}

fn hit<'a>(slug: &'a str, commit: &'a str) -> Hit<'a> {
    Hit {
        project: "PLAT",
        slug,
        branch: "main",
        commit,
        path: "catalog-info.yaml",
        path_matches: true,
    }
}

fn described(name: &str, description: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n  description: {description}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n"
    )
}

async fn description(app: &TestApp, name: &str) -> Value {
    app.get_json(&format!(
        "/api/catalog/entities/by-name/component/default/{name}"
    ))
    .await["metadata"]["description"]
        .clone()
}

#[tokio::test]
async fn cloud_files_at_an_unchanged_commit_are_not_read_again() {
    let ws = "acme";
    let fake = FakeCloud::start().await;
    fake.mount_projects(ws, &["PLAT"], 10).await;
    fake.mount_search(
        ws,
        "PLAT",
        &[
            hit("a", "c1"),
            hit("b", "c1"),
            hit("c", "c1"),
            hit("broken", "c1"),
        ],
        10,
        0,
    )
    .await;
    for slug in ["a", "b", "c"] {
        fake.mount_src(
            ws,
            slug,
            "c1",
            "catalog-info.yaml",
            &described(slug, "first"),
        )
        .await;
    }
    fake.mount_src(ws, "broken", "c1", "catalog-info.yaml", "kind: [")
        .await;
    let app = TestApp::spawn(&cloud_config(
        &fake,
        ws,
        "",
        "        schedule:\n          frequency: { trigger: manual }\n",
    ))
    .await;
    app.refresh("cloud", "").await;
    assert_eq!(fake.requests_to("/catalog-info.yaml").await, 4);

    // Nothing changed: no file is read, and what the reads found stays known.
    let run = app.refresh("cloud", "").await["lastRun"].clone();
    assert_eq!(run["outcome"]["status"], "succeeded", "{run:#}");
    assert_eq!(fake.requests_to("/catalog-info.yaml").await, 4);
    assert_eq!(run["reposUnchanged"], 4, "{run:#}");
    assert_eq!(run["reposRead"], 0, "{run:#}");
    assert_eq!(app.entity_names().await, ["a", "b", "c"]);
    let errors = app.get_json("/api/catalog/providers/cloud/errors").await;
    let problems = errors["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{errors:#}");
    assert_eq!(problems[0]["kind"], "parse");
    assert!(
        problems[0]["url"].as_str().unwrap().contains("/broken/"),
        "{errors:#}"
    );

    // One repository moved to a new commit: exactly one read.
    fake.server.reset().await;
    fake.mount_projects(ws, &["PLAT"], 10).await;
    fake.mount_search(
        ws,
        "PLAT",
        &[
            hit("a", "c1"),
            hit("b", "c2"),
            hit("c", "c1"),
            hit("broken", "c1"),
        ],
        10,
        0,
    )
    .await;
    fake.mount_src(
        ws,
        "b",
        "c2",
        "catalog-info.yaml",
        &described("b", "second"),
    )
    .await;
    let run = app.refresh("cloud", "").await["lastRun"].clone();
    assert_eq!(run["outcome"]["status"], "succeeded", "{run:#}");
    assert_eq!(fake.requests_to("/catalog-info.yaml").await, 1);
    assert_eq!(run["reposRead"], 1, "{run:#}");
    assert_eq!(description(&app, "b").await, "second");
    assert_eq!(description(&app, "a").await, "first");
    app.stop().await;
}

#[tokio::test]
async fn a_contested_ref_stays_with_the_repository_served_first_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("catalog.sqlite").display().to_string();
    let fake = FakeServer::builder()
        .catalog("PAY", "payments", &described("payments", "the real one"))
        .start()
        .await;
    let config = server_config(
        &fake,
        "",
        "        schedule:\n          frequency: { trigger: manual }\n",
    );
    let app = TestApp::spawn_with_database(&config, &database).await;
    app.refresh("main", "").await;
    let original = app
        .get_json("/api/catalog/entities/by-name/component/default/payments")
        .await;

    // A new repository in a project that sorts first claims the same ref.
    fake.server.reset().await;
    FakeServer::builder()
        .catalog("AAA", "payments", &described("payments", "an impostor"))
        .catalog("PAY", "payments", &described("payments", "the real one"))
        .mount(&fake)
        .await;
    let run = app.refresh("main", "").await["lastRun"].clone();
    let conflict = run["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "conflict")
        .unwrap_or_else(|| panic!("no conflict problem: {run:#}"))
        .clone();
    assert!(
        conflict["url"]
            .as_str()
            .unwrap()
            .ends_with("/projects/AAA/repos/payments/browse/catalog-info.yaml"),
        "{conflict:#}"
    );
    assert!(
        conflict["message"]
            .as_str()
            .unwrap()
            .contains("/projects/PAY/repos/payments/browse/catalog-info.yaml"),
        "the message names the owner: {conflict:#}"
    );
    let served = app
        .get_json("/api/catalog/entities/by-name/component/default/payments")
        .await;
    assert_eq!(served, original, "a refused takeover changes nothing");
    app.stop().await;

    // Ownership is kept: after a restart the newcomer is still refused.
    let app = TestApp::spawn_with_database(&config, &database).await;
    app.wait_for_run("main", |s| s["inProgress"] == false).await;
    let run = app.refresh("main", "").await["lastRun"].clone();
    assert!(
        run["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "conflict"),
        "{run:#}"
    );
    assert_eq!(description(&app, "payments").await, "the real one");
    let served = app
        .get_json("/api/catalog/entities/by-name/component/default/payments")
        .await;
    assert_eq!(served["metadata"]["uid"], original["metadata"]["uid"]);
    app.stop().await;
}
