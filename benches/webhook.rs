//! Push → served on loopback: `cargo bench --bench webhook [-- --pushes N]`
//! (default 1,000 pushes over a 2,000-repository Data Center simulator
//! with no rate limit, so no pace waits).
//!
//! The daemon runs as `serve` in a child process with a SQLite store and a
//! `webhookSecret`; after its start-up run, each push changes one
//! repository's `catalog-info.yaml` in the simulator and delivers the
//! signed `repo:refs_changed`; the bench then polls the entity until the
//! change is served. Prints p50/p90/p99/max of push → served and the
//! Bitbucket requests per push.

mod support;

use std::time::{Duration, Instant};

use bitbucket_sim::{DatasetConfig, FileKind, FileMix, RepoRef, SimConfig, Simulator};
use support::Daemon;

const SECRET: &str = "bench-secret";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pushes: usize = args
        .iter()
        .position(|a| a == "--pushes")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let sim = Simulator::start(SimConfig {
        seed: 3,
        dataset: DatasetConfig {
            projects: 40,
            repos_per_project: 50,
            catalog_ratio: 0.6,
            mix: FileMix {
                component: 1.0,
                ..FileMix::default()
            },
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("simulator");
    let dataset = sim.dataset().clone();
    let targets: Vec<(RepoRef, String)> = dataset
        .server_repos()
        .filter(|r| r.file_kind == FileKind::Component && !r.archived)
        .filter_map(|r| {
            let name = r.entity_refs.first()?.rsplit('/').next()?.to_owned();
            Some((
                RepoRef::Server {
                    project: r.project_key.clone(),
                    slug: r.slug.clone(),
                },
                name,
            ))
        })
        .collect();

    let daemon = Daemon::spawn(&format!(
        "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\n      webhookSecret: {SECRET}\ncatalog:\n  providers:\n    bitbucketServer:\n      sim:\n        host: {host}\n        schedule:\n          frequency: {{ hours: 24 }}\n          timeout: {{ minutes: 15 }}\n",
        host = sim.host(),
        api = sim.server_api_base()
    ));
    let client = reqwest::Client::new();
    let base = daemon.base.clone();
    // The start-up run, complete.
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let status: Option<serde_json::Value> = match client
            .get(format!("{base}/api/catalog/providers/sim"))
            .send()
            .await
        {
            Ok(r) => r.json().await.ok(),
            Err(_) => None,
        };
        if status.is_some_and(|s| !s["lastRun"].is_null() && s["inProgress"] == false) {
            break;
        }
    }
    let entities = client
        .get(format!("{base}/api/catalog/entities?fields=kind"))
        .send()
        .await
        .expect("entities")
        .json::<serde_json::Value>()
        .await
        .expect("JSON")
        .as_array()
        .map_or(0, Vec::len);
    println!(
        "{} repositories, {entities} entities served; {pushes} pushes over {} repositories",
        dataset.server_repos().count(),
        targets.len()
    );
    sim.reset_stats();
    let hook = format!("{base}/api/events/http/bitbucketServer");
    let mut latencies = Vec::with_capacity(pushes);
    for i in 0..pushes {
        let (repo, name) = &targets[i % targets.len()];
        let description = format!("push {i}");
        let content = format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n  description: {description}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n"
        );
        let event = sim
            .push_file(repo, "catalog-info.yaml", &content)
            .expect("push");
        let started = Instant::now();
        let status = event.deliver(&hook, Some(SECRET)).await.expect("delivered");
        assert_eq!(status, 202);
        let url = format!("{base}/api/catalog/entities/by-name/component/default/{name}");
        loop {
            let served: Option<serde_json::Value> = match client.get(&url).send().await {
                Ok(r) => r.json().await.ok(),
                Err(_) => None,
            };
            if served.is_some_and(|e| e["metadata"]["description"] == description.as_str()) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "push {i} was not served within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let at = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let stats = sim.stats();
    println!(
        "push → served over {pushes} pushes: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(latencies[latencies.len() - 1])
    );
    println!(
        "Bitbucket requests: {} for {pushes} pushes = {:.2} per push",
        stats.requests,
        stats.requests as f64 / pushes as f64
    );
    drop(daemon);
    sim.shutdown().await;
}
