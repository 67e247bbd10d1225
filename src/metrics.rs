//! Prometheus metrics. One process-wide recorder (installed on first use),
//! rendered at `GET /metrics`. A leaf: callers hand it plain values.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const RUN_DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
];
const PUSH_SERVED_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
const API_LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once; later calls return the same handle. `None`
/// if another recorder was installed first (metrics are then not exported).
pub(crate) fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full("catalog_provider_run_duration_seconds".into()), RUN_DURATION_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full("http_server_request_duration_seconds".into()), API_LATENCY_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full("catalog_webhook_push_served_seconds".into()), PUSH_SERVED_BUCKETS))
                .map(PrometheusBuilder::build_recorder);
            match recorder {
                Ok(recorder) => {
                    let handle = recorder.handle();
                    match metrics::set_global_recorder(recorder) {
                        Ok(()) => Some(handle),
                        Err(err) => {
                            tracing::warn!(error = %err, "metrics recorder already installed; /metrics stays empty");
                            None
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot build the metrics recorder");
                    None
                }
            }
        })
        .clone()
}

/// Keeps histograms from growing without bound; call every few seconds.
pub(crate) fn upkeep() {
    if let Some(handle) = handle() {
        handle.run_upkeep();
    }
}

pub(crate) fn render() -> String {
    handle().map(|h| h.render()).unwrap_or_default()
}

/// A finished run: `outcome` is `succeeded`, `failed` or `held`.
pub(crate) fn record_run(
    provider: &str,
    outcome: &'static str,
    duration: Duration,
    entities_served: usize,
    problems: usize,
) {
    let provider = provider.to_owned();
    metrics::counter!("catalog_provider_runs_total", "provider" => provider.clone(), "outcome" => outcome).increment(1);
    metrics::histogram!("catalog_provider_run_duration_seconds", "provider" => provider.clone())
        .record(duration.as_secs_f64());
    metrics::gauge!("catalog_provider_entities", "provider" => provider.clone())
        .set(entities_served as f64);
    metrics::gauge!("catalog_provider_problems", "provider" => provider).set(problems as f64);
}

/// The outcomes [`record_run`] labels runs with.
const RUN_OUTCOMES: [&str; 3] = ["succeeded", "failed", "held"];

/// A provider's series that alert rules read, present from start-up:
/// `increase()` misses the first event of a series that did not exist
/// before it. `problems` and `last_success` come from the run stored
/// before the restart; with none, the provider counts as succeeded at
/// start-up, so "no successful run in 2 hours" fires for a provider that
/// has never succeeded too (an absent gauge never alerts).
pub(crate) fn register_provider(provider: &str, problems: usize, last_success: f64) {
    let _ = handle();
    for outcome in RUN_OUTCOMES {
        metrics::counter!("catalog_provider_runs_total", "provider" => provider.to_owned(), "outcome" => outcome).increment(0);
    }
    metrics::counter!("catalog_provider_deletions_held_total", "provider" => provider.to_owned())
        .increment(0);
    metrics::gauge!("catalog_provider_problems", "provider" => provider.to_owned())
        .set(problems as f64);
    record_last_success(provider, last_success);
}

/// A listing sweep finished: `outcome` is `succeeded`, `failed`, `held`
/// or `skipped` (a full run was in progress).
pub(crate) fn record_sweep(provider: &str, outcome: &'static str) {
    metrics::counter!("catalog_provider_listing_sweeps_total", "provider" => provider.to_owned(), "outcome" => outcome).increment(1);
}

/// A run held by the deletion guard.
pub(crate) fn record_held(provider: &str) {
    metrics::counter!("catalog_provider_deletions_held_total", "provider" => provider.to_owned())
        .increment(1);
}

/// One webhook event (or refresh) handled: `integration` is the host it
/// came through; `outcome` is `applied`, `ignored`, `held`, `failed` or
/// `rejected` (bad signature, too large, unreadable).
pub(crate) fn record_event_outcome(integration: &str, event: &str, outcome: &'static str) {
    metrics::counter!(
        "catalog_webhook_events_total",
        "integration" => integration.to_owned(),
        "type" => event.to_owned(),
        "outcome" => outcome
    )
    .increment(1);
}

/// The change feed: its last sequence number, the horizon below which a
/// cursor is `410 Gone`, and the removals it retains.
pub(crate) fn record_change_feed(last_sequence: u64, horizon: u64, retained_removals: usize) {
    metrics::gauge!("catalog_changes_last_sequence").set(last_sequence as f64);
    metrics::gauge!("catalog_changes_horizon").set(horizon as f64);
    metrics::gauge!("catalog_changes_retained_removals").set(retained_removals as f64);
}

