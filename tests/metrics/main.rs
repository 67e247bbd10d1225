//! Tests that read the daemon's process-wide metrics registry whole, in a
//! binary of their own: `cargo test` runs a binary's tests in one process,
//! where every other integration test's series would count against them
//! (nextest gives each test a process of its own anyway). Issue 14, item 2.

#[allow(dead_code, unused_imports)] // this binary uses a small part of the fixtures
#[path = "../it/support/mod.rs"]
mod support;

use support::big_catalog;

#[tokio::test]
async fn invented_methods_do_not_grow_metrics() {
    let (_fake, app) = big_catalog(1).await;
    for i in 0..200 {
        let method = reqwest::Method::from_bytes(format!("X{i}RANDOM").as_bytes()).unwrap();
        app.http
            .request(method, format!("{}/api/catalog/entities", app.address))
            .send()
            .await
            .unwrap();
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        !metrics.contains("RANDOM"),
        "invented methods became labels"
    );
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    assert!(
        metrics.len() < 64 * 1024,
        "/metrics is {} bytes",
        metrics.len()
    );
    app.stop().await;
}

/// Every provider series the shipped alerts read is scraped before any
/// run: `increase()` misses the first event of a series that appears with
/// it, so a failed or held first run after a restart would never alert.
/// `bitbucket_requests_total` is labelled by endpoint and status as
/// requests come, so it cannot exist before the first request.
#[tokio::test]
async fn alerted_provider_series_exist_before_any_run() {
    let fake = support::FakeServer::builder().start().await;
    let schedule = "        schedule:\n          frequency: { hours: 1 }\n          initialDelay: { hours: 1 }\n";
    let app = support::TestApp::spawn(&support::server_config(&fake, "", schedule)).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();

    let rules: serde_json::Value =
        serde_saphyr::from_str(include_str!("../../deploy/prometheus/alerts.yaml")).unwrap();
    let name = regex::Regex::new(r"\b(?:catalog|bitbucket)[a-z]*_[a-z_]+\b").unwrap();
    let mut checked = 0;
    for rule in rules["groups"][0]["rules"].as_array().unwrap() {
        let expr = rule["expr"].as_str().unwrap();
        for metric in name.find_iter(expr).map(|m| m.as_str()) {
            if metric == "bitbucket_requests_total" {
                continue;
            }
            assert!(
                metrics.contains(&format!("{metric}{{provider=\"main\"")),
                "{metric} (deploy/prometheus/alerts.yaml) is not scraped before the first run:\n{metrics}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} metric names found");
    for outcome in ["succeeded", "failed", "held"] {
        assert!(
            metrics.contains(&format!(
                "catalog_provider_runs_total{{provider=\"main\",outcome=\"{outcome}\"}} 0"
            )),
            "{metrics}"
        );
    }
    assert!(
        metrics.contains("catalog_provider_deletions_held_total{provider=\"main\"} 0"),
        "{metrics}"
    );
    app.stop().await;
}

/// Every query of the shipped Grafana dashboard (panels and variables)
/// names only metrics and labels the daemon exports. The daemon has run,
/// taken a signed push and answered API requests first, so series that
/// appear with their first event exist too.
#[tokio::test]
async fn the_dashboard_queries_only_exported_metrics_and_labels() {
    use bitbucket_sim::{FileKind, RepoRef};
    const SECRET: &str = "dashboard-s3cret";
    let sim = support::sim::components_simulator(2, 3).await;
    let config = support::sim::SimProviderConfig::new(&sim)
        .webhook_secret(SECRET)
        .yaml();
    let app = support::TestApp::spawn(&config).await;
    app.refresh("sim", "").await;
    let repo = sim
        .dataset()
        .server_repos()
        .find(|r| r.file_kind == FileKind::Component)
        .unwrap()
        .clone();
    let reference = RepoRef::Server {
        project: repo.project_key.clone(),
        slug: repo.slug.clone(),
    };
    let event = sim
        .push_file(
            &reference,
            "catalog-info.yaml",
            &support::component("pushed"),
        )
        .unwrap();
    let url = format!("{}/api/events/http/bitbucketServer", app.address);
    assert_eq!(event.deliver(&url, Some(SECRET)).await.unwrap(), 202);
    let mut served = false;
    for _ in 0..100 {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        served = metrics.contains("catalog_webhook_push_served_seconds_bucket");
        if served {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(served, "the push was never served");
    app.get("/api/catalog/entities?limit=1").await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let exported = exported_labels(&metrics);

    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../deploy/grafana/bitbucket-catalogd.json")).unwrap();
    let mut queries = Vec::new();
    let mut panels: Vec<&serde_json::Value> =
        dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push((
                panel["title"].as_str().unwrap().to_owned(),
                target["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert!(queries.len() >= 25, "only {} queries", queries.len());
    let mut selectors = 0;
    for (title, expr) in &queries {
        let promql = expr
            .replace("$__rate_interval", "5m")
            .replace("$provider", ".*")
            .replace("$host", ".*");
        let parsed = promql_parser::parser::parse(&promql)
            .unwrap_or_else(|err| panic!("panel {title:?}: {expr} does not parse: {err}"));
        let mut used = Used::default();
        used.walk(&parsed);
        assert!(
            !used.selectors.is_empty(),
            "panel {title:?} queries no metric: {expr}"
        );
        let mut available: std::collections::BTreeSet<&str> = ["instance", "job"].into();
        for (name, labels) in &used.selectors {
            let Some(has) = exported.get(name.as_str()) else {
                panic!(
                    "panel {title:?} queries {name}, which /metrics does not export:\n{metrics}"
                );
            };
            for label in labels {
                assert!(
                    has.contains(label.as_str()),
                    "panel {title:?}: {name} has no label {label} (has {has:?})"
                );
            }
            available.extend(has.iter().copied());
            selectors += 1;
        }
        for label in &used.grouping {
            assert!(
                available.contains(label.as_str()),
                "panel {title:?} groups by {label}, which its metrics lack: {expr}"
            );
        }
    }
    assert!(selectors >= 30, "only {selectors} selectors checked");

    let variable = regex::Regex::new(r"^label_values\((\w+), (\w+)\)$").unwrap();
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        let Some(query) = var["query"]["query"].as_str() else {
            continue;
        };
        let captures = variable
            .captures(query)
            .unwrap_or_else(|| panic!("variable query {query}"));
        let labels = exported
            .get(&captures[1])
            .unwrap_or_else(|| panic!("{query}: no such metric"));
        assert!(labels.contains(&captures[2]), "{query}: no such label");
    }
    app.stop().await;
}

/// The Prometheus text format's series: name → label names.
fn exported_labels(
    text: &str,
) -> std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> {
    let label = regex::Regex::new(r#"(\w+)="(?:[^"\\]|\\.)*""#).unwrap();
    let mut out: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
        Default::default();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(&line[..end]).or_default();
        if line[end..].starts_with('{') {
            let close = line.rfind('}').unwrap();
            labels.extend(
                label
                    .captures_iter(&line[end..close])
                    .map(|c| c.get(1).unwrap().as_str()),
            );
        }
    }
    out
}

/// The metrics (with the labels their matchers name) and the labels
/// grouped or matched on in one PromQL expression.
#[derive(Default)]
struct Used {
    selectors: Vec<(String, Vec<String>)>,
    grouping: Vec<String>,
}

impl Used {
    fn walk(&mut self, expr: &promql_parser::parser::Expr) {
        use promql_parser::parser::Expr;
        match expr {
            Expr::Aggregate(a) => {
                if let Some(m) = &a.modifier {
                    self.grouping.extend(m.labels().labels.iter().cloned());
                }
                self.walk(&a.expr);
                if let Some(p) = &a.param {
                    self.walk(p);
                }
            }
            Expr::Unary(u) => self.walk(&u.expr),
            Expr::Binary(b) => {
                if let Some(m) = b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                    self.grouping.extend(m.labels().labels.iter().cloned());
                }
                self.walk(&b.lhs);
                self.walk(&b.rhs);
            }
            Expr::Paren(p) => self.walk(&p.expr),
            Expr::Subquery(s) => self.walk(&s.expr),
            Expr::VectorSelector(v) => self.selector(v),
            Expr::MatrixSelector(m) => self.selector(&m.vs),
            Expr::Call(c) => c.args.args.iter().for_each(|a| self.walk(a)),
            _ => {}
        }
    }

    fn selector(&mut self, v: &promql_parser::parser::VectorSelector) {
        let name = v.name.clone().unwrap_or_default();
        let labels = v
            .matchers
            .matchers
            .iter()
            .chain(v.matchers.or_matchers.iter().flatten())
            .map(|m| m.name.clone())
            .filter(|l| l != "__name__")
            .collect();
        self.selectors.push((name, labels));
    }
}
