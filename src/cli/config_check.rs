//! `config check`: load and validate the configuration, print it with
//! secrets redacted and a one-line summary.

use std::process::ExitCode;

use super::{Cli, exit};

pub(super) fn config_check(cli: &Cli, strict: bool) -> ExitCode {
    let loaded = match cli.load_warned() {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let config = &loaded.config;
    match serde_saphyr::to_string(&config.redacted_tree()) {
        Ok(yaml) => print!("{yaml}"),
        Err(err) => {
            eprintln!("error: cannot print the config: {err}");
            return ExitCode::from(exit::FAILED);
        }
    }
    eprintln!(
        "config OK: listening on {}:{}, {} Bitbucket Server and {} Bitbucket Cloud integration(s), {} Server and {} Cloud provider(s), {} location(s); write endpoints {}",
        config.backend.listen.host,
        config.backend.listen.port,
        config.integrations.bitbucket_server.len(),
        if config.implicit_cloud_integration() {
            0
        } else {
            config.integrations.bitbucket_cloud.len()
        },
        config.providers.len(),
        config.cloud_providers.len(),
        config.locations.locations.len(),
        if config.backend.external_access.open {
            "are OPEN to anyone (backend.auth.dangerouslyDisableDefaultAuthPolicy)"
        } else if config.backend.external_access.protected {
            "need a backend.auth.externalAccess token"
        } else {
            "are closed (no backend.auth.externalAccess: every write answers 401)"
        }
    );
    let limits = &config.backend.api_rate_limit;
    eprintln!(
        "backend.apiRateLimit: requests that read Bitbucket (refresh, validate-entity, analyze-location) {} per caller and {} overall; API removals {}",
        limits.bitbucket_reads.per_caller, limits.bitbucket_reads.overall, limits.deletions
    );
    eprintln!(
        "backend.queryBudget: each query over the catalog may take {}; backend.trustedProxies: {}",
        config.backend.query_budget,
        match config.backend.trusted_proxies.len() {
            0 => "none (each connection's address is the client)".to_owned(),
            n => format!("{n} range(s) whose X-Forwarded-For names the client"),
        }
    );
    if strict && !loaded.warnings.is_empty() {
        eprintln!(
            "error: {} warning(s) and --strict: fix them or drop --strict",
            loaded.warnings.len()
        );
        return ExitCode::from(exit::CONFIG);
    }
    ExitCode::from(exit::OK)
}
