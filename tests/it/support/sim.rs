//! The simulator set-ups the integration tests and the benchmarks share
//! (`benches/support` includes this file by path).

use bitbucket_sim::{DatasetConfig, SimConfig, Simulator};

/// A simulated Bitbucket Server of `projects` × `repos` repositories, each
/// holding one plain Component and none archived
/// ([`DatasetConfig::components_only`]).
pub async fn components_simulator(projects: usize, repos: usize) -> Simulator {
    Simulator::start(SimConfig {
        dataset: DatasetConfig::components_only(projects, repos),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// The daemon's config for one Server provider `sim` on a simulator's Data
/// Center. Unless told otherwise it runs only when asked
/// (`trigger: manual`) and its integration has no webhook secret.
pub struct SimProviderConfig {
    host: String,
    api: String,
    webhook_secret: Option<String>,
    schedule: String,
    other_integrations: String,
    provider_extra: String,
    catalog_extra: String,
}

impl SimProviderConfig {
    pub fn new(sim: &Simulator) -> Self {
        Self {
            host: sim.host(),
            api: sim.server_api_base(),
            webhook_secret: None,
            schedule: "frequency: {trigger: manual}".into(),
            other_integrations: String::new(),
            provider_extra: String::new(),
            catalog_extra: String::new(),
        }
    }

    /// The integration's `webhookSecret`.
    pub fn webhook_secret(mut self, secret: &str) -> Self {
        self.webhook_secret = Some(secret.into());
        self
    }

    /// The schedule's keys as one flow mapping's content, e.g.
    /// `frequency: {minutes: 30}, timeout: {minutes: 5}`.
    pub fn schedule(mut self, keys: &str) -> Self {
        self.schedule = keys.into();
        self
    }

    /// A second Server integration (for locations on another host).
    pub fn integration(mut self, host: &str, api_base: &str) -> Self {
        self.other_integrations += &format!("    - host: {host}\n      apiBaseUrl: {api_base}\n");
        self
    }

    /// Extra integration keys, indented under the simulator's entry.
    pub fn integration_extra(mut self, yaml: &str) -> Self {
        self.other_integrations = format!("{yaml}{}", self.other_integrations);
        self
    }

    /// Extra provider keys, indented under the provider.
    pub fn provider_extra(mut self, yaml: &str) -> Self {
        self.provider_extra += yaml;
        self
    }

    /// Extra `catalog` keys, indented under `catalog`.
    pub fn catalog_extra(mut self, yaml: &str) -> Self {
        self.catalog_extra += yaml;
        self
    }

    pub fn yaml(&self) -> String {
        let secret = self
            .webhook_secret
            .as_ref()
            .map(|s| format!("      webhookSecret: {s}\n"))
            .unwrap_or_default();
        format!(
            "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\n{secret}{others}catalog:\n{catalog}  providers:\n    bitbucketServer:\n      sim:\n        host: {host}\n{provider}        schedule: {{{schedule}}}\n",
            host = self.host,
            api = self.api,
            others = self.other_integrations,
            catalog = self.catalog_extra,
            provider = self.provider_extra,
            schedule = self.schedule,
        )
    }
}
