//! Data set invariants: determinism, unique names, files that parse (or do
//! not) exactly as their kind says, and expected refs that match the files.

use std::collections::{BTreeSet, HashSet};

use bitbucket_sim::{
    BrokenYaml, CATALOG_PATH, Dataset, DatasetConfig, FileKind, InvalidEntity, Repo, SimConfig,
    SimError, Simulator,
};
use regex::Regex;
use serde_json::Value;

fn big() -> DatasetConfig {
    DatasetConfig {
        projects: 40,
        repos_per_project: 50,
        personal_projects: 3,
        repos_per_personal_project: 5,
        cloud_projects: 5,
        cloud_repos_per_project: 40,
        ..DatasetConfig::default()
    }
}

/// Parses like bitbucket-catalogd (and Backstage): multi-document, duplicate
/// keys rejected, `<<` an ordinary key.
fn parse(text: &str) -> Result<Vec<Value>, String> {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.merge_keys = serde_saphyr::MergeKeyPolicy::AsOrdinary;
    serde_saphyr::from_multiple_with_options::<Value>(text, options).map_err(|e| e.to_string())
}

fn name_is_valid(name: &str) -> bool {
    let pattern = Regex::new(r"^([a-zA-Z0-9]+[-_.])*[a-zA-Z0-9]+$").expect("regex");
    name.len() <= 63 && pattern.is_match(name)
}

/// The refs of the valid entities in one file, plus its Location targets
/// resolved against the file's directory.
fn entities_of(path: &str, text: &str) -> (Vec<String>, Vec<String>) {
    let docs = parse(text).unwrap_or_else(|e| panic!("{path} should parse: {e}\n{text}"));
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    let mut refs = Vec::new();
    let mut targets = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let kind = doc["kind"].as_str().expect("kind");
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        if !name_is_valid(name) {
            continue;
        }
        assert!(doc["apiVersion"].as_str().is_some());
        refs.push(format!("{}:default/{}", kind.to_lowercase(), name));
        if kind == "Location" {
            let spec = &doc["spec"];
            let listed: Vec<&str> = match (spec["target"].as_str(), spec["targets"].as_array()) {
                (Some(t), _) => vec![t],
                (None, Some(ts)) => ts.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            for t in listed {
                let rel = t.strip_prefix("./").expect("relative target");
                targets.push(if dir.is_empty() {
                    rel.to_owned()
                } else {
                    format!("{dir}/{rel}")
                });
            }
        }
    }
    (refs, targets)
}

fn check_repo(repo: &Repo) {
    let catalog = repo.catalog_file();
    assert!(repo.file("README.md").is_some());
    match repo.file_kind {
        FileKind::None => {
            assert!(catalog.is_none());
            assert!(repo.entity_refs.is_empty() && repo.tree_entity_refs.is_empty());
        }
        FileKind::BrokenYaml(how) => {
            let text = catalog.expect("file");
            assert!(parse(text).is_err(), "{how:?} should not parse:\n{text}");
            assert!(repo.entity_refs.is_empty());
        }
        FileKind::InvalidEntity(how) => {
            let docs = parse(catalog.expect("file")).expect("invalid entities still parse");
            assert_eq!(docs.len(), 1);
            let name = docs[0]["metadata"]["name"].as_str();
            match how {
                InvalidEntity::MissingName => assert!(name.is_none()),
                InvalidEntity::BadNameCharacters | InvalidEntity::NameTooLong => {
                    assert!(!name_is_valid(name.expect("a name")), "{name:?}");
                }
            }
            assert!(repo.entity_refs.is_empty());
        }
        FileKind::Component | FileKind::MultiDocument | FileKind::LocationTree => {
            let (refs, targets) = entities_of(CATALOG_PATH, catalog.expect("file"));
            assert_eq!(refs, repo.entity_refs, "{}", repo.slug);
            // Follow the tree, bounded by the number of files.
            let mut tree = refs;
            let mut queue = targets;
            let mut visited = 0;
            while let Some(path) = queue.pop() {
                visited += 1;
                assert!(
                    visited <= repo.files.len(),
                    "Location cycle in {}",
                    repo.slug
                );
                let text = repo
                    .file(&path)
                    .unwrap_or_else(|| panic!("target {path} exists"));
                let (more, next) = entities_of(&path, text);
                tree.extend(more);
                queue.extend(next);
            }
            let got: BTreeSet<_> = tree.into_iter().collect();
            let want: BTreeSet<_> = repo.tree_entity_refs.iter().cloned().collect();
            assert_eq!(got, want, "{}", repo.slug);
            match repo.file_kind {
                FileKind::Component => assert_eq!(repo.entity_refs.len(), 1),
                FileKind::MultiDocument => assert_eq!(repo.entity_refs.len(), 2),
                _ => assert_eq!(
                    (repo.entity_refs.len(), repo.tree_entity_refs.len()),
                    (1, 5)
                ),
            }
        }
    }
}

