//! Backstage following the daemon: `cargo bench --bench backstage`
//! (needs `npm ci --prefix integrations/backstage && npm run build --prefix
//! integrations/backstage`, and PostgreSQL on 127.0.0.1:5432). 10,000 components in a simulated Data Center, read by
//! the daemon (`serve` in a child process); then Backstage's catalog
//! backend with the module in `integrations/backstage` syncs them all and
//! follows 50 pushes. Prints the time until all are visible through
//! Backstage's API, push → visible p50/p99, and the Bitbucket requests made
//! for Backstage (there should be none).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bitbucket_sim::{DatasetConfig, SimConfig, Simulator};
use support::Daemon;
use support::sim::SimProviderConfig;

const SECRET: &str = "bench-secret";
const PUSHES: usize = 50;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/backstage");
    let sim = Simulator::start(SimConfig {
        seed: 5,
        dataset: DatasetConfig::components_only(200, 50),
        webhook_secret: Some(SECRET.into()),
        ..Default::default()
    })
    .await
    .expect("simulator");
    let daemon = Daemon::spawn(
        &SimProviderConfig::new(&sim)
            .webhook_secret(SECRET)
            .schedule("frequency: { hours: 24 }, timeout: { minutes: 30 }")
            .yaml(),
    );
    let client = reqwest::Client::new();
    let expected = sim.dataset().server_repos().count();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let status: Option<serde_json::Value> = match client
            .get(format!("{}/api/catalog/providers/sim", daemon.base))
            .send()
            .await
        {
            Ok(r) => r.json().await.ok(),
            Err(_) => None,
        };
        if status.is_some_and(|s| s["inProgress"] == false && s["entities"] == expected) {
            break;
        }
    }
    println!("the daemon serves {expected} components");
    let pushes: Vec<String> = sim
        .dataset()
        .server_repos()
        .step_by(expected / PUSHES)
        .take(PUSHES)
        .map(|r| format!("{}/{}", r.project_key, r.slug))
        .collect();
    let status = Command::new("node")
        .arg("dist/bench/sync.js")
        .env("CATALOGD_URL", &daemon.base)
        .env("SIM_URL", sim.base_url())
        .env("PUSHES", serde_json::to_string(&pushes).expect("JSON"))
        .env("EXPECTED", expected.to_string())
        .current_dir(&module)
        .status()
        .expect(
            "node runs (build the module first: npm run build --prefix integrations/backstage)",
        );
    assert!(status.success());
    drop(daemon);
    sim.shutdown().await;
}
