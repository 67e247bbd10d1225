//! Black-box: OpenTelemetry traces. The daemon runs as a process with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP/HTTP receiver this test
//! starts; a caller's `traceparent` is continued by the API request's span,
//! a signed webhook is one trace from its receipt to the applied batch, a
//! run has its listing, reads and batches, and no attribute carries a
//! credential. Without an endpoint nothing is exported.

use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use bitbucket_sim::{AuthConfig, DatasetConfig, FileKind, RepoRef, SimConfig, Simulator};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;
use prost::Message as _;

use crate::support::sim::SimProviderConfig;
use crate::support::{
    WRITE_TOKEN, component, free_port, serve_command, with_write_token, write_config,
};

const WEBHOOK_SECRET: &str = "webhook-s3cret-otel";
const BITBUCKET_TOKEN: &str = "bitbucket-t0ken-otel";
/// Sent in a query string: a request's span must not carry it.
const QUERY_SECRET: &str = "query-s3cret-otel";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

/// What the receiver got: every span, and the resource's attributes.
#[derive(Default)]
struct Received {
    requests: usize,
    spans: Vec<Span>,
    resource: Vec<KeyValue>,
}

/// An OTLP/HTTP (protobuf) trace receiver on loopback.
async fn receiver() -> (String, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let app = axum::Router::new()
        .route("/v1/traces", post(collect))
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, received)
}

async fn collect(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf request");
    let mut received = received.lock();
    received.requests += 1;
    for resource_spans in request.resource_spans {
        if let Some(resource) = resource_spans.resource {
            received.resource = resource.attributes;
        }
        for scope in resource_spans.scope_spans {
            received.spans.extend(scope.spans);
        }
    }
    // An empty ExportTraceServiceResponse.
    Vec::new()
}

