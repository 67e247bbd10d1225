//! The integration tests: one binary, one module per behaviour area, so the
//! crate is linked once instead of once per file (zero2prod's
//! `tests/api/main.rs`). Shared fakes and the spawned app live in
//! [`support`]. Run one area with e.g.
//! `cargo nextest run --test it -E 'test(/^config::/)'`. The one test that
//! reads the process-wide metrics registry whole lives in `tests/metrics`,
//! so that plain `cargo test` (one process per binary) still passes.

mod support;

mod backstage_module;
mod catalog_api;
mod catalog_client;
mod catalog_processing;
mod changes;
mod cli;
mod cloud_ceiling;
mod cloud_discovery;
mod cloud_sim;
mod config;
mod credentials;
mod default_branch;
mod deploy;
mod fair;
mod fan_out;
mod generated;
mod globs;
mod hardening;
mod helm_chart;
mod listing_sweep;
mod locations;
mod pacing_lanes;
mod pacing_share;
mod persistence;
mod plan;
mod postgres;
mod pr_checks;
mod pr_previews;
mod problem_positions;
mod progressive;
mod queries;
mod reconciliation;
mod reload;
mod replicas;
mod resilience;
mod safety;
mod safety_lanes;
mod safety_leftovers;
mod safety_pace_config;
mod safety_validate;
mod scheduling;
mod server_discovery;
mod status_page;
mod telemetry;
mod validate;
mod webhooks;
