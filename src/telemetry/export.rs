//! The OTLP/HTTP trace exporter: the SDK's batch processor (its queue is
//! bounded: `OTEL_BSP_MAX_QUEUE_SIZE`, 2048 spans by default; when full,
//! spans are dropped, never waited for) sending protobuf through reqwest on
//! the daemon's own runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// The collector's answer is a small status message; more is not read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The OTLP default when `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` is not set.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub(super) enum ExportSetupError {
    #[error("the OTLP trace exporter needs the Tokio runtime; call telemetry::init inside it")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
    #[error("cannot build the OTLP HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("cannot build the OTLP trace exporter (check the OTEL_EXPORTER_OTLP_* variables)")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
}

/// A tracer provider exporting to the endpoint the `OTEL_*` variables name.
pub(super) fn provider() -> Result<SdkTracerProvider, ExportSetupError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(ExportSetupError::NoRuntime)?;
    let timeout = export_timeout();
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(ExportSetupError::Client)?;
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_timeout(timeout)
        .with_http_client(OnRuntime {
            client,
            runtime,
            warned: AtomicBool::new(false),
        })
        .build()
        .map_err(ExportSetupError::Exporter)?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build())
}

/// `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`, with this daemon's
/// name when neither gives one.
fn resource() -> Resource {
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| {
            v.split(',')
                .any(|kv| kv.trim().starts_with("service.name="))
        });
    let builder = Resource::builder();
    let builder = if named {
        builder
    } else {
        builder.with_service_name(env!("CARGO_PKG_NAME"))
    };
    builder
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build()
}

/// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, else `OTEL_EXPORTER_OTLP_TIMEOUT`
/// (milliseconds), else 10 s.
fn export_timeout() -> Duration {
    [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .iter()
    .find_map(|var| std::env::var(var).ok()?.trim().parse::<u64>().ok())
    .filter(|ms| *ms > 0)
    .map_or(DEFAULT_TIMEOUT, Duration::from_millis)
}

/// Sends each export on the daemon's runtime: the batch processor's own
/// thread has no reactor, and only waits for the answer.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    /// The first failure is a warning; later ones are debug lines, so an
    /// absent collector does not flood the log every few seconds.
    warned: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("the OTLP request failed")]
    Request(#[source] reqwest::Error),
    #[error("the OTLP request was not sent (the daemon is stopping)")]
    Stopped(#[source] tokio::task::JoinError),
    #[error("the OTLP request is not valid")]
    Invalid(#[source] axum::http::Error),
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self
            .runtime
            .spawn(async move { send(&client, request).await })
            .await
            .map_err(SendError::Stopped)
            .and_then(|sent| sent);
        match sent {
            Ok(response) => {
                if !response.status().is_success() {
                    self.failed(&format!("the collector answered {}", response.status()));
                }
                Ok(response)
            }
            Err(err) => {
                self.failed(&error_chain(&err));
                Err(Box::new(err))
            }
        }
    }
}

impl OnRuntime {
    fn failed(&self, why: &str) {
        if self.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(error = why, "trace export failed; the spans are dropped");
        } else {
            tracing::warn!(
                error = why,
                "trace export failed; the spans are dropped (further failures are logged at debug)"
            );
        }
    }
}

async fn send(
    client: &reqwest::Client,
    request: Request<Bytes>,
) -> Result<Response<Bytes>, SendError> {
    let request =
        reqwest::Request::try_from(request.map(reqwest::Body::from)).map_err(SendError::Request)?;
    let mut response = client.execute(request).await.map_err(SendError::Request)?;
    let mut answer = Response::builder().status(response.status());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(SendError::Request)? {
        let room = MAX_RESPONSE_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    if let Some(headers) = answer.headers_mut() {
        *headers = std::mem::take(response.headers_mut());
    }
    answer.body(Bytes::from(body)).map_err(SendError::Invalid)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