/// The daemon as a process, killed when dropped.
struct Daemon {
    child: Child,
    address: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    async fn start(yaml: &str, env: &[(&str, &str)]) -> Self {
        let (dir, file) = write_config(yaml);
        let log = dir.path().join("stderr.log");
        let port = free_port();
        let mut command = serve_command(&file, port);
        command
            .env("APP_CONFIG_backend_database_connection", ":memory:")
            .env("RUST_LOG", "info")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OTEL_SDK_DISABLED")
            .envs(env.iter().copied())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")));
        let child = command.spawn().expect("the daemon starts");
        let daemon = Self {
            child,
            address: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            let ready = reqwest::get(format!("{}/.backstage/health/v1/liveness", daemon.address))
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return daemon;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the daemon did not start: {}",
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A traced GET, as Backstage's catalog client sends it.
    async fn traced_get(&self, path_and_query: &str) -> u16 {
        reqwest::Client::new()
            .get(format!("{}{path_and_query}", self.address))
            .header("traceparent", format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01"))
            .send()
            .await
            .expect("the request reaches the daemon")
            .status()
            .as_u16()
    }

    /// Runs provider `sim` and waits for the run to end.
    async fn run_provider(&self) {
        let http = reqwest::Client::new();
        let response = http
            .post(format!(
                "{}/api/catalog/providers/sim/refresh",
                self.address
            ))
            .bearer_auth(WRITE_TOKEN)
            .send()
            .await
            .expect("refresh reaches the daemon");
        assert_eq!(response.status(), 202, "{}", self.log());
        self.until("the first run", async || {
            let status: serde_json::Value = http
                .get(format!("{}/api/catalog/providers/sim", self.address))
                .send()
                .await
                .expect("status")
                .json()
                .await
                .expect("JSON");
            !status["lastRun"].is_null() && status["inProgress"] == false
        })
        .await;
    }

    async fn until(&self, what: &str, check: impl AsyncFn() -> bool) {
        let started = Instant::now();
        while !check().await {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{what} did not happen; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| text(&kv.value))
}

/// Every attribute of the span and its events, as `key=value`.
fn all_attributes(span: &Span) -> impl Iterator<Item = String> + '_ {
    span.attributes
        .iter()
        .chain(span.events.iter().flat_map(|e| e.attributes.iter()))
        .map(|kv| format!("{}={}", kv.key, text(&kv.value)))
        .chain(std::iter::once(span.name.clone()))
}

/// Polls the receiver until `check` finds what it needs (at most 20 s).
async fn spans_until<T>(
    received: &Mutex<Received>,
    what: &str,
    check: impl Fn(&[Span]) -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check(&received.lock().spans) {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: not exported; spans: {:?}",
            received
                .lock()
                .spans
                .iter()
                .map(|s| (s.name.clone(), hex(&s.trace_id)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn config(sim: &Simulator) -> String {
    with_write_token(
        &SimProviderConfig::new(sim)
            .webhook_secret(WEBHOOK_SECRET)
            .integration_extra(&format!("      token: {BITBUCKET_TOKEN}\n"))
            .yaml(),
    )
}

async fn simulator() -> Simulator {
    Simulator::start(SimConfig {
        dataset: DatasetConfig::components_only(1, 3),
        auth: AuthConfig {
            bearer_tokens: vec![BITBUCKET_TOKEN.to_owned()],
            basic: Vec::new(),
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

#[tokio::test]
async fn api_requests_runs_and_webhooks_are_traced_without_secrets() {
    let (endpoint, received) = receiver().await;
    let sim = simulator().await;
    let daemon = Daemon::start(
        &config(&sim),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_SERVICE_NAME", "catalogd-under-test"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;

    // A run: its listing and reads are Bitbucket requests, its results a batch.
    daemon.run_provider().await;
    let run = spans_until(&received, "the provider run", |spans| {
        let run = spans.iter().find(|s| s.name == "provider.run")?;
        let children: Vec<&str> = spans
            .iter()
            .filter(|s| s.trace_id == run.trace_id)
            .map(|s| s.name.as_str())
            .collect();
        (children.contains(&"bitbucket.request") && children.contains(&"catalog.apply"))
            .then(|| run.clone())
    })
    .await;
    assert_eq!(attribute(&run, "provider").as_deref(), Some("sim"));
    let reads: Vec<Span> = received
        .lock()
        .spans
        .iter()
        .filter(|s| s.trace_id == run.trace_id && s.name == "bitbucket.request")
        .cloned()
        .collect();
    assert!(
        reads
            .iter()
            .all(|s| attribute(s, "endpoint").is_some_and(|e| !e.is_empty())
                && attribute(s, "path").is_some_and(|p| p.starts_with("/rest/"))),
        "{reads:?}"
    );

    // An API request continues the caller's trace.
    let query = format!("/api/catalog/entities?filter=metadata.name={QUERY_SECRET}");
    assert_eq!(daemon.traced_get(&query).await, 200);
    let request = spans_until(&received, "the API request", |spans| {
        spans
            .iter()
            .find(|s| hex(&s.trace_id) == TRACE_ID && s.name.contains("/api/catalog/entities"))
            .cloned()
    })
    .await;
    assert_eq!(hex(&request.parent_span_id), PARENT_SPAN_ID);
    assert_eq!(request.name, "GET /api/catalog/entities");
    assert_eq!(
        attribute(&request, "path").as_deref(),
        Some("/api/catalog/entities")
    );
    let status = attribute(&request, "http.response.status_code").unwrap_or_default();
    assert!(status == "200" || status == "IntValue(200)", "{status}");

    // A signed push: one trace from its receipt to the batch that serves it.
    let repo = sim
        .dataset()
        .server_repos()
        .find(|r| r.file_kind == FileKind::Component)
        .expect("a repository with a component")
        .clone();
    let reference = RepoRef::Server {
        project: repo.project_key.clone(),
        slug: repo.slug.clone(),
    };
    let event = sim
        .push_file(
            &reference,
            "catalog-info.yaml",
            &component("traced-service"),
        )
        .expect("push");
    let status = event
        .deliver(
            &format!("{}/api/events/http/bitbucketServer", daemon.address),
            Some(WEBHOOK_SECRET),
        )
        .await
        .expect("the event reaches the daemon");
    assert_eq!(status, 202);
    let webhook_trace = spans_until(&received, "the webhook's trace", |spans| {
        let receipt = spans.iter().find(|s| s.name == "webhook.receive")?;
        let names: Vec<&str> = spans
            .iter()
            .filter(|s| s.trace_id == receipt.trace_id)
            .map(|s| s.name.as_str())
            .collect();
        [
            "webhook.apply",
            "bitbucket.request",
            "catalog.apply",
            "POST /api/events/http/{topic}",
        ]
        .iter()
        .all(|name| names.contains(name))
        .then(|| hex(&receipt.trace_id))
    })
    .await;
    let entity = reqwest::get(format!(
        "{}/api/catalog/entities/by-name/component/default/traced-service",
        daemon.address
    ))
    .await
    .expect("entity");
    assert_eq!(entity.status(), 200, "the pushed entity is served");

    // The service is named as the variables say.
    let resource: Vec<String> = received
        .lock()
        .resource
        .iter()
        .map(|kv| format!("{}={}", kv.key, text(&kv.value)))
        .collect();
    assert!(
        resource.contains(&"service.name=catalogd-under-test".to_owned()),
        "{resource:?}"
    );
    assert!(
        resource.contains(&"deployment.environment=test".to_owned()),
        "{resource:?}"
    );

    // No credential reached any span.
    for span in &received.lock().spans {
        for attribute in all_attributes(span) {
            for secret in [WEBHOOK_SECRET, BITBUCKET_TOKEN, WRITE_TOKEN, QUERY_SECRET] {
                assert!(
                    !attribute.contains(secret),
                    "span {} carries a secret: {attribute}",
                    span.name
                );
            }
        }
    }

    // The webhook's log lines carry its trace id.
    let log = daemon.log();
    assert!(
        log.lines()
            .any(|line| line.contains("read repositories named by events")
                && line.contains(&format!("trace_id={webhook_trace}"))),
        "{log}"
    );
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_exported() {
    let (endpoint, received) = receiver().await;
    let sim = simulator().await;
    // No endpoint (other OTEL_* variables set): no exporter is built.
    let daemon = Daemon::start(
        &config(&sim),
        &[
            ("OTEL_SERVICE_NAME", "catalogd-under-test"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=nothing"),
        ],
    )
    .await;
    assert_eq!(daemon.traced_get("/api/catalog/entities").await, 200);
    daemon.run_provider().await;
    let log = daemon.log();
    assert!(!log.contains("traces are exported"), "{log}");
    assert!(!log.contains("trace_id="), "{log}");
    drop(daemon);

    // An endpoint, but the SDK turned off: nothing reaches it.
    let daemon = Daemon::start(
        &config(&sim),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    assert_eq!(daemon.traced_get("/api/catalog/entities").await, 200);
    daemon.run_provider().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(received.lock().requests, 0, "spans were exported");
    assert!(!daemon.log().contains("traces are exported"));
}

#[tokio::test]
async fn json_log_lines_carry_the_trace_id() {
    let (endpoint, received) = receiver().await;
    let sim = simulator().await;
    let daemon = Daemon::start(
        &config(&sim),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("LOG_FORMAT", "json"),
        ],
    )
    .await;
    daemon.run_provider().await;
    let run = spans_until(&received, "the provider run", |spans| {
        spans.iter().find(|s| s.name == "provider.run").cloned()
    })
    .await;
    let log = daemon.log();
    let started: serde_json::Value = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("discovery run started"))
        })
        .unwrap_or_else(|| panic!("no run start line: {log}"));
    assert_eq!(started["trace_id"], hex(&run.trace_id), "{started}");
    // The service is named after the daemon when OTEL_SERVICE_NAME is unset.
    let resource: Vec<String> = received
        .lock()
        .resource
        .iter()
        .map(|kv| format!("{}={}", kv.key, text(&kv.value)))
        .collect();
    assert!(
        resource.contains(&"service.name=bitbucket-catalogd".to_owned()),
        "{resource:?}"
    );
}

#[tokio::test]
async fn an_unreachable_collector_blocks_nothing() {
    let sim = simulator().await;
    // Nothing listens there: every export fails.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let mut daemon = Daemon::start(
        &config(&sim),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
        ],
    )
    .await;
    for _ in 0..3 {
        daemon.run_provider().await;
        assert_eq!(daemon.traced_get("/api/catalog/entities").await, 200);
    }
    daemon
        .until("a failed export", async || {
            daemon.log().contains("trace export failed")
        })
        .await;
    let log = daemon.log();
    assert_eq!(
        log.matches("trace export failed").count(),
        1,
        "warned once, then at debug: {log}"
    );
    // Shutdown flushes within the export timeout, not forever.
    let stopped = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &daemon.child.id().to_string()])
        .status()
        .expect("kill");
    let status = tokio::task::spawn_blocking(move || {
        let status = daemon.child.wait().expect("wait");
        (status, daemon)
    })
    .await
    .expect("join")
    .0;
    assert!(status.success(), "{status:?}");
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "stopped after {:?}",
        stopped.elapsed()
    );
}
