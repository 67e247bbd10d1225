//! Pull-request event → check posted on loopback:
//! `cargo bench --bench pr_checks [-- --prs N]` (default 300 pull requests
//! over a 2,000-repository Data Center simulator with no rate limit).
//!
//! The daemon runs as `serve` in a child process with a SQLite store, a
//! `webhookSecret` and `pullRequests: {checks: true}`; after its start-up
//! run, each pull request changes one repository's `catalog-info.yaml`
//! (one entity changed, one added) and delivers the signed `pr:opened`;
//! the bench then polls the simulator until the Code Insights report is
//! posted on the source commit. Prints p50/p90/p99/max of event → report
//! posted and the Bitbucket requests per pull request.

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
        .position(|a| a == "--prs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
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
        "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\n      webhookSecret: {SECRET}\ncatalog:\n  providers:\n    bitbucketServer:\n      sim:\n        host: {host}\n        pullRequests: {{checks: true}}\n        schedule:\n          frequency: {{ hours: 24 }}\n          timeout: {{ minutes: 15 }}\n",
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
        "{} repositories, {entities} entities served; {pushes} pull requests over {} repositories",
        dataset.server_repos().count(),
        targets.len()
    );
    sim.reset_stats();
    let hook = format!("{base}/api/events/http/bitbucketServer");
    let mut latencies = Vec::with_capacity(pushes);
    for i in 0..pushes {
        let (repo, name) = &targets[i % targets.len()];
        let content = format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n  description: pr {i}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}-pr-{i}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n"
        );
        let (_, event) = sim
            .open_pull_request(
                repo,
                &format!("feature/{i}"),
                "bench",
                vec![("catalog-info.yaml".into(), Some(content))],
            )
            .expect("pull request");
        let commit = event.commit.clone().expect("commit");
        let started = Instant::now();
        let status = event.deliver(&hook, Some(SECRET)).await.expect("delivered");
        assert_eq!(status, 202);
        loop {
            let posted = sim
                .posted_checks()
                .iter()
                .rev()
                .take(4)
                .any(|p| p.kind == "report" && p.commit == commit);
            if posted {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "pull request {i} was not reported within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
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
        "event → report posted over {pushes} pull requests: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(latencies[latencies.len() - 1])
    );
    println!(
        "Bitbucket requests: {} for {pushes} pull requests = {:.2} per pull request",
        stats.requests,
        stats.requests as f64 / pushes as f64
    );
    drop(daemon);
    sim.shutdown().await;
}
