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

use support::args::Args;
use support::latencies::Latencies;
use support::pushes::{PushEstate, SECRET};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pushes = Args::from_env().value("--pushes").unwrap_or(1000);
    let estate = PushEstate::start("").await;
    let (sim, client, base) = (&estate.sim, &estate.http, &estate.daemon.base);
    println!(
        "{}; {pushes} pushes over {} repositories",
        estate.served().await,
        estate.targets.len()
    );
    sim.reset_stats();
    let mut latencies = Vec::with_capacity(pushes);
    for i in 0..pushes {
        let (repo, name) = &estate.targets[i % estate.targets.len()];
        let description = format!("push {i}");
        let content = format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n  description: {description}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n"
        );
        let event = sim
            .push_file(repo, "catalog-info.yaml", &content)
            .expect("push");
        let started = Instant::now();
        let status = event
            .deliver(&estate.hook, Some(SECRET))
            .await
            .expect("delivered");
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
    let stats = sim.stats();
    println!(
        "push → served over {pushes} pushes: {}",
        Latencies::new(latencies).summary()
    );
    println!(
        "Bitbucket requests: {} for {pushes} pushes = {:.2} per push",
        stats.requests,
        stats.requests as f64 / pushes as f64
    );
    estate.shutdown().await;
}
