//! Black-box: a Bitbucket Cloud project with more catalog files than one
//! code search returns (1,000, in a new order each time, as Bitbucket's)
//! is served completely and stays so over consecutive runs, at a stated
//! request cost (BENCHMARKS.md "Cloud: a project past the search cap").

use std::collections::BTreeSet;

use serde_json::Value;

use crate::cloud_sim::{config, simulator_of};
use crate::support::TestApp;
use bitbucket_sim::{Dataset, DatasetConfig, FileKind, Simulator};

/// One project of 1,510 repositories, 80 % with a catalog file.
const REPOS: usize = 1510;
const CAP: usize = 1000;
const PAGELEN: usize = 100;

async fn simulator() -> Simulator {
    simulator_of(DatasetConfig {
        cloud_projects: 1,
        cloud_repos_per_project: REPOS,
        catalog_ratio: 0.8,
        ..DatasetConfig::default()
    })
    .await
}

/// Reads of a Location file and its targets (on the first run).
fn location_reads(dataset: &Dataset) -> usize {
    dataset
        .cloud
        .repos
        .iter()
        .filter(|r| r.file_kind == FileKind::LocationTree)
        // Every file but README.md: the Location and its targets.
        .map(|r| r.files.len() - 1)
        .sum()
}

/// Follows the change feed from `after`; the cursor at its end and the
/// refs it removed.
async fn removals(app: &TestApp, after: &str) -> (String, Vec<String>) {
    let mut cursor = after.to_owned();
    let mut removed = Vec::new();
    loop {
        let query = if cursor.is_empty() {
            String::new()
        } else {
            format!("?after={cursor}")
        };
        let page: Value = app.get_json(&format!("/api/catalog/changes{query}")).await;
        for item in page["items"].as_array().expect("items") {
            if item["type"] == "delete" {
                removed.push(item["entityRef"].to_string());
            }
        }
        cursor = page["cursor"].as_str().expect("cursor").to_owned();
        if page["hasMore"] != true {
            return (cursor, removed);
        }
    }
}

#[tokio::test]
async fn a_cloud_project_past_the_search_cap_is_complete_and_stable_over_three_runs() {
    let sim = simulator().await;
    let dataset = sim.dataset().clone();
    let files = dataset
        .cloud
        .repos
        .iter()
        .filter(|r| r.catalog_file().is_some())
        .count();
    assert!(files >= 1200, "past the cap by a fifth: {files} files");
    let expected: BTreeSet<String> = dataset
        .cloud
        .repos
        .iter()
        .flat_map(|r| r.tree_entity_refs.iter().cloned())
        .collect();
    let targets = location_reads(&dataset)
        - dataset
            .cloud
            .repos
            .iter()
            .filter(|r| r.file_kind == FileKind::LocationTree)
            .count();

    // Fixed per run: the project listing, the capped search (10 pages), the
    // capped project's repositories (`q=project.key=`, 16 pages: the only
    // project) and one `repo:` search for each repository the capped search
    // did not return.
    let listing = 1 + CAP / PAGELEN + REPOS.div_ceil(PAGELEN) + (REPOS - CAP);
    // First run: plus every catalog file and Location target, read once.
    let first = listing + files + targets;
    // Later runs: unchanged commits are not read again, Location files and
    // their targets (in the same repository) included.
    let steady = listing;

    let app = TestApp::spawn(&config(&sim, PAGELEN)).await;
    let mut cursor = String::new();
    for run_number in 1..=3 {
        sim.reset_stats();
        let status = app.refresh("sim", "").await;
        let run = &status["lastRun"];
        assert_eq!(run["outcome"]["status"], "succeeded", "{run:#}");
        assert_eq!(app.entity_refs().await, expected, "run {run_number}");
        assert_eq!(run["entities"], expected.len(), "run {run_number}");
        let (next, removed) = removals(&app, &cursor).await;
        assert!(removed.is_empty(), "run {run_number} removed {removed:?}");
        cursor = next;

        let stats = sim.stats();
        let bound = if run_number == 1 { first } else { steady };
        eprintln!(
            "run {run_number}: {} requests (bound {bound}), files {files}, entities {}, by kind {:?}",
            stats.requests,
            expected.len(),
            stats
                .by_kind
                .iter()
                .map(|(k, v)| (*k, v.requests))
                .collect::<Vec<_>>()
        );
        assert_eq!(run["requests"], stats.requests, "{run:#}");
        assert_eq!(stats.requests, bound as u64, "run {run_number}: {stats:#?}");
        assert_eq!(stats.repeated_requests(), 0, "{stats:#?}");
    }
    app.stop().await;
    sim.shutdown().await;
}
