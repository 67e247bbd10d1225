//! What one repository's change costs in a large catalog:
//! `cargo bench --bench change [-- ENTITIES]` (default 100,000).
//!
//! Seeds a SQLite store with ENTITIES components (one repository each, owned
//! by 40 groups that are entities too), starts from it as the daemon does
//! (restore, settle), then applies new content for one repository through
//! the same path a run uses — process the file's bytes, prepare the change
//! in the catalog, persist it in one transaction, publish — and measures
//! wall time and CPU (all threads) until the changed entity is served.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bitbucket_catalogd::Applier;
use bitbucket_catalogd::CatalogSettings;
use bitbucket_catalogd::{AllowKind, CatalogRule, CatalogRules};
use bitbucket_catalogd::{Catalog, EntityKey, UnitEntities};
use bitbucket_catalogd::{CatalogStore, SqliteStore};
use bitbucket_catalogd::{FetchError, FileFacts, FileSource, RepoInfo, ResolveError};
use bitbucket_catalogd::{UnitUpdate, process_file};
use futures::future::BoxFuture;

const TEAMS: usize = 40;

/// Catalog files here have no Location targets: nothing else is read.
struct NoOtherFiles;

impl FileSource for NoOtherFiles {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, FetchError>> {
        Box::pin(async move { Err(FetchError::Refused(format!("{url} is not read here"))) })
    }
    fn resolve(&self, target: &str, _base: &str) -> Result<String, ResolveError> {
        Ok(target.to_owned())
    }
    fn describe(&self, url: &str) -> FileFacts {
        FileFacts {
            edit_url: Some(url.to_owned()),
            directory: self.resolve("./", url).ok(),
            ..FileFacts::default()
        }
    }
}

fn unit(i: usize) -> String {
    format!(
        "https://bitbucket.example.com/projects/P{:03}/repos/service-{i:06}/browse/catalog-info.yaml",
        i % 200
    )
}

fn component_yaml(i: usize, owner: usize, description: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: service-{i:06}\n  description: {description}\n  tags: [java, web]\nspec:\n  type: service\n  lifecycle: production\n  owner: team-{owner}\n  system: system-{}\n",
        i % 100
    )
}

fn group_yaml(team: usize) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-{team}\nspec:\n  type: team\n  children: []\n"
    )
}

/// Backstage's default rules plus Groups, as an organisation's catalog has them.
fn settings() -> CatalogSettings {
    let groups = CatalogRule {
        allow: vec![AllowKind {
            kind: "Group".into(),
            spec_type: None,
        }],
        locations: None,
    };
    CatalogSettings {
        rules: Arc::new(CatalogRules::default().extended(vec![groups])),
        ..CatalogSettings::default()
    }
}

async fn process(yaml: &str, location: &str) -> Vec<bitbucket_catalogd::ProcessedEntity> {
    let outcome = process_file(
        yaml.as_bytes(),
        location,
        &NoOtherFiles,
        &settings(),
        &RepoInfo::default(),
    )
    .await;
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    outcome.entities
}

/// CPU time of every thread of this process so far.
fn process_cpu() -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

async fn seed(db: &std::path::Path, count: usize) {
    let mut units = Vec::with_capacity(count + TEAMS);
    for team in 0..TEAMS {
        let location = format!(
            "https://bitbucket.example.com/projects/ORG/repos/team-{team}/browse/catalog-info.yaml"
        );
        units.push(UnitEntities {
            entities: process(&group_yaml(team), &location).await,
            unit: location,
        });
    }
    for i in 0..count {
        units.push(UnitEntities {
            entities: process(&component_yaml(i, i % TEAMS, "as seeded"), &unit(i)).await,
            unit: unit(i),
        });
    }
    let store = SqliteStore::open(db).await.expect("store");
    support::seed_units(&store, units).await;
    store.close().await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("catalog.sqlite");
    let seeding = Instant::now();
    seed(&db, count).await;
    println!(
        "seeded {count} components + {TEAMS} groups in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let store: Arc<dyn CatalogStore> = Arc::new(SqliteStore::open(&db).await.expect("store"));
    let catalog = Arc::new(Catalog::new());
    store.restore(usize::MAX, &catalog).await.expect("restore");
    let applier = Applier::new(Arc::clone(&catalog), Arc::clone(&store));
    let settling = Instant::now();
    applier.settle();
    // The first apply waits for settling to finish.
    applier.apply("bench", Vec::new()).await;
    println!(
        "restored and settled {} entities in {:.2} s",
        catalog.len(),
        settling.elapsed().as_secs_f64()
    );

    for (label, owner_moves) in [
        ("description changed (1 entity re-rendered)", false),
        (
            "owner changed (the entity and both groups, ~2,500 relations each, re-rendered)",
            true,
        ),
    ] {
        let mut walls = Vec::new();
        let mut cpus = Vec::new();
        for round in 0..30 {
            let i = 4242 + round;
            let owner = if owner_moves {
                (i + 1 + round) % TEAMS
            } else {
                i % TEAMS
            };
            let yaml = component_yaml(i, owner, &format!("round {round} of {label}"));
            let key = EntityKey::new("component", "default", &format!("service-{i:06}"));
            let (wall, cpu) = (Instant::now(), process_cpu());
            let entities = process(&yaml, &unit(i)).await;
            let update = UnitUpdate {
                unit: unit(i),
                record: None,
                entities: Some(entities),
            };
            let problems = applier.apply("bench", vec![update]).await;
            let served = catalog.get(&key).expect("served");
            let (wall, cpu) = (wall.elapsed(), process_cpu().saturating_sub(cpu));
            assert!(problems.is_empty(), "{problems:?}");
            assert!(
                served.json.contains(&format!("round {round} of")),
                "the change is served"
            );
            walls.push(wall);
            cpus.push(cpu);
        }
        walls.sort();
        cpus.sort();
        println!(
            "{label} at {} entities: wall p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms; CPU p50 {:.2} ms, p95 {:.2} ms",
            catalog.len(),
            percentile(&walls, 0.5).as_secs_f64() * 1e3,
            percentile(&walls, 0.95).as_secs_f64() * 1e3,
            walls.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            percentile(&cpus, 0.5).as_secs_f64() * 1e3,
            percentile(&cpus, 0.95).as_secs_f64() * 1e3,
        );
    }
    applier.close().await;
    store.close().await;
}
