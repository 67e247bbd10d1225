//! Black-box at scale: a simulated Bitbucket Cloud workspace with hundreds of
//! repositories over several projects yields exactly the expected entities
//! with the fewest requests the API allows — with code search, with code
//! search repeating results across pages (BCLOUD-23644), and without code
//! search.

use std::collections::BTreeSet;

use crate::support::TestApp;
use bitbucket_sim::{
    AuthConfig, Behaviour, CodeSearch, Dataset, DatasetConfig, FileKind, SimConfig, Simulator,
};

const PROJECTS: usize = 6;
const REPOS_PER_PROJECT: usize = 60;
const MAX_PAGELEN: usize = 100;

async fn simulator() -> Simulator {
    simulator_of(DatasetConfig {
        cloud_projects: PROJECTS,
        cloud_repos_per_project: REPOS_PER_PROJECT,
        ..DatasetConfig::default()
    })
    .await
}

/// A simulator of `dataset` whose code search answers in a new order each
/// walk, as Bitbucket's (under the cap that changes nothing, cost included).
pub(super) async fn simulator_of(dataset: DatasetConfig) -> Simulator {
    Simulator::start(SimConfig {
        dataset,
        auth: AuthConfig {
            bearer_tokens: vec!["sim-workspace-token".into()],
            basic: Vec::new(),
        },
        behaviour: Behaviour {
            code_search: CodeSearch {
                unstable_order: true,
                ..CodeSearch::default()
            },
            ..Behaviour::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

pub(super) fn config(sim: &Simulator, pagelen: usize) -> String {
    format!(
        "integrations:\n  bitbucketCloud:\n    - host: {host}\n      apiBaseUrl: {api}\n      token: sim-workspace-token\ncatalog:\n  providers:\n    bitbucketCloud:\n      sim:\n        workspace: {ws}\n        pagelen: {pagelen}\n        concurrency: 16\n        schedule:\n          frequency: {{trigger: manual}}\n",
        host = sim.host(),
        api = sim.cloud_api_base(),
        ws = sim.cloud_workspace(),
    )
}

/// Pages needed for `n` results at `pagelen` when each later page repeats
/// `repeat` results of the previous one; an empty answer is still a page.
fn pages(n: usize, pagelen: usize, repeat: usize) -> usize {
    1 + n.saturating_sub(pagelen).div_ceil(pagelen - repeat)
}

/// Files read through Location targets in a repository's catalog file.
fn target_reads(dataset: &Dataset) -> usize {
    dataset
        .cloud
        .repos
        .iter()
        .filter(|r| r.file_kind == FileKind::LocationTree)
        // Everything but README.md and catalog-info.yaml is a target.
        .map(|r| r.files.len() - 2)
        .sum()
}

fn with_catalog_file(dataset: &Dataset, project: &str) -> usize {
    dataset
        .cloud
        .repos
        .iter()
        .filter(|r| r.project_key == project && r.catalog_file().is_some())
        .count()
}

/// Runs discovery once in a fresh daemon and checks the entities and that
/// the requests made (by our count and by the simulator's) are `minimum`,
/// none repeated.
async fn run_and_check(sim: &Simulator, pagelen: usize, minimum: usize, notice: bool) {
    sim.reset_stats();
    let app = TestApp::spawn(&config(sim, pagelen)).await;
    let status = app.refresh("sim", "").await;
    let run = &status["lastRun"];
    assert_eq!(run["outcome"]["status"], "succeeded", "{run:#}");
    assert_eq!(
        run["notices"].as_array().is_some_and(|n| !n.is_empty()),
        notice,
        "{run:#}"
    );

    let expected: BTreeSet<String> = sim
        .dataset()
        .cloud
        .repos
        .iter()
        .flat_map(|r| r.tree_entity_refs.iter().cloned())
        .collect();
    let served = app.entity_refs().await;
    assert!(
        expected.len() > 200,
        "a data set worth testing: {}",
        expected.len()
    );
    assert_eq!(served, expected);
    assert_eq!(run["entities"], expected.len());

    let stats = sim.stats();
    assert_eq!(run["requests"], minimum, "{run:#}");
    assert_eq!(stats.requests, minimum as u64, "{stats:#?}");
    assert_eq!(stats.repeated_requests(), 0, "{stats:#?}");
    app.stop().await;
}

#[tokio::test]
async fn a_large_workspace_costs_exactly_the_minimum_requests() {
    let sim = simulator().await;
    let dataset = sim.dataset().clone();
    assert_eq!(dataset.cloud.repos.len(), PROJECTS * REPOS_PER_PROJECT);
    let keys: Vec<String> = dataset
        .cloud
        .projects
        .iter()
        .map(|p| p.key.clone())
        .collect();
    let files: usize = keys.iter().map(|k| with_catalog_file(&dataset, k)).sum();
    let targets = target_reads(&dataset);
    let project_pages = pages(PROJECTS, MAX_PAGELEN, 0);

    // Code search: the project listing, every search page, one read per
    // catalog file and per Location target.
    let searches: usize = keys
        .iter()
        .map(|k| pages(with_catalog_file(&dataset, k), MAX_PAGELEN, 0))
        .sum();
    run_and_check(
        &sim,
        MAX_PAGELEN,
        project_pages + searches + files + targets,
        false,
    )
    .await;

    // Pages that repeat results: more pages, the same files read once.
    let (pagelen, repeat) = (10, 4);
    sim.set_behaviour(Behaviour {
        code_search: CodeSearch {
            repeat_per_page: repeat,
            ..CodeSearch::default()
        },
        ..Behaviour::default()
    })
    .expect("behaviour");
    let searches: usize = keys
        .iter()
        .map(|k| pages(with_catalog_file(&dataset, k), pagelen, repeat))
        .sum();
    let project_pages_small = pages(PROJECTS, pagelen, 0);
    run_and_check(
        &sim,
        pagelen,
        project_pages_small + searches + files + targets,
        false,
    )
    .await;

    // No code search: one failed search, the repository listing, and a read
    // of every repository's main branch.
    sim.set_behaviour(Behaviour {
        code_search: CodeSearch {
            enabled: false,
            ..CodeSearch::default()
        },
        ..Behaviour::default()
    })
    .expect("behaviour");
    let repos = dataset.cloud.repos.len();
    let listing = pages(repos, MAX_PAGELEN, 0);
    run_and_check(
        &sim,
        MAX_PAGELEN,
        project_pages + 1 + listing + repos + targets,
        true,
    )
    .await;
    sim.shutdown().await;
}