/// From a push event's arrival to its change being served.
pub(crate) fn record_push_served(provider: &str, elapsed: Duration) {
    metrics::histogram!("catalog_webhook_push_served_seconds", "provider" => provider.to_owned())
        .record(elapsed.as_secs_f64());
}

/// A provider's repositories by whether they have a catalog file.
pub(crate) fn record_repositories(provider: &str, present: usize, missing: usize, unknown: usize) {
    for (state, count) in [
        ("present", present),
        ("missing", missing),
        ("unknown", unknown),
    ] {
        metrics::gauge!("catalog_provider_repositories", "provider" => provider.to_owned(), "catalog" => state).set(count as f64);
    }
}

/// One request to Bitbucket: `host` is the integration's, `endpoint` the
/// kind (`projects`, `repos`, `raw`…).
pub(crate) fn record_bitbucket_request(host: &str, endpoint: &'static str, status: &str) {
    metrics::counter!("bitbucket_requests_total", "host" => host.to_owned(), "endpoint" => endpoint, "status" => status.to_owned()).increment(1);
}

/// `bitbucketcatalogd_build_info{version} 1`, set once at start-up.
pub(crate) fn record_build_info(version: &'static str) {
    // Set once, so the recorder must be in place before (it installs on first use).
    let _ = handle();
    metrics::gauge!("bitbucketcatalogd_build_info", "version" => version).set(1.0);
}

/// When the provider's last run succeeded (Unix seconds), for "no
/// successful run in 2 hours" alerts.
pub(crate) fn record_last_success(provider: &str, unix_seconds: f64) {
    metrics::gauge!("catalog_provider_last_success_timestamp_seconds", "provider" => provider.to_owned())
        .set(unix_seconds);
}

pub(crate) fn record_api_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    metrics::histogram!(
        "http_server_request_duration_seconds",
        "method" => method.to_owned(),
        "route" => route.to_owned(),
        "status" => status.to_string()
    )
    .record(elapsed.as_secs_f64());
}

/// This replica's role (1 when it leads) and how far behind the leader's
/// changes it serves (changes, and seconds since it last read them).
pub(crate) fn record_replica(leader: bool, lag_changes: u64, lag_seconds: f64) {
    metrics::gauge!("catalog_replica_leader").set(if leader { 1.0 } else { 0.0 });
    metrics::gauge!("catalog_replica_lag_changes").set(lag_changes as f64);
    metrics::gauge!("catalog_replica_lag_seconds").set(lag_seconds);
    metrics::counter!("catalog_replica_leader_changes_total").increment(0);
}

/// This replica became the leader.
pub(crate) fn record_leader_change() {
    metrics::counter!("catalog_replica_leader_changes_total").increment(1);
}

/// The outcomes [`record_config_reload`] labels reloads with.
const RELOAD_OUTCOMES: [&str; 2] = ["applied", "refused"];

/// The reload series, present from start-up (at 0, last reload counted as
/// a success), so an alert on `increase(…{outcome="refused"})` sees the first one.
pub(crate) fn register_config_reloads() {
    let _ = handle();
    for outcome in RELOAD_OUTCOMES {
        metrics::counter!("catalog_config_reloads_total", "outcome" => outcome).increment(0);
    }
    metrics::gauge!("catalog_config_last_reload_success").set(1.0);
}

/// A config reload: `applied` or `refused` (the daemon kept its config).
pub(crate) fn record_config_reload(outcome: &'static str, unix_seconds: f64) {
    metrics::counter!("catalog_config_reloads_total", "outcome" => outcome).increment(1);
    metrics::gauge!("catalog_config_last_reload_success").set(if outcome == "applied" {
        1.0
    } else {
        0.0
    });
    metrics::gauge!("catalog_config_last_reload_timestamp_seconds").set(unix_seconds);
}

/// Pull-request previews dropped past their per-provider bounds.
pub(crate) fn record_previews_dropped(provider: &str, count: usize) {
    metrics::counter!("catalog_pull_request_previews_dropped_total", "provider" => provider.to_owned())
        .increment(count as u64);
}

/// The status page was built (not served from its cache).
pub(crate) fn record_status_page_build() {
    metrics::counter!("catalog_status_page_builds_total").increment(1);
}

