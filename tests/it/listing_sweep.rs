//! Black-box: the listing sweep (`listingSchedule`, Data Center) applies
//! what the listing alone shows between full runs — deleted, archived and
//! renamed repositories, new ones — for one global listing request per
//! 1,000 repositories plus one read per moved or new repository; without
//! the global listing it lists project by project; it never reaches past
//! the provider's projects; a failed listing or one past the deletion
//! guard removes nothing.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bitbucket_catalogd::{Config, Environment, Frequency};
use serde_json::{Value, json};
use wiremock::matchers::{path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::support::sim::SimProviderConfig;
use crate::support::{API, FakeServer, TestApp, component, server_config};
use bitbucket_sim::{DatasetConfig, EndpointKind, RepoRef, ServerOptions, SimConfig, Simulator};

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
    fake.mount_paged("/repos", repo_values(fake, repos), page_size)
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
    // The sweep lists with the global listing, one page here; the
    // projects page only when it has not listed projects yet.
    let global = fake.requests_to(&format!("{API}/repos")).await;
    let projects = fake.requests_to(&format!("{API}/projects")).await;
    assert!(global >= 3, "{global} listings: the sweep keeps running");
    assert_eq!(
        fake.requests_to("/projects/PLAT/repos").await,
        0,
        "no per-project listing"
    );
    assert!(projects <= 1, "{projects} projects pages");
    let all = fake
        .server
        .received_requests()
        .await
        .unwrap_or_default()
        .len();
    assert_eq!(
        all,
        global + projects + 2,
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
    Mock::given(path(format!("{API}/repos")))
        .and(query_param("start", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "size": 2, "limit": 2, "start": 0, "isLastPage": false, "nextPageStart": 2,
            "values": repo_values(&fake, &repos[..2]),
        })))
        .mount(&fake.server)
        .await;
    Mock::given(path(format!("{API}/repos")))
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
        fake.requests_to(&format!("{API}/repos")).await >= 4,
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
    fake.mount_paged("/projects/PLAT/repos", repo_values(&fake, &repos), 25)
        .await;
    Mock::given(path(format!("{API}/repos")))
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
    let global = format!("{API}/repos");
    for _ in 0..3 {
        // A new global listing request (runs list project by project): a
        // sweep has just started its (1.5 s) listing. The run asked for
        // now waits for it, then runs whole.
        let seen = fake.requests_to(&global).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while fake.requests_to(&global).await == seen {
            assert!(Instant::now() < deadline, "no sweep started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = app.refresh("main", "").await;
        assert_eq!(status["lastRun"]["reposRead"], 2, "{status:#}");
    }
    assert!(wait_for_sweeps(&app, "skipped", 1.0).await >= 1.0);
    app.stop().await;
}

/// A simulated Data Center of 3 projects × 10 repositories (one Component
/// each), with `personal` personal projects of 2, which `GET /projects`
/// lists unless `hide_personal`; the global listing served unless `refused`.
async fn simulator(personal: usize, hide_personal: bool, refused: bool) -> Simulator {
    Simulator::start(SimConfig {
        dataset: DatasetConfig {
            personal_projects: personal,
            ..DatasetConfig::components_only(3, 10)
        },
        server: ServerOptions {
            list_personal_projects: !hide_personal,
            global_listing: !refused,
            ..ServerOptions::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// Provider `sim`: runs when asked, skips archived repositories, sweeps
/// every second.
async fn sim_app(sim: &Simulator, provider_extra: &str) -> TestApp {
    let yaml = SimProviderConfig::new(sim)
        .provider_extra(&format!(
            "        filters:\n          skipArchivedRepos: true\n{provider_extra}        listingSchedule:\n          frequency: {{ seconds: 1 }}\n"
        ))
        .yaml();
    let app = TestApp::spawn(&yaml).await;
    app.refresh("sim", "").await;
    app
}

/// The entity refs of the repositories `keep` lets in, as the simulator
/// now has them (archived ones left out).
fn expected(sim: &Simulator, keep: impl Fn(&bitbucket_sim::Repo) -> bool) -> BTreeSet<String> {
    sim.current_dataset()
        .server_repos()
        .filter(|r| !r.archived && keep(r))
        .flat_map(|r| r.entity_refs.iter().map(|e| e.to_lowercase()))
        .collect()
}

async fn wait_for_refs(app: &TestApp, expected: &BTreeSet<String>, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now = app.entity_refs().await;
        if &now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected {} entities, served {}: missing {:?}, extra {:?}",
            expected.len(),
            now.len(),
            expected.difference(&now).collect::<Vec<_>>(),
            now.difference(expected).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `catalog_provider_listing_sweeps_total` of provider `sim`, succeeded.
async fn sim_sweeps(app: &TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("catalog_provider_listing_sweeps_total{")
                && l.contains("provider=\"sim\"")
                && l.contains("outcome=\"succeeded\"")
        })
        .find_map(|l| l.rsplit(' ').next().and_then(|n| n.parse().ok()))
        .unwrap_or(0.0)
}

fn server_ref(repo: &bitbucket_sim::Repo) -> RepoRef {
    RepoRef::Server {
        project: repo.project_key.clone(),
        slug: repo.slug.clone(),
    }
}

#[tokio::test]
async fn deleted_archived_and_renamed_repositories_within_one_interval_for_one_global_listing_request()
 {
    let sim = simulator(0, false, false).await;
    let app = sim_app(&sim, "").await;
    wait_for_refs(&app, &expected(&sim, |_| true), Duration::from_secs(20)).await;
    let repos: Vec<bitbucket_sim::Repo> = sim.dataset().server_repos().cloned().collect();
    let (deleted, archived, renamed) = (&repos[0], &repos[11], &repos[22]);
    let renamed_ref = renamed.entity_refs[0].clone();
    let name = renamed_ref
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let path = format!("/api/catalog/entities/by-name/component/default/{name}");
    let uid = app.get_json(&path).await["metadata"]["uid"].clone();
    assert!(uid.is_string());

    // Between full runs, and no webhook: Data Center sends none for a
    // deletion or an archiving, and this one is not delivered.
    sim.reset_stats();
    sim.delete_repo(&server_ref(deleted)).expect("deleted");
    sim.set_archived(&server_ref(archived), true)
        .expect("archived");
    sim.rename(&server_ref(renamed), "renamed-repo")
        .expect("renamed");
    let changed = Instant::now();
    let after = expected(&sim, |_| true);
    assert_eq!(after.len(), 28);
    wait_for_refs(&app, &after, Duration::from_secs(10)).await;
    let location = |entity: &Value| {
        entity["metadata"]["annotations"]["backstage.io/managed-by-location"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let moved = loop {
        let entity = app.get_json(&path).await;
        if location(&entity).contains("/repos/renamed-repo/") {
            break entity;
        }
        assert!(Instant::now() < deadline, "not moved: {entity:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        changed.elapsed() < Duration::from_secs(4),
        "within one interval (1 s) plus the sweep and its read: took {:?}",
        changed.elapsed()
    );
    assert_eq!(moved["metadata"]["uid"], uid, "a rename keeps the uid");
    let stats = sim.stats();
    assert_eq!(
        stats.kind_requests(EndpointKind::ServerRaw),
        1,
        "only the renamed repository is read: {stats:#?}"
    );

    // Steady state: each sweep is one global listing request (30 repositories,
    // pages of 1,000), nothing else: no projects page, no per-project page,
    // no file read.
    sim.reset_stats();
    let before = sim_sweeps(&app).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let swept = sim_sweeps(&app).await - before;
    let stats = sim.stats();
    let global = stats.kind_requests(EndpointKind::ServerGlobalRepos) as f64;
    assert!(swept >= 2.0, "{swept} sweeps");
    assert!(
        (global - swept).abs() <= 1.0,
        "{global} global listing requests for {swept} sweeps"
    );
    assert_eq!(
        stats.requests as f64, global,
        "nothing but the global listing: {stats:#?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_the_global_listing_sweeps_list_project_by_project() {
    let sim = simulator(0, false, true).await;
    let app = sim_app(&sim, "").await;
    wait_for_refs(&app, &expected(&sim, |_| true), Duration::from_secs(20)).await;
    let repos: Vec<bitbucket_sim::Repo> = sim.dataset().server_repos().cloned().collect();
    sim.delete_repo(&server_ref(&repos[5])).expect("deleted");
    sim.set_archived(&server_ref(&repos[15]), true)
        .expect("archived");
    wait_for_refs(&app, &expected(&sim, |_| true), Duration::from_secs(10)).await;
    let before = sim_sweeps(&app).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(sim_sweeps(&app).await - before >= 2.0, "sweeps go on");
    let stats = sim.stats();
    assert_eq!(
        stats.kind_requests(EndpointKind::ServerGlobalRepos),
        1,
        "the missing global listing is asked for once: {stats:#?}"
    );
    assert_eq!(stats.kind_status(EndpointKind::ServerGlobalRepos, "404"), 1);
    assert!(stats.kind_requests(EndpointKind::ServerRepos) >= 3 * 4);
    app.stop().await;
}

#[tokio::test]
async fn the_global_listing_adds_and_removes_nothing_outside_the_providers_scope() {
    // Personal repositories: the global listing shows them, `GET /projects`
    // does not list their projects, so no run sees them.
    let sim = simulator(2, true, false).await;
    let app = sim_app(&sim, "          projectKey: '^P000[12]$'\n").await;
    let in_scope = |r: &bitbucket_sim::Repo| ["P0001", "P0002"].contains(&r.project_key.as_str());
    wait_for_refs(&app, &expected(&sim, in_scope), Duration::from_secs(20)).await;
    assert_eq!(app.entity_refs().await.len(), 20);

    // Out of scope: a deletion in P0003 and the personal repositories.
    let repos: Vec<bitbucket_sim::Repo> = sim.dataset().server_repos().cloned().collect();
    let outside = repos
        .iter()
        .find(|r| r.project_key == "P0003")
        .expect("a repository of P0003");
    sim.delete_repo(&server_ref(outside)).expect("deleted");
    // In scope: one deletion, so the sweep is known to have run.
    sim.delete_repo(&server_ref(&repos[0])).expect("deleted");
    sim.reset_stats();
    wait_for_refs(&app, &expected(&sim, in_scope), Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.entity_refs().await, expected(&sim, in_scope));
    let stats = sim.stats();
    assert_eq!(
        stats.kind_requests(EndpointKind::ServerRaw),
        0,
        "nothing read: {stats:#?}"
    );
    assert!(stats.kind_requests(EndpointKind::ServerGlobalRepos) >= 2);
    app.stop().await;
}
