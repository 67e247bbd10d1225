//! Black-box: the listing sweep (`listingSchedule`, Data Center) applies
//! what the listing alone shows between full runs — deleted, archived and
//! renamed repositories, new ones — for listing requests plus one read per
//! moved or new repository; a failed listing or one past the deletion
//! guard removes nothing.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bitbucket_catalogd::{Config, Environment, Frequency};
use serde_json::{Value, json};
use wiremock::matchers::{path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::support::{API, FakeServer, TestApp, component, server_config};

/// One repository of project PLAT: `(slug, Bitbucket id, archived)`; its
/// catalog file holds the component `svc-<id>` (so a rename keeps the name).
type Repo = (&'static str, u64, bool);

const FILE: &str = "catalog-info.yaml";

/// Serves `repos` (pages of `page_size`) and their files, after forgetting
/// everything served and every request seen before.
async fn serve(fake: &FakeServer, repos: &[Repo], page_size: usize) {
    fake.server.reset().await;
    fake.mount_projects(&["PLAT"], 25).await;
    fake.mount_paged("/projects/PLAT/repos", repo_values(fake, repos), page_size)
        .await;
    for (slug, id, _) in repos {
        fake.mount_file("PLAT", slug, FILE, &component(&format!("svc-{id}")))
            .await;
    }
}

fn repo_values(fake: &FakeServer, repos: &[Repo]) -> Vec<Value> {
    let base = fake.server.uri();
    repos
        .iter()
        .map(|(slug, id, archived)| {
            json!({
                "slug": slug, "id": id, "name": slug, "scmId": "git", "state": "AVAILABLE",
                "archived": archived, "public": false, "project": {"key": "PLAT"},
                "links": {"self": [{"href": format!("{base}/projects/PLAT/repos/{slug}/browse")}]},
            })
        })
        .collect()
}

/// A daily full run (the start-up one is the only one in a test) and a
/// listing sweep every second.
fn config(fake: &FakeServer, integration_extra: &str) -> String {
    server_config(
        fake,
        integration_extra,
        "        schedule:\n          frequency: { hours: 24 }\n        filters:\n          skipArchivedRepos: true\n        listingSchedule:\n          frequency: { seconds: 1 }\n",
    )
}

fn names(ids: &[u64]) -> BTreeSet<String> {
    ids.iter().map(|id| format!("svc-{id}")).collect()
}

async fn served(app: &TestApp) -> BTreeSet<String> {
    app.entity_names().await.into_iter().collect()
}

/// Waits until `app` serves exactly `expected`; panics after `within`.
async fn wait_for_names(app: &TestApp, expected: &BTreeSet<String>, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now = served(app).await;
        if &now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected {expected:?}, served {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The served entity named `name`.
async fn entity(app: &TestApp, name: &str) -> Value {
    app.get_json(&format!(
        "/api/catalog/entities/by-name/component/default/{name}"
    ))
    .await
}

/// `catalog_provider_listing_sweeps_total` of provider `main` with `outcome`.
async fn sweeps(app: &TestApp, outcome: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap_or_default();
    let series =
        format!("catalog_provider_listing_sweeps_total{{provider=\"main\",outcome=\"{outcome}\"}}");
    let alt =
        format!("catalog_provider_listing_sweeps_total{{outcome=\"{outcome}\",provider=\"main\"}}");
    text.lines()
        .find(|l| l.starts_with(&series) || l.starts_with(&alt))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0)
}

async fn wait_for_sweeps(app: &TestApp, outcome: &str, at_least: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n = sweeps(app, outcome).await;
        if n >= at_least || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn deleted_archived_renamed_and_new_repositories_within_one_interval_for_listing_requests() {
    let fake = FakeServer::start().await;
    let before: [Repo; 6] = [
        ("keep-a", 1, false),
        ("keep-b", 2, false),
        ("keep-c", 3, false),
        ("deleted", 4, false),
        ("archived", 5, false),
        ("old-name", 6, false),
    ];
    serve(&fake, &before, 25).await;
    let app = TestApp::spawn(&config(&fake, "")).await;
    wait_for_names(&app, &names(&[1, 2, 3, 4, 5, 6]), Duration::from_secs(20)).await;
    let moved = entity(&app, "svc-6").await;
    let uid = moved["metadata"]["uid"].clone();
    assert!(uid.is_string(), "{moved:#}");

    // Between full runs: one deleted, one archived, one renamed, one new.
    let after: [Repo; 6] = [
        ("keep-a", 1, false),
        ("keep-b", 2, false),
        ("keep-c", 3, false),
        ("archived", 5, true),
        ("new-name", 6, false),
        ("fresh", 7, false),
    ];
    serve(&fake, &after, 25).await;
    let changed = Instant::now();
    wait_for_names(&app, &names(&[1, 2, 3, 6, 7]), Duration::from_secs(10)).await;
    // Within one interval (1 s) plus the sweep and its reads.
    assert!(
        changed.elapsed() < Duration::from_secs(4),
        "took {:?}",
        changed.elapsed()
    );
    let renamed = entity(&app, "svc-6").await;
    assert_eq!(renamed["metadata"]["uid"], uid, "a rename keeps the uid");
    let location = renamed["metadata"]["annotations"]["backstage.io/managed-by-location"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(location.contains("/repos/new-name/"), "{location}");

    // A few more sweeps: still nothing read but the moved and the new file.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        fake.requests_to("/repos/new-name/raw/catalog-info.yaml")
            .await,
        1
    );
    assert_eq!(
        fake.requests_to("/repos/fresh/raw/catalog-info.yaml").await,
        1
    );
    assert_eq!(
        fake.requests_to(&format!("/raw/{FILE}")).await,
        2,
        "unchanged repositories are not read"
    );
    let listings = fake.requests_to("/projects/PLAT/repos").await;
    let projects = fake.requests_to(&format!("{API}/projects")).await;
    assert!(
        listings >= 3,
        "{listings} listings: the sweep keeps running"
    );
    assert_eq!(
        listings, projects,
        "one projects page and one repository page per sweep"
    );
    let all = fake
        .server
        .received_requests()
        .await
        .unwrap_or_default()
        .len();
    assert_eq!(
        all,
        listings + projects + 2,
        "nothing but listings and the two reads"
    );
    assert!(wait_for_sweeps(&app, "succeeded", 3.0).await >= 3.0);
    app.stop().await;
}

#[tokio::test]
async fn a_failing_listing_removes_nothing() {
    let fake = FakeServer::start().await;
    let repos: [Repo; 4] = [
        ("a", 1, false),
        ("b", 2, false),
        ("c", 3, false),
        ("d", 4, false),
    ];
    serve(&fake, &repos, 2).await;
    let app = TestApp::spawn(&config(&fake, "      maxRetries: 0\n")).await;
    wait_for_names(&app, &names(&[1, 2, 3, 4]), Duration::from_secs(20)).await;

    // Page 1 still answers; page 2 fails: the listing is partial.
    fake.server.reset().await;
    fake.mount_projects(&["PLAT"], 25).await;
    Mock::given(path(format!("{API}/projects/PLAT/repos")))
        .and(query_param("start", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "size": 2, "limit": 2, "start": 0, "isLastPage": false, "nextPageStart": 2,
            "values": repo_values(&fake, &repos[..2]),
        })))
        .mount(&fake.server)
        .await;
    Mock::given(path(format!("{API}/projects/PLAT/repos")))
        .and(query_param("start", "2"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&fake.server)
        .await;
    let failed = sweeps(&app, "failed").await;
    assert!(
        wait_for_sweeps(&app, "failed", failed + 2.0).await >= failed + 2.0,
        "the sweep keeps trying"
    );
    assert!(
        fake.requests_to("/projects/PLAT/repos").await >= 4,
        "page 2 was asked for"
    );
    assert_eq!(served(&app).await, names(&[1, 2, 3, 4]), "nothing removed");
    app.stop().await;
}

#[tokio::test]
async fn removals_past_the_deletion_guard_are_held() {
    let fake = FakeServer::start().await;
    let slugs = [
        "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12",
    ];
    let repos: Vec<Repo> = slugs
        .iter()
        .zip(1..)
        .map(|(slug, id)| (*slug, id, false))
        .collect();
    serve(&fake, &repos, 25).await;
    let app = TestApp::spawn(&config(&fake, "")).await;
    let all: Vec<u64> = (1..=12).collect();
    wait_for_names(&app, &names(&all), Duration::from_secs(20)).await;

    // 8 of 12 gone at once: more than the default 50 % threshold.
    serve(&fake, &repos[..4], 25).await;
    let held = sweeps(&app, "held").await;
    assert!(
        wait_for_sweeps(&app, "held", held + 2.0).await >= held + 2.0,
        "the sweep is held"
    );
    assert_eq!(served(&app).await, names(&all), "nothing removed");
    app.stop().await;
}

fn load(yaml: &str) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file: PathBuf = dir.path().join("app-config.yaml");
    std::fs::write(&file, yaml).expect("config written");
    let loaded = Config::load(
        &[file],
        &Environment::from_pairs(std::iter::empty::<(&str, &str)>()),
    )
    .expect("config loads");
    (dir, loaded.config)
}

#[tokio::test]
async fn on_every_5_minutes_with_webhooks_off_without_and_when_turned_off() {
    let fake = FakeServer::start().await;
    let listing = |integration: &str, provider: &str| {
        let (_dir, config) = load(&server_config(&fake, integration, provider));
        config
            .provider("main")
            .expect("provider main")
            .listing_schedule
            .clone()
    };
    let secret = "      webhookSecret: s3cret\n";
    let on = listing(secret, "").expect("on with webhooks");
    assert_eq!(on.frequency, Frequency::Every(Duration::from_secs(300)));
    assert!(listing("", "").is_none(), "off without webhooks");
    assert!(listing(secret, "        listingSchedule: false\n").is_none());
    let every = listing(
        "",
        "        listingSchedule:\n          frequency: { minutes: 2 }\n",
    )
    .expect("on when configured");
    assert_eq!(every.frequency, Frequency::Every(Duration::from_secs(120)));
}

#[tokio::test]
async fn a_run_asked_for_during_a_sweep_waits_for_it_instead_of_being_dropped() {
    let fake = FakeServer::start().await;
    let repos: [Repo; 2] = [("a", 1, false), ("b", 2, false)];
    serve(&fake, &repos, 25).await;
    let app = TestApp::spawn(&config(&fake, "")).await;
    wait_for_names(&app, &names(&[1, 2]), Duration::from_secs(20)).await;

    // Each listing now takes 1.5 s: sweeps (every second) hold the
    // provider most of the time, and ticks meanwhile are skipped.
    fake.server.reset().await;
    fake.mount_projects(&["PLAT"], 25).await;
    Mock::given(path(format!("{API}/projects/PLAT/repos")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({
                    "size": 2, "limit": 1000, "start": 0, "isLastPage": true,
                    "values": repo_values(&fake, &repos),
                }))
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&fake.server)
        .await;
    for (slug, id, _) in repos {
        fake.mount_file("PLAT", slug, FILE, &component(&format!("svc-{id}")))
            .await;
    }
    let projects = format!("{API}/projects");
    for _ in 0..3 {
        // A new projects request with no run going: a sweep has just
        // started its (1.5 s) repository listing. The run asked for now
        // waits for it, then runs whole.
        let seen = fake.requests_to(&projects).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while fake.requests_to(&projects).await == seen {
            assert!(Instant::now() < deadline, "no sweep started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = app.refresh("main", "").await;
        assert_eq!(status["lastRun"]["reposRead"], 2, "{status:#}");
    }
    assert!(wait_for_sweeps(&app, "skipped", 1.0).await >= 1.0);
    app.stop().await;
}
