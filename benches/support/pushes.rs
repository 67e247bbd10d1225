//! The estate the push and pull-request benches change: a simulated Data
//! Center of 2,000 repositories (40 projects × 50, 60 % with one
//! Component), the daemon serving it through provider `sim` with a
//! webhook secret, after its start-up run.

use bitbucket_sim::{DatasetConfig, FileKind, FileMix, RepoRef, SimConfig, Simulator};

use super::Daemon;
use super::sim::SimProviderConfig;

/// The integration's `webhookSecret`, which every delivery is signed with.
pub const SECRET: &str = "bench-secret";

pub struct PushEstate {
    pub sim: Simulator,
    /// Each repository holding a Component, with that Component's name.
    pub targets: Vec<(RepoRef, String)>,
    pub daemon: Daemon,
    pub http: reqwest::Client,
    /// Where Data Center's webhooks are delivered.
    pub hook: String,
}

impl PushEstate {
    /// Starts the simulator and the daemon (`provider_extra`: more keys of
    /// provider `sim`, indented under it) and waits for the start-up run.
    pub async fn start(provider_extra: &str) -> Self {
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
        let targets = sim
            .dataset()
            .server_repos()
            .filter(|r| r.file_kind == FileKind::Component && !r.archived)
            .filter_map(|r| {
                let name = r.entity_refs.first()?.rsplit('/').next()?.to_owned();
                let repo = RepoRef::Server {
                    project: r.project_key.clone(),
                    slug: r.slug.clone(),
                };
                Some((repo, name))
            })
            .collect();
        let daemon = Daemon::spawn(
            &SimProviderConfig::new(&sim)
                .webhook_secret(SECRET)
                .provider_extra(provider_extra)
                .schedule("frequency: { hours: 24 }, timeout: { minutes: 15 }")
                .yaml(),
        );
        let http = reqwest::Client::new();
        daemon.first_run(&http, "sim").await;
        let hook = format!("{}/api/events/http/bitbucketServer", daemon.base);
        Self {
            sim,
            targets,
            daemon,
            http,
            hook,
        }
    }

    /// `N repositories, M entities served`.
    pub async fn served(&self) -> String {
        let served = self.daemon.entities(&self.http, "kind").await;
        format!(
            "{} repositories, {} entities served",
            self.sim.dataset().server_repos().count(),
            served.as_array().map_or(0, Vec::len)
        )
    }

    /// Stops the daemon, then the simulator.
    pub async fn shutdown(self) {
        drop(self.daemon);
        self.sim.shutdown().await;
    }
}