/// An integration as the pacer sees it, set at each scrape: the pace in
/// force (0 when not paced), whether requests wait out a `Retry-After`
/// now, and its answers and 429s since start-up.
pub(crate) fn record_integration(
    host: &str,
    pace_per_second: Option<f64>,
    blocked: bool,
    answered: u64,
    rate_limited: u64,
) {
    let host = host.to_owned();
    metrics::gauge!("bitbucket_integration_paced", "host" => host.clone())
        .set(if pace_per_second.is_some() { 1.0 } else { 0.0 });
    metrics::gauge!("bitbucket_integration_pace_requests_per_second", "host" => host.clone())
        .set(pace_per_second.unwrap_or(0.0));
    metrics::gauge!("bitbucket_integration_rate_limit_blocked", "host" => host.clone())
        .set(if blocked { 1.0 } else { 0.0 });
    metrics::counter!("bitbucket_integration_responses_total", "host" => host.clone())
        .absolute(answered);
    metrics::counter!("bitbucket_integration_rate_limited_total", "host" => host)
        .absolute(rate_limited);
}

/// An integration's adaptive concurrency, set at each scrape: requests
/// allowed in flight now, and in flight now.
pub(crate) fn record_concurrency(host: &str, limit: usize, in_flight: usize) {
    metrics::gauge!("bitbucket_integration_concurrency_limit", "host" => host.to_owned())
        .set(limit as f64);
    metrics::gauge!("bitbucket_integration_requests_in_flight", "host" => host.to_owned())
        .set(in_flight as f64);
}

/// An integration's budget, set at each scrape: `rateLimit.share` (0 when
/// none), the fixed ceiling in requests per second (0 when none), the
/// refill rate learnt (0 when none) and what it used over the last ~10 s.
pub(crate) fn record_integration_budget(
    host: &str,
    share: Option<f64>,
    ceiling_per_second: Option<f64>,
    refill_per_second: Option<f64>,
    used_per_second: f64,
) {
    let host = host.to_owned();
    metrics::gauge!("bitbucket_integration_budget_share", "host" => host.clone())
        .set(share.unwrap_or(0.0));
    metrics::gauge!("bitbucket_integration_budget_ceiling_requests_per_second", "host" => host.clone())
        .set(ceiling_per_second.unwrap_or(0.0));
    metrics::gauge!("bitbucket_integration_refill_requests_per_second", "host" => host.clone())
        .set(refill_per_second.unwrap_or(0.0));
    metrics::gauge!("bitbucket_integration_used_requests_per_second", "host" => host)
        .set(used_per_second);
}

/// A provider's current run, set at each scrape: whether one is in
/// progress, and its repositories by state (all 0 between runs).
pub(crate) fn record_run_progress(provider: &str, in_progress: bool, progress: RunProgress) {
    let provider = provider.to_owned();
    metrics::gauge!("catalog_provider_run_in_progress", "provider" => provider.clone())
        .set(if in_progress { 1.0 } else { 0.0 });
    metrics::gauge!("catalog_provider_run_reads_per_second", "provider" => provider.clone())
        .set(progress.reads_per_second);
    for (state, count) in [
        ("listed", progress.listed),
        ("unchanged", progress.unchanged),
        ("to_read", progress.to_read),
        ("read", progress.read),
        ("remaining", progress.remaining),
    ] {
        metrics::gauge!("catalog_provider_run_reads", "provider" => provider.clone(), "state" => state)
            .set(count as f64);
    }
}

/// What [`record_run_progress`] shows of a run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RunProgress {
    pub listed: usize,
    pub unchanged: usize,
    pub to_read: usize,
    pub read: usize,
    pub remaining: usize,
    pub reads_per_second: f64,
}

/// A daemon without replicas leads itself and lags nothing: the replica
/// series exist on every daemon, so one dashboard fits both.
pub(crate) fn record_standalone() {
    record_replica(true, 0, 0.0);
}

#[cfg(test)]
mod tests {
    /// The shipped alert rules name only metrics this module exports.
    #[test]
    fn example_alert_rules_use_exported_metrics() {
        let rules: serde_json::Value =
            serde_saphyr::from_str(include_str!("../deploy/prometheus/alerts.yaml"))
                .expect("alerts.yaml is YAML");
        let source = include_str!("metrics.rs");
        let metric =
            regex::Regex::new(r"\b(?:catalog|bitbucket)[a-z]*_[a-z_]+\b").expect("valid regex");
        let mut checked = 0;
        for group in rules["groups"].as_array().expect("groups") {
            for rule in group["rules"].as_array().expect("rules") {
                let expr = rule["expr"].as_str().expect("expr");
                for name in metric.find_iter(expr).map(|m| m.as_str()) {
                    assert!(
                        source.contains(&format!("\"{name}\"")),
                        "{name} in deploy/prometheus/alerts.yaml is not exported"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 6, "only {checked} metric names found");
    }
}