#[test]
fn every_file_parses_or_fails_as_its_kind_says_and_yields_its_refs() {
    let d = Dataset::generate(7, &big());
    for repo in d.server_repos().chain(&d.cloud.repos) {
        check_repo(repo);
    }
    let kinds: HashSet<_> = d.server_repos().map(|r| r.file_kind).collect();
    for kind in [
        FileKind::None,
        FileKind::Component,
        FileKind::MultiDocument,
        FileKind::LocationTree,
        FileKind::BrokenYaml(BrokenYaml::UnclosedFlow),
        FileKind::BrokenYaml(BrokenYaml::TabIndent),
        FileKind::BrokenYaml(BrokenYaml::DuplicateKey),
        FileKind::BrokenYaml(BrokenYaml::UnterminatedQuote),
        FileKind::InvalidEntity(InvalidEntity::MissingName),
        FileKind::InvalidEntity(InvalidEntity::BadNameCharacters),
        FileKind::InvalidEntity(InvalidEntity::NameTooLong),
    ] {
        assert!(kinds.contains(&kind), "{kind:?} never generated");
    }
}

#[test]
fn entity_refs_are_unique_across_server_and_cloud() {
    let d = Dataset::generate(3, &big());
    let mut seen = HashSet::new();
    for repo in d.server_repos().chain(&d.cloud.repos) {
        for r in &repo.tree_entity_refs {
            assert!(seen.insert(r.clone()), "{r} appears twice");
        }
    }
    assert!(seen.len() > 1500, "{}", seen.len());
    let summary = d.summary();
    assert_eq!(summary.server_entities, d.expected_server_refs(false).len());
    assert!(d.expected_server_refs(true).len() < summary.server_entities);
}

#[test]
fn same_seed_same_data_set_other_seed_another() {
    let a = Dataset::generate(11, &big());
    let b = Dataset::generate(11, &big());
    let c = Dataset::generate(12, &big());
    let flat = |d: &Dataset| -> Vec<(String, String, bool, String, Vec<String>)> {
        d.server_repos()
            .chain(&d.cloud.repos)
            .map(|r| {
                (
                    r.project_key.clone(),
                    r.slug.clone(),
                    r.archived,
                    r.commit.clone(),
                    r.files.values().cloned().collect(),
                )
            })
            .collect()
    };
    assert_eq!(flat(&a), flat(&b));
    assert_ne!(flat(&a), flat(&c));
    // A repo's content does not depend on how many other projects there are.
    let smaller = Dataset::generate(
        11,
        &DatasetConfig {
            projects: 2,
            ..big()
        },
    );
    let first = &smaller.server_projects[0].repos[0];
    let same = a.server_repo("P0001", &first.slug).expect("same repo");
    assert_eq!((&first.files, &first.commit), (&same.files, &same.commit));
}

#[test]
fn ratios_and_counts_follow_the_config() {
    let d = Dataset::generate(5, &big());
    let s = d.summary();
    assert_eq!(
        (
            s.server_projects,
            s.server_personal_projects,
            s.server_repos
        ),
        (40, 3, 40 * 50 + 3 * 5)
    );
    assert_eq!((s.cloud_projects, s.cloud_repos), (5, 200));
    let with_file = d.server_repos().filter(|r| r.file_kind.has_file()).count() as f64;
    let ratio = with_file / s.server_repos as f64;
    assert!((0.55..0.65).contains(&ratio), "catalog ratio {ratio}");
    let archived = s.server_archived_repos as f64 / s.server_repos as f64;
    assert!(
        (0.03..0.07).contains(&archived),
        "archived ratio {archived}"
    );
    assert!(d.cloud.repos.iter().all(|r| !r.archived));
    let personal = d.server_project("~user002").expect("case-insensitive key");
    assert!(personal.personal && personal.key == "~USER002");
    // Σ pages at limit 1000: one for /projects, one per project's repos.
    assert_eq!(d.server_listing_pages(1000, true), 1 + 43);
    assert_eq!(d.server_listing_pages(20, false), 2 + 40 * 3);
    assert_eq!(
        d.server_minimum_requests(1000, true, false),
        44 + s.server_repos
    );
    assert_eq!(
        d.server_minimum_requests(1000, true, true),
        44 + s.server_repos - s.server_archived_repos
    );
    // Nothing but files when the ratio is 1, and no files at 0.
    let all = Dataset::generate(
        5,
        &DatasetConfig {
            catalog_ratio: 1.0,
            ..DatasetConfig::default()
        },
    );
    assert!(all.server_repos().all(|r| r.file_kind.has_file()));
    let none = Dataset::generate(
        5,
        &DatasetConfig {
            catalog_ratio: 0.0,
            ..DatasetConfig::default()
        },
    );
    assert!(none.expected_server_refs(false).is_empty());
}

#[tokio::test]
async fn invalid_configs_are_typed_errors() {
    let bad = [
        SimConfig {
            bind: "0.0.0.0".parse().expect("ip"),
            ..SimConfig::default()
        },
        SimConfig {
            dataset: DatasetConfig {
                catalog_ratio: 1.5,
                ..DatasetConfig::default()
            },
            ..SimConfig::default()
        },
        SimConfig {
            dataset: DatasetConfig {
                cloud_workspace: "a b".into(),
                ..DatasetConfig::default()
            },
            ..SimConfig::default()
        },
    ];
    for config in bad {
        match Simulator::start(config).await {
            Err(SimError::NotLoopback(_) | SimError::Config(_)) => {}
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("should not start"),
        }
    }
}
