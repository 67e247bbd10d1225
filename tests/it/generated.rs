//! Black-box: `withoutCatalogFile.generate`. A repository without a catalog
//! file is served as one generated Component owned by its code owners
//! file's `*` rule (else the configured owner); the code owners file is
//! read once per repository and again only when the repository changed;
//! a catalog file replaces the generated entity; a real entity always
//! takes a generated one's name; turning the option off removes generated
//! entities under the deletion guard; Cloud's team syntax maps to groups.

use std::collections::BTreeSet;

use crate::cloud_sim;
use crate::support::sim::SimProviderConfig;
use crate::support::{TestApp, component, run_on_config, text, with_write_token, write_config};
use bitbucket_sim::{
    CodeOwners, DatasetConfig, EndpointKind, FileKind, FileMix, Repo, RepoRef, SimConfig, Simulator,
};
use serde_json::Value;

const SECRET: &str = "generated-s3cret";
const GENERATE: &str = "        withoutCatalogFile:\n          generate:\n            type: service\n            lifecycle: production\n            owner: group:default/unowned\n";

async fn simulator(catalog_ratio: f64) -> Simulator {
    Simulator::start(SimConfig {
        dataset: DatasetConfig {
            projects: 3,
            repos_per_project: 8,
            catalog_ratio,
            archived_ratio: 0.0,
            mix: FileMix::components_only(),
            codeowners_ratio: 0.7,
            ..DatasetConfig::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn config(sim: &Simulator, generate: bool) -> String {
    SimProviderConfig::new(sim)
        .webhook_secret(SECRET)
        .provider_extra(if generate { GENERATE } else { "" })
        .yaml()
}

fn without_file(sim: &Simulator) -> Vec<Repo> {
    sim.dataset()
        .server_repos()
        .filter(|r| r.file_kind == FileKind::None)
        .cloned()
        .collect()
}

fn generated_name(repo: &Repo) -> String {
    format!("{}-{}", repo.project_key, repo.slug).to_lowercase()
}

fn expected_owner(repo: &Repo) -> String {
    match &repo.code_owners {
        CodeOwners::Owner(owner) => owner.clone(),
        CodeOwners::NoFile | CodeOwners::Nobody => "group:default/unowned".into(),
    }
}

fn server_ref(repo: &Repo) -> RepoRef {
    RepoRef::Server {
        project: repo.project_key.clone(),
        slug: repo.slug.clone(),
    }
}

async fn entity(app: &TestApp, name: &str) -> Value {
    app.get_json(&format!(
        "/api/catalog/entities/by-name/component/default/{name}"
    ))
    .await
}

async fn deliver(app: &TestApp, event: bitbucket_sim::WebhookEvent) {
    let status = event
        .deliver(
            &format!("{}/api/events/http/bitbucketServer", app.address),
            Some(SECRET),
        )
        .await
        .expect("delivered");
    assert_eq!(status, 202);
}

/// Waits until `check` holds for the served refs (pushes apply async).
async fn until(app: &TestApp, check: impl Fn(&BTreeSet<String>) -> bool) -> BTreeSet<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let refs = app.entity_refs().await;
        if check(&refs) {
            return refs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reached: {refs:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn repositories_without_a_catalog_file_are_generated_with_their_code_owners() {
    let sim = simulator(0.5).await;
    let missing = without_file(&sim);
    assert!(
        missing.len() >= 4,
        "the data set has repositories without a file"
    );
    assert!(
        missing
            .iter()
            .any(|r| matches!(r.code_owners, CodeOwners::Owner(_))),
        "some name an owner"
    );
    let app = TestApp::spawn(&config(&sim, true)).await;
    app.refresh("sim", "").await;

    let mut want: BTreeSet<String> = sim
        .dataset()
        .expected_server_refs(false)
        .into_iter()
        .collect();
    for repo in &missing {
        want.insert(format!("component:default/{}", generated_name(repo)));
    }
    assert_eq!(app.entity_refs().await, want);
    for repo in &missing {
        let served = entity(&app, &generated_name(repo)).await;
        let annotations = &served["metadata"]["annotations"];
        assert_eq!(
            annotations["bitbucket-catalogd/generated"], "true",
            "{served:#}"
        );
        assert_eq!(
            served["spec"]["owner"],
            expected_owner(repo),
            "{:?}",
            repo.code_owners
        );
        assert_eq!(served["spec"]["type"], "service");
        assert_eq!(served["spec"]["lifecycle"], "production");
        for key in [
            "backstage.io/managed-by-location",
            "backstage.io/source-location",
            "backstage.io/view-url",
        ] {
            assert!(annotations[key].is_string(), "{key}: {served:#}");
        }
    }

    // The repositories route and the status page say which are generated.
    let records = app
        .get_json("/api/catalog/providers/sim/repositories")
        .await;
    let generated: Vec<&Value> = records
        .as_array()
        .or_else(|| records["repositories"].as_array())
        .expect("records")
        .iter()
        .filter(|r| r["generated"].is_object())
        .collect();
    assert_eq!(generated.len(), missing.len(), "{records:#}");
    let page = app.get("/").await.text().await.expect("page");
    assert!(page.contains("(generated)"), "{page}");
}

#[tokio::test]
async fn the_code_owners_file_is_read_once_and_again_only_when_the_repository_changed() {
    let sim = simulator(0.5).await;
    let missing = without_file(&sim);
    let repos = sim.dataset().server_repos().count() as u64;
    let app = TestApp::spawn(&config(&sim, true)).await;
    let raw = |sim: &Simulator| sim.stats().kind_requests(EndpointKind::ServerRaw);

    app.refresh("sim", "").await;
    assert_eq!(
        raw(&sim),
        repos + missing.len() as u64,
        "each file, and each code owners file once"
    );
    sim.reset_stats();
    app.refresh("sim", "").await;
    assert_eq!(
        raw(&sim),
        repos,
        "an unchanged run reads no code owners file"
    );

    // A push to a repository without a catalog file: its file, then its code owners.
    sim.reset_stats();
    let repo = &missing[0];
    let event = sim
        .push_file(&server_ref(repo), "README.md", "changed\n")
        .expect("push");
    deliver(&app, event).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while raw(&sim) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the push was not read"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(raw(&sim), 2, "the catalog file and the code owners file");
}

#[tokio::test]
async fn a_new_catalog_file_replaces_the_generated_entity_and_real_entities_win_names() {
    let sim = simulator(0.5).await;
    let missing = without_file(&sim);
    let app = TestApp::spawn(&config(&sim, true)).await;
    app.refresh("sim", "").await;

    // The repository gains a catalog file: its entity replaces the generated one.
    let gains = &missing[0];
    let old = format!("component:default/{}", generated_name(gains));
    let event = sim
        .push_file(
            &server_ref(gains),
            "catalog-info.yaml",
            &component("now-real"),
        )
        .expect("push");
    deliver(&app, event).await;
    let refs = until(&app, |refs| refs.contains("component:default/now-real")).await;
    assert!(!refs.contains(&old), "no stale generated entity: {refs:?}");

    // A real entity elsewhere named as a generated one takes its name.
    let taken = &missing[1];
    let name = generated_name(taken);
    let real_repo = sim
        .dataset()
        .server_repos()
        .find(|r| r.file_kind == FileKind::Component)
        .cloned()
        .expect("a repository with a file");
    let event = sim
        .push_file(
            &server_ref(&real_repo),
            "catalog-info.yaml",
            &component(&name),
        )
        .expect("push");
    deliver(&app, event).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let served = entity(&app, &name).await;
        if served["metadata"]["annotations"]["bitbucket-catalogd/generated"].is_null()
            && served["metadata"]["name"] == name.as_str()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the real entity never took the name: {served:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // And the next run does not give it back to the generated one.
    app.refresh("sim", "").await;
    let served = entity(&app, &name).await;
    assert!(
        served["metadata"]["annotations"]["bitbucket-catalogd/generated"].is_null(),
        "{served:#}"
    );

    // Once the real entity lets the name go, the next run generates it again.
    let event = sim
        .push_file(
            &server_ref(&real_repo),
            "catalog-info.yaml",
            &component("renamed-real"),
        )
        .expect("push");
    deliver(&app, event).await;
    until(&app, |refs| refs.contains("component:default/renamed-real")).await;
    app.refresh("sim", "").await;
    let served = entity(&app, &name).await;
    assert_eq!(
        served["metadata"]["annotations"]["bitbucket-catalogd/generated"], "true",
        "{served:#}"
    );
}

#[tokio::test]
async fn turning_the_option_off_removes_generated_entities_under_the_deletion_guard() {
    let sim = simulator(0.25).await;
    let missing = without_file(&sim);
    let dir = tempfile::tempdir().expect("tempdir");
    let database = dir.path().join("catalog.db");
    let database = database.to_str().expect("path");
    let app = TestApp::spawn_with_database(&config(&sim, true), database).await;
    app.refresh("sim", "").await;
    let with = app.entity_refs().await;
    app.stop().await;

    let app = TestApp::spawn_with_database(&with_write_token(&config(&sim, false)), database).await;
    let status = app.refresh("sim", "").await;
    assert_eq!(status["lastRun"]["outcome"]["status"], "held", "{status:#}");
    assert_eq!(app.entity_refs().await, with, "held: nothing removed");
    app.refresh("sim", "?force=true").await;
    let want: BTreeSet<String> = sim
        .dataset()
        .expected_server_refs(false)
        .into_iter()
        .collect();
    assert_eq!(app.entity_refs().await, want);
    assert!(missing.len() > with.len() / 2);
}

#[tokio::test]
async fn cloud_teams_and_users_own_generated_components() {
    let sim = cloud_sim::simulator_of(DatasetConfig {
        cloud_projects: 2,
        cloud_repos_per_project: 10,
        catalog_ratio: 0.5,
        codeowners_ratio: 0.8,
        mix: FileMix::components_only(),
        ..DatasetConfig::default()
    })
    .await;
    let yaml = format!("{}{GENERATE}", cloud_sim::config(&sim, 100));
    let app = TestApp::spawn(&yaml).await;
    app.refresh("sim", "").await;
    let missing: Vec<Repo> = sim
        .dataset()
        .cloud
        .repos
        .iter()
        .filter(|r| r.file_kind == FileKind::None)
        .cloned()
        .collect();
    assert!(
        missing
            .iter()
            .any(|r| matches!(&r.code_owners, CodeOwners::Owner(o) if o.starts_with("group:"))),
        "some name a team"
    );
    let mut want: BTreeSet<String> = sim.dataset().expected_cloud_refs().into_iter().collect();
    for repo in &missing {
        want.insert(format!("component:default/{}", generated_name(repo)));
    }
    assert_eq!(app.entity_refs().await, want);
    for repo in &missing {
        let served = entity(&app, &generated_name(repo)).await;
        assert_eq!(served["spec"]["owner"], expected_owner(repo), "{served:#}");
    }
}

#[tokio::test]
async fn config_check_refuses_an_owner_that_is_no_entity_reference() {
    let sim = simulator(0.5).await;
    let yaml = config(&sim, true).replace("group:default/unowned", "component:default/x");
    let (_dir, file) = write_config(&yaml);
    let output = run_on_config(&["config", "check"], &file).await;
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("withoutCatalogFile.generate.owner") && stderr.contains("group or a user"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_glob_provider_generates_where_it_matched_nothing_and_a_new_file_replaces_it() {
    let sim = Simulator::start(SimConfig {
        dataset: DatasetConfig {
            projects: 2,
            repos_per_project: 6,
            catalog_ratio: 0.5,
            archived_ratio: 0.0,
            mix: FileMix::components_only(),
            monorepo_ratio: 0.3,
            monorepo_files: (3, 6),
            codeowners_ratio: 0.7,
            ..DatasetConfig::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let dataset = sim.dataset().clone();
    let missing: Vec<Repo> = dataset
        .server_repos()
        .filter(|r| r.catalog_paths().is_empty())
        .cloned()
        .collect();
    assert!(missing.len() >= 2, "some repositories have no catalog file");
    let yaml = SimProviderConfig::new(&sim)
        .webhook_secret(SECRET)
        .provider_extra(&format!(
            "        catalogPath: \"**/catalog-info.yaml\"\n{GENERATE}"
        ))
        .yaml();
    let app = TestApp::spawn(&yaml).await;
    let status = app.refresh("sim", "").await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );
    let mut want = dataset.expected_server_glob_refs(false);
    for repo in &missing {
        want.insert(format!("component:default/{}", generated_name(repo)));
    }
    assert_eq!(app.entity_refs().await, want);
    for repo in &missing {
        let served = entity(&app, &generated_name(repo)).await;
        assert_eq!(served["spec"]["owner"], expected_owner(repo), "{served:#}");
        assert_eq!(
            served["metadata"]["annotations"]["bitbucket-catalogd/generated"], "true",
            "{served:#}"
        );
    }

    // Unchanged: no read, not even the code owners file.
    sim.reset_stats();
    app.refresh("sim", "").await;
    assert_eq!(app.entity_refs().await, want);
    assert_eq!(
        sim.stats().kind_requests(EndpointKind::ServerRaw),
        0,
        "{:#?}",
        sim.stats()
    );

    // A nested catalog file arrives: its entity replaces the generated one
    // in the same apply.
    let gains = &missing[0];
    let old = format!("component:default/{}", generated_name(gains));
    let event = sim
        .push_file(
            &server_ref(gains),
            "services/api/catalog-info.yaml",
            &component("glob-now-real"),
        )
        .expect("push");
    deliver(&app, event).await;
    let refs = until(&app, |refs| {
        refs.contains("component:default/glob-now-real") || !refs.contains(&old)
    })
    .await;
    assert!(refs.contains("component:default/glob-now-real"), "{refs:?}");
    assert!(!refs.contains(&old), "no stale generated entity: {refs:?}");
    app.refresh("sim", "").await;
    let refs = app.entity_refs().await;
    assert!(
        refs.contains("component:default/glob-now-real") && !refs.contains(&old),
        "{refs:?}"
    );

    // Its only matching file deleted: it is generated again.
    sim.delete_file(&server_ref(gains), "services/api/catalog-info.yaml")
        .expect("delete");
    app.refresh("sim", "").await;
    let refs = app.entity_refs().await;
    assert!(
        refs.contains(&old) && !refs.contains("component:default/glob-now-real"),
        "{refs:?}"
    );
    app.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_real_entity_from_another_provider_takes_over_a_generated_one() {
    let sim = simulator(0.5).await;
    let missing = without_file(&sim);
    let (home, victim) = (&missing[0], &missing[1]);
    let name = generated_name(victim);
    sim.push_file(
        &server_ref(home),
        "extra/entity.yaml",
        &component("placeholder-real"),
    )
    .expect("push");
    let other = format!(
        "      other:\n        host: {}\n        catalogPath: extra/entity.yaml\n        schedule: {{frequency: {{trigger: manual}}}}\n",
        sim.host()
    );
    let yaml = format!("{}{other}", config(&sim, true));
    let app = TestApp::spawn(&yaml).await;
    app.refresh("sim", "").await;
    app.refresh("other", "").await;
    let served = entity(&app, &name).await;
    assert_eq!(
        served["metadata"]["annotations"]["bitbucket-catalogd/generated"], "true",
        "{served:#}"
    );
    assert!(
        app.entity_refs()
            .await
            .contains("component:default/placeholder-real")
    );

    // The other provider's file now names the generated entity: it takes it.
    sim.push_file(&server_ref(home), "extra/entity.yaml", &component(&name))
        .expect("push");
    let status = app.refresh("other", "").await;
    let problems = status["lastRun"]["problems"].to_string();
    assert!(!problems.contains(&name), "no conflict: {problems}");
    let real = |served: &Value| {
        served["metadata"]["annotations"]["bitbucket-catalogd/generated"].is_null()
            && served["metadata"]["annotations"]["backstage.io/managed-by-location"]
                .as_str()
                .is_some_and(|l| l.ends_with("extra/entity.yaml"))
    };
    let served = entity(&app, &name).await;
    assert!(real(&served), "{served:#}");
    // The generating provider's next run does not take it back.
    app.refresh("sim", "").await;
    let served = entity(&app, &name).await;
    assert!(real(&served), "{served:#}");
    let total = app.get_json("/api/catalog/entities").await;
    let copies = total
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["metadata"]["name"] == name.as_str())
        .count();
    assert_eq!(copies, 1);

    // Let go: the next run generates it again.
    sim.push_file(
        &server_ref(home),
        "extra/entity.yaml",
        &component("renamed-real"),
    )
    .expect("push");
    app.refresh("other", "").await;
    app.refresh("sim", "").await;
    let served = entity(&app, &name).await;
    assert_eq!(
        served["metadata"]["annotations"]["bitbucket-catalogd/generated"], "true",
        "{served:#}"
    );
    app.stop().await;
    sim.shutdown().await;
}
