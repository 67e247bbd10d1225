//! `health`: the container health check. It reads the same configuration
//! layers as `serve` (files and `APP_CONFIG_*`), so it probes the port the
//! daemon really listens on, and needs no `curl` in the image.

use std::process::ExitCode;
use std::time::Duration;

use super::{Cli, exit};
use crate::config::ListenConfig;

/// Docker reserves exit code 2 in health checks, so every failure is 1.
pub(super) async fn probe(cli: &Cli, timeout: Duration) -> ExitCode {
    let loaded = match crate::config::Config::load(
        &cli.config_files(),
        &crate::config::Environment::from_process(),
    ) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("unhealthy: {err}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let Some(url) = readiness_url(&loaded.config.backend.listen) else {
        eprintln!(
            "unhealthy: backend.listen.port is 0 (a random port), so there is nothing to probe; set a port"
        );
        return ExitCode::from(exit::FAILED);
    };
    // Loopback only: a proxy from the environment must not answer for us.
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            eprintln!("unhealthy: cannot build an HTTP client: {err}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => {
            println!("ready: {url}");
            ExitCode::from(exit::OK)
        }
        Ok(response) => {
            let status = response.status();
            // The daemon's readiness body says why (loading, catching up…).
            let reason = response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|body| body["message"].as_str().map(|m| format!(": {m}")))
                .unwrap_or_default();
            eprintln!("unhealthy: {url} answered {status}{reason}");
            ExitCode::from(exit::FAILED)
        }
        Err(err) => {
            eprintln!("unhealthy: {url}: {}", causes(&err.without_url()));
            ExitCode::from(exit::FAILED)
        }
    }
}

/// The error and its causes (`connection refused`, a timeout…): reqwest's
/// own message says only "error sending request". The URL is printed once,
/// by the caller; it is the loopback readiness URL, which holds no secret.
fn causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Layers often repeat their cause's message; print it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The readiness endpoint on the listening address, reached over loopback
/// when the daemon listens on every interface.
fn readiness_url(listen: &ListenConfig) -> Option<String> {
    if listen.port == 0 {
        return None;
    }
    let host = match listen.host.as_str() {
        "" | "0.0.0.0" => "127.0.0.1".to_owned(),
        "::" | "[::]" => "[::1]".to_owned(),
        host if host.contains(':') && !host.starts_with('[') => format!("[{host}]"),
        host => host.to_owned(),
    };
    Some(format!(
        "http://{host}:{}/.backstage/health/v1/readiness",
        listen.port
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(host: &str, port: u16) -> ListenConfig {
        ListenConfig {
            host: host.into(),
            port,
            ..ListenConfig::default()
        }
    }

    #[test]
    fn every_interface_is_probed_over_loopback() {
        let url = |host, port| readiness_url(&listen(host, port));
        assert_eq!(
            url("0.0.0.0", 7008).as_deref(),
            Some("http://127.0.0.1:7008/.backstage/health/v1/readiness")
        );
        assert_eq!(
            url("::", 7007).as_deref(),
            Some("http://[::1]:7007/.backstage/health/v1/readiness")
        );
        assert_eq!(
            url("fd00::1", 7007).as_deref(),
            Some("http://[fd00::1]:7007/.backstage/health/v1/readiness")
        );
        assert_eq!(
            url("127.0.0.2", 7007).as_deref(),
            Some("http://127.0.0.2:7007/.backstage/health/v1/readiness")
        );
        assert_eq!(url("0.0.0.0", 0), None);
    }
}
