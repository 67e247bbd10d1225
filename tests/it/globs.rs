//! Black-box: `catalogPath` globs on both flavours, against the
//! simulator's monorepos (nested catalog files at depths 1–4, decoys the
//! glob must not take).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::cloud_sim::simulator_of;
use crate::support::TestApp;
use crate::support::sim::SimProviderConfig;
use crate::support::text;
use bitbucket_sim::{DatasetConfig, EndpointKind, FileMix, SimConfig, Simulator};

/// The daemon's Data Center page size.
const PAGE_LIMIT: usize = 1000;

/// Every shape but Location trees (the data set's glob expectations do
/// not follow targets).
fn mix() -> FileMix {
    FileMix {
        location_tree: 0.0,
        ..FileMix::default()
    }
}

async fn server_simulator() -> Simulator {
    Simulator::start(SimConfig {
        dataset: DatasetConfig {
            projects: 2,
            repos_per_project: 6,
            archived_ratio: 0.0,
            mix: mix(),
            monorepo_ratio: 0.4,
            monorepo_files: (5, 15),
            ..DatasetConfig::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn glob_config(sim: &Simulator) -> String {
    SimProviderConfig::new(sim)
        .provider_extra("        catalogPath: \"**/catalog-info.yaml\"\n")
        .yaml()
}

/// The `managed-by-location` of the entity `name`.
async fn managed_by(app: &TestApp, name: &str) -> String {
    let entities: Value = app
        .get_json(&format!(
            "/api/catalog/entities?filter=metadata.name={name}"
        ))
        .await;
    entities[0]["metadata"]["annotations"]["backstage.io/managed-by-location"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: {entities:#}"))
        .to_owned()
}

#[tokio::test]
async fn a_server_glob_serves_every_nested_catalog_file_and_no_decoy() {
    let sim = server_simulator().await;
    let dataset = sim.dataset().clone();
    let expected = dataset.expected_server_glob_refs(false);
    let monorepos: Vec<_> = dataset.server_repos().filter(|r| r.monorepo).collect();
    assert!(!monorepos.is_empty(), "the data set has monorepos");
    let app = TestApp::spawn(&glob_config(&sim)).await;
    let status = app.refresh("sim", "").await;
    let run = &status["lastRun"];
    assert_eq!(run["outcome"]["status"], "succeeded", "{run:#}");
    assert_eq!(app.entity_refs().await, expected);
    for decoy in app.entity_refs().await {
        assert!(!decoy.contains("-decoy-"), "{decoy} came from a decoy");
    }
    // Listing pages, each repository's file listing, one read per file,
    // and per repository the head check that later runs stop at.
    let minimum = dataset.server_glob_minimum_requests(PAGE_LIMIT, true, false);
    let repos = dataset.server_repos().count();
    assert_eq!(
        sim.stats().requests,
        (minimum + repos) as u64,
        "{:#?}",
        sim.stats()
    );

    // Each nested entity is located at its own file.
    let repo = monorepos[0];
    let nested = repo
        .catalog_paths()
        .into_iter()
        .find(|p| p.contains('/'))
        .expect("a nested file");
    let name = repo.nested_entity_refs[0]
        .rsplit('/')
        .next()
        .expect("a name")
        .to_owned();
    let location = managed_by(&app, &name).await;
    assert!(
        location.contains(&format!("/repos/{}/browse/", repo.slug)) && location.ends_with(".yaml"),
        "{location} (a nested file such as {nested})"
    );
    assert!(!location.contains('*'), "{location}");

    // Unchanged: the same entities, nothing removed.
    let status = app.refresh("sim", "").await;
    assert_eq!(status["lastRun"]["outcome"]["status"], "succeeded");
    assert_eq!(app.entity_refs().await, expected);
    app.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_server_glob_reads_a_pushed_nested_file_and_drops_a_deleted_one() {
    let sim = server_simulator().await;
    let dataset = sim.dataset().clone();
    let repo = dataset
        .server_repos()
        .find(|r| r.monorepo)
        .expect("a monorepo")
        .clone();
    let app = TestApp::spawn(&glob_config(&sim)).await;
    app.refresh("sim", "").await;
    let before = app.entity_refs().await;
    let reference = bitbucket_sim::RepoRef::Server {
        project: repo.project_key.clone(),
        slug: repo.slug.clone(),
    };
    sim.push_file(
        &reference,
        "brand/new/catalog-info.yaml",
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: glob-pushed\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n",
    )
    .expect("push");
    let deleted = repo
        .catalog_paths()
        .into_iter()
        .find(|p| p.contains('/'))
        .expect("a nested file")
        .to_owned();
    sim.delete_file(&reference, &deleted).expect("delete");
    app.refresh("sim", "").await;
    let after = app.entity_refs().await;
    let added: BTreeSet<_> = after.difference(&before).cloned().collect();
    let removed: BTreeSet<_> = before.difference(&after).cloned().collect();
    assert_eq!(
        added,
        BTreeSet::from(["component:default/glob-pushed".to_owned()])
    );
    assert_eq!(removed.len(), 1, "{removed:?} (deleted {deleted})");
    app.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_cloud_glob_serves_every_nested_file_and_reads_nothing_when_unchanged() {
    let sim = simulator_of(DatasetConfig {
        cloud_projects: 2,
        cloud_repos_per_project: 5,
        mix: mix(),
        monorepo_ratio: 0.4,
        monorepo_files: (5, 15),
        ..DatasetConfig::default()
    })
    .await;
    let dataset = sim.dataset().clone();
    let expected = dataset.expected_cloud_glob_refs();
    assert!(dataset.cloud.repos.iter().any(|r| r.monorepo));
    let yaml = crate::cloud_sim::config(&sim, 100).replace(
        "        pagelen: 100\n",
        "        pagelen: 100\n        catalogPath: \"**/catalog-info.yaml\"\n",
    );
    let app = TestApp::spawn(&yaml).await;
    let status = app.refresh("sim", "").await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );
    assert_eq!(app.entity_refs().await, expected);
    let files: usize = dataset
        .cloud
        .repos
        .iter()
        .map(|r| r.catalog_paths().len())
        .sum();
    assert_eq!(
        sim.stats().kind_requests(EndpointKind::CloudSrc),
        files as u64
    );
    assert_eq!(sim.stats().kind_requests(EndpointKind::CloudCodeSearch), 0);

    // Unchanged commits: the listings only, no file read.
    sim.reset_stats();
    let status = app.refresh("sim", "").await;
    assert_eq!(status["lastRun"]["outcome"]["status"], "succeeded");
    assert_eq!(app.entity_refs().await, expected);
    assert_eq!(
        sim.stats().kind_requests(EndpointKind::CloudSrc),
        0,
        "{:#?}",
        sim.stats()
    );
    app.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn config_check_refuses_a_pattern_that_matches_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("app-config.yaml");
    std::fs::write(
        &config,
        "integrations:\n  bitbucketServer:\n    - host: bitbucket.example.com\n      token: t\ncatalog:\n  providers:\n    bitbucketServer:\n      main:\n        host: bitbucket.example.com\n        catalogPath: \"services/**\"\n",
    )
    .expect("write");
    let out = crate::support::run_on_config(&["config", "check"], &config).await;
    let text = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("catalogPath"), "{text}");
    assert!(text.contains("**/catalog-info.yaml"), "{text}");
}

/// Requests of `kind` since the last reset.
fn of(sim: &Simulator, kind: EndpointKind) -> u64 {
    sim.stats().kind_requests(kind)
}

#[tokio::test]
async fn a_300_file_monorepo_costs_one_request_unchanged_and_three_when_one_file_changed() {
    let sim = Simulator::start(SimConfig {
        dataset: DatasetConfig {
            projects: 1,
            repos_per_project: 2,
            archived_ratio: 0.0,
            mix: mix(),
            monorepo_ratio: 1.0,
            monorepo_files: (300, 300),
            ..DatasetConfig::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let dataset = sim.dataset().clone();
    let repos: Vec<_> = dataset.server_repos().cloned().collect();
    assert!(repos.iter().all(|r| r.catalog_paths().len() >= 300));
    let app = TestApp::spawn(&glob_config(&sim)).await;
    app.refresh("sim", "").await;
    assert_eq!(
        app.entity_refs().await,
        dataset.expected_server_glob_refs(false)
    );

    // Unchanged: the listing's two pages, then one request per repository.
    sim.reset_stats();
    let status = app.refresh("sim", "").await;
    assert_eq!(status["lastRun"]["outcome"]["status"], "succeeded");
    let stats = sim.stats();
    assert_eq!(of(&sim, EndpointKind::ServerDefaultBranch), 2, "{stats:#?}");
    assert_eq!(stats.requests, 2 + 2, "{stats:#?}");

    // One nested file changed in one repository: its head, the change
    // list and the one file; the other repository still costs one.
    let repo = &repos[0];
    let path = repo
        .catalog_paths()
        .into_iter()
        .find(|p| p.contains('/'))
        .expect("a nested file")
        .to_owned();
    let reference = bitbucket_sim::RepoRef::Server {
        project: repo.project_key.clone(),
        slug: repo.slug.clone(),
    };
    sim.push_file(
        &reference,
        &path,
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: glob-changed\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n",
    )
    .expect("push");
    let before = app.entity_refs().await;
    sim.reset_stats();
    let status = app.refresh("sim", "").await;
    assert_eq!(status["lastRun"]["outcome"]["status"], "succeeded");
    let stats = sim.stats();
    assert_eq!(of(&sim, EndpointKind::ServerChanges), 1, "{stats:#?}");
    assert_eq!(of(&sim, EndpointKind::ServerRaw), 1, "{stats:#?}");
    assert_eq!(of(&sim, EndpointKind::ServerFiles), 0, "{stats:#?}");
    let per_repository = stats.requests - 2 - 1;
    assert!(per_repository <= 4, "{stats:#?}");
    let after = app.entity_refs().await;
    let added: BTreeSet<_> = after.difference(&before).cloned().collect();
    let removed: BTreeSet<_> = before.difference(&after).cloned().collect();
    assert_eq!(
        added,
        BTreeSet::from(["component:default/glob-changed".to_owned()])
    );
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(after.len(), before.len());
    app.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unchanged_cloud_repository_whose_catalog_file_is_a_location_costs_no_read() {
    let sim = simulator_of(DatasetConfig {
        cloud_projects: 1,
        cloud_repos_per_project: 6,
        catalog_ratio: 1.0,
        mix: FileMix {
            component: 0.0,
            multi_document: 0.0,
            location_tree: 1.0,
            broken_yaml: 0.0,
            invalid_entity: 0.0,
        },
        ..DatasetConfig::default()
    })
    .await;
    let dataset = sim.dataset().clone();
    let expected: BTreeSet<String> = dataset
        .cloud
        .repos
        .iter()
        .flat_map(|r| r.tree_entity_refs.iter().cloned())
        .collect();
    let app = TestApp::spawn(&crate::cloud_sim::config(&sim, 100)).await;
    app.refresh("sim", "").await;
    assert_eq!(app.entity_refs().await, expected);
    assert!(of(&sim, EndpointKind::CloudSrc) > 6, "{:#?}", sim.stats());

    sim.reset_stats();
    let status = app.refresh("sim", "").await;
    assert_eq!(status["lastRun"]["outcome"]["status"], "succeeded");
    assert_eq!(app.entity_refs().await, expected);
    assert_eq!(of(&sim, EndpointKind::CloudSrc), 0, "{:#?}", sim.stats());

    // A push moves the commit: the file and its targets are read again.
    let repo = &dataset.cloud.repos[0];
    let reference = bitbucket_sim::RepoRef::Cloud {
        slug: repo.slug.clone(),
    };
    let target = repo
        .files
        .keys()
        .find(|p| p.starts_with("catalog/") && p.ends_with("components.yaml"))
        .expect("a target file")
        .clone();
    // The same content, pushed again: only the commit moves.
    let content = repo.files[&target].clone();
    sim.push_file(&reference, &target, &content).expect("push");
    sim.reset_stats();
    app.refresh("sim", "").await;
    assert!(of(&sim, EndpointKind::CloudSrc) >= 2, "{:#?}", sim.stats());
    app.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unchanged_cloud_glob_repository_costs_one_request_and_a_changed_file_one_read() {
    let sim = simulator_of(DatasetConfig {
        cloud_projects: 1,
        cloud_repos_per_project: 4,
        mix: mix(),
        monorepo_ratio: 1.0,
        monorepo_files: (40, 40),
        ..DatasetConfig::default()
    })
    .await;
    let dataset = sim.dataset().clone();
    let expected = dataset.expected_cloud_glob_refs();
    let repos = dataset.cloud.repos.len() as u64;
    let yaml = crate::cloud_sim::config(&sim, 100).replace(
        "        pagelen: 100\n",
        "        pagelen: 100\n        catalogPath: \"**/catalog-info.yaml\"\n",
    );
    let app = TestApp::spawn(&yaml).await;
    app.refresh("sim", "").await;
    assert_eq!(app.entity_refs().await, expected);

    // Unchanged: the listing, then one branch check per repository; no
    // tree listing, no read.
    sim.reset_stats();
    let status = app.refresh("sim", "").await;
    assert_eq!(status["lastRun"]["outcome"]["status"], "succeeded");
    assert_eq!(app.entity_refs().await, expected);
    let stats = sim.stats();
    assert_eq!(of(&sim, EndpointKind::CloudSrcDirectory), 0, "{stats:#?}");
    assert_eq!(of(&sim, EndpointKind::CloudSrc), 0, "{stats:#?}");
    let listing = of(&sim, EndpointKind::CloudProjects) + of(&sim, EndpointKind::CloudRepos);
    let checks = of(&sim, EndpointKind::CloudBranch);
    assert!(checks <= repos, "{stats:#?}");
    assert_eq!(stats.requests, listing + checks, "{stats:#?}");
    eprintln!(
        "cloud glob, unchanged run: {} requests ({listing} listing, {checks} branch checks, {repos} repositories)",
        stats.requests
    );

    // One nested file changed: its repository's check, the diffstat and
    // that one file; no tree listing.
    let repo = &dataset.cloud.repos[0];
    let path = repo
        .catalog_paths()
        .into_iter()
        .find(|p| p.contains('/'))
        .expect("a nested file")
        .to_owned();
    let reference = bitbucket_sim::RepoRef::Cloud {
        slug: repo.slug.clone(),
    };
    sim.push_file(
        &reference,
        &path,
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: cloud-glob-changed\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n",
    )
    .expect("push");
    let before = app.entity_refs().await;
    sim.reset_stats();
    let status = app.refresh("sim", "").await;
    assert_eq!(status["lastRun"]["outcome"]["status"], "succeeded");
    let stats = sim.stats();
    assert_eq!(of(&sim, EndpointKind::CloudDiffstat), 1, "{stats:#?}");
    assert_eq!(of(&sim, EndpointKind::CloudSrc), 1, "{stats:#?}");
    assert_eq!(of(&sim, EndpointKind::CloudSrcDirectory), 0, "{stats:#?}");
    eprintln!(
        "cloud glob, one nested file changed: {} requests (diffstat 1, file reads 1, branch checks {})",
        stats.requests,
        of(&sim, EndpointKind::CloudBranch)
    );
    let after = app.entity_refs().await;
    let added: BTreeSet<_> = after.difference(&before).cloned().collect();
    assert_eq!(
        added,
        BTreeSet::from(["component:default/cloud-glob-changed".to_owned()])
    );
    assert_eq!(after.len(), before.len());
    app.stop().await;
    sim.shutdown().await;
}

/// The estate benchmark found these re-read in full on every run: a Data
/// Center glob repository whose catalog file is a Location got no change
/// token. Unchanged it now costs its one head check; when it moves it is
/// read whole, so a changed target (which the glob does not match) is seen.
#[tokio::test]
async fn an_unchanged_server_glob_repository_whose_file_is_a_location_costs_one_request() {
    let sim = Simulator::start(SimConfig {
        dataset: DatasetConfig {
            projects: 1,
            repos_per_project: 4,
            archived_ratio: 0.0,
            catalog_ratio: 1.0,
            mix: FileMix {
                component: 0.0,
                multi_document: 0.0,
                location_tree: 1.0,
                broken_yaml: 0.0,
                invalid_entity: 0.0,
            },
            monorepo_ratio: 0.0,
            ..DatasetConfig::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let dataset = sim.dataset().clone();
    let expected = dataset.expected_server_tree_refs(false);
    let app = TestApp::spawn(&glob_config(&sim)).await;
    app.refresh("sim", "").await;
    assert_eq!(app.entity_refs().await, expected);

    sim.reset_stats();
    let status = app.refresh("sim", "").await;
    assert_eq!(status["lastRun"]["outcome"]["status"], "succeeded");
    let stats = sim.stats();
    assert_eq!(of(&sim, EndpointKind::ServerRaw), 0, "{stats:#?}");
    assert_eq!(of(&sim, EndpointKind::ServerDefaultBranch), 4, "{stats:#?}");
    assert_eq!(app.entity_refs().await, expected);

    // A target changes: the glob does not match it, yet it is read again.
    let repo = dataset.server_repos().next().expect("a repository").clone();
    let target = repo
        .files
        .keys()
        .find(|p| p.starts_with("catalog/") && p.ends_with("components.yaml"))
        .expect("a target file")
        .clone();
    let content = format!(
        "{}\n---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: target-changed\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n",
        repo.files[&target].trim_end()
    );
    let reference = bitbucket_sim::RepoRef::Server {
        project: repo.project_key.clone(),
        slug: repo.slug.clone(),
    };
    sim.push_file(&reference, &target, &content).expect("push");
    app.refresh("sim", "").await;
    assert!(
        app.entity_refs()
            .await
            .contains("component:default/target-changed"),
        "{:#?}",
        sim.stats()
    );
    app.stop().await;
    sim.shutdown().await;
}
