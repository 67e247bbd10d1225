//! `plan`: what the given configuration would change against the store it
//! names, without writing anything. Each provider is listed (listing
//! requests only, no catalog file read) and compared with what the store,
//! opened read-only, holds for it.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::ValueEnum;
use serde::Serialize;

use super::{Cli, exit};
use crate::app::build_sources;
use crate::config::Config;
use crate::discovery::plan_diff::{self, ProviderDiff, Stored};
use crate::discovery::{Source, plan_diff::removal_held};
use crate::store;

/// How `plan` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// For people.
    Table,
    /// For CI.
    Json,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    store: String,
    providers: Vec<ProviderPlan>,
    providers_added: Vec<String>,
    providers_removed: Vec<RemovedProvider>,
    would_remove: bool,
    errors: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProviderPlan {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    target: String,
    /// In the configuration but nothing stored for it yet.
    added: bool,
    #[serde(flatten)]
    diff: Option<ProviderDiff>,
    /// Listing requests plus one per repository read (more with globs).
    requests: Option<u64>,
    /// The integration's fixed pace; `None`: not paced until a 429.
    requests_per_second: Option<f64>,
    /// `requests` at that pace.
    estimated_seconds: Option<f64>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RemovedProvider {
    id: String,
    removed_entities: Vec<String>,
    /// Whether the default deletion guard would hold this removal.
    guard_holds: bool,
}

pub(super) async fn plan(cli: &Cli, format: PlanFormat) -> ExitCode {
    let loaded = match cli.load_warned() {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let config = &loaded.config;
    let sources = match build_sources(config) {
        Ok(built) => built.sources,
        Err(err) => return exit::config_error(err),
    };
    let stored = match store::read_only::snapshot(&config.backend.database).await {
        Ok(stored) => stored.unwrap_or_default(),
        Err(err) => return exit::config_error(err),
    };
    let report = compare(config, &sources, &stored).await;
    let printed = match format {
        PlanFormat::Json => serde_json::to_string_pretty(&report)
            .map(|text| println!("{text}"))
            .map_err(|err| err.to_string()),
        PlanFormat::Table => {
            print!("{}", table(&report));
            Ok(())
        }
    };
    if let Err(err) = printed {
        eprintln!("error: cannot write the plan: {err}");
        return ExitCode::from(exit::CONFIG);
    }
    ExitCode::from(if report.errors > 0 {
        exit::CONFIG
    } else if report.would_remove {
        exit::REMOVES
    } else {
        exit::OK
    })
}

async fn compare(config: &Config, sources: &[Source], stored: &BTreeMap<String, Stored>) -> Report {
    let empty = Stored::default();
    let providers = futures::future::join_all(sources.iter().map(|source| async {
        let held = stored.get(source.id());
        let diff = plan_diff::list_and_compare(source, held.unwrap_or(&empty)).await?;
        let pace = plan_diff::host(source).and_then(|host| {
            let http = match source {
                Source::Cloud(_) => config.integrations.cloud(host).map(|i| &i.http),
                _ => config.integrations.server(host).map(|i| &i.http),
            };
            http.and_then(|h| h.rate_limit)
        });
        let rps = pace.map(|p| p.requests_per_second).filter(|r| *r > 0.0);
        let (diff, error) = match diff {
            Ok(diff) => (Some(diff), None),
            Err(error) => (None, Some(error)),
        };
        let requests = diff
            .as_ref()
            .map(|d| d.listing_requests + d.reads.len() as u64);
        Some(ProviderPlan {
            id: source.id().to_owned(),
            kind: source.kind(),
            target: source.target().to_owned(),
            added: held.is_none(),
            requests,
            requests_per_second: rps,
            estimated_seconds: requests.zip(rps).map(|(n, rps)| n as f64 / rps),
            diff,
            error,
        })
    }))
    .await
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    let configured: Vec<&str> = config.provider_ids();
    let providers_removed: Vec<RemovedProvider> = stored
        .iter()
        .filter(|(id, _)| !id.starts_with("location:") && !configured.contains(&id.as_str()))
        .map(|(id, held)| {
            let mut removed_entities: Vec<String> =
                held.entities.iter().map(|(_, r)| r.clone()).collect();
            removed_entities.sort();
            RemovedProvider {
                id: id.clone(),
                guard_holds: removal_held(removed_entities.len()),
                removed_entities,
            }
        })
        .collect();
    let would_remove = providers_removed
        .iter()
        .any(|p| !p.removed_entities.is_empty())
        || providers.iter().any(|p| {
            p.diff
                .as_ref()
                .is_some_and(|d| !d.removed_entities.is_empty())
        });
    Report {
        store: store::location(&config.backend.database),
        providers_added: providers
            .iter()
            .filter(|p| p.added)
            .map(|p| p.id.clone())
            .collect(),
        errors: providers.iter().filter(|p| p.error.is_some()).count(),
        providers,
        providers_removed,
        would_remove,
    }
}

/// `label (n): a, b, c`, or `label: none`.
fn list(label: &str, items: &[String]) -> String {
    if items.is_empty() {
        format!("  {label}: none\n")
    } else {
        format!("  {label} ({}): {}\n", items.len(), items.join(", "))
    }
}

fn table(report: &Report) -> String {
    let mut out = format!("store: {} (read only)\n", report.store);
    for p in &report.providers {
        let state = if p.added { "added" } else { "kept" };
        out += &format!("\nprovider {} ({}, {}): {state}\n", p.id, p.kind, p.target);
        if let Some(error) = &p.error {
            out += &format!("  error: the listing failed: {error}\n");
            continue;
        }
        let Some(d) = &p.diff else { continue };
        out += &list("entering the filters", &d.entering);
        out += &list("leaving the filters", &d.leaving);
        out += &list(
            &format!("entities removed, of {}", d.entities_now),
            &d.removed_entities,
        );
        if !d.removed_entities.is_empty() {
            out += if d.guard_holds {
                "  deletion guard: would HOLD the run (nothing removed until forced)\n"
            } else {
                "  deletion guard: lets the removal through\n"
            };
        }
        out += &list("repositories read", &d.reads);
        let requests = p.requests.unwrap_or(0);
        out += &format!(
            "  requests: {} listing + {} reads = {requests}; ",
            d.listing_requests,
            d.reads.len()
        );
        out += &match (p.requests_per_second, p.estimated_seconds) {
            (Some(rps), Some(seconds)) => {
                format!("{seconds:.1} s at {rps} requests/s\n")
            }
            _ => "no fixed pace (rateLimit unset)\n".to_owned(),
        };
    }
    out += "\n";
    out += &format!(
        "providers added: {}\n",
        if report.providers_added.is_empty() {
            "none".to_owned()
        } else {
            report.providers_added.join(", ")
        }
    );
    if report.providers_removed.is_empty() {
        out += "providers removed: none\n";
    }
    for p in &report.providers_removed {
        out += &format!(
            "provider removed: {} ({} entities{})\n",
            p.id,
            p.removed_entities.len(),
            if p.guard_holds {
                ", more than the deletion guard lets through"
            } else {
                ""
            }
        );
        out += &list("entities removed", &p.removed_entities);
    }
    out += if report.would_remove {
        "\nsomething would be removed (exit 3)\n"
    } else {
        "\nnothing would be removed\n"
    };
    out
}
