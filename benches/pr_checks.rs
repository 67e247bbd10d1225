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

use support::args::Args;
use support::latencies::Latencies;
use support::pushes::{PushEstate, SECRET};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pushes = Args::from_env().value("--prs").unwrap_or(300);
    let estate = PushEstate::start("        pullRequests: {checks: true}\n").await;
    let (sim, hook) = (&estate.sim, &estate.hook);
    println!(
        "{}; {pushes} pull requests over {} repositories",
        estate.served().await,
        estate.targets.len()
    );
    sim.reset_stats();
    let mut latencies = Vec::with_capacity(pushes);
    for i in 0..pushes {
        let (repo, name) = &estate.targets[i % estate.targets.len()];
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
        let status = event.deliver(hook, Some(SECRET)).await.expect("delivered");
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
    let stats = sim.stats();
    println!(
        "event → report posted over {pushes} pull requests: {}",
        Latencies::new(latencies).summary()
    );
    println!(
        "Bitbucket requests: {} for {pushes} pull requests = {:.2} per pull request",
        stats.requests,
        stats.requests as f64 / pushes as f64
    );
    estate.shutdown().await;
}
