//! Structured logs and traces. Logs: `RUST_LOG` filters (default `info`),
//! `LOG_FORMAT=json` switches to JSON lines for log shippers. Traces: off
//! unless `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`
//! names an OTLP/HTTP collector; then the standard `OTEL_*` variables apply
//! (headers, service name, resource attributes, sampler, batch queue), and
//! every log line written inside a traced span carries its `trace_id`.

mod export;
mod log_format;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The endpoint variables, the signal's own first (the OTLP specification's
/// order); either turns tracing on.
const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// The crate whose spans are exported (dependencies' spans are not).
const OWN_TARGET: &str = env!("CARGO_CRATE_NAME");

/// Keeps the trace exporter so shutdown can flush it; empty when tracing is
/// off.
#[must_use = "call shutdown() to flush the last spans"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn tracing(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes the spans still queued (bounded by the export timeout), off
    /// the async workers: the exporter's thread waits on them.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(err)) = flushed {
            tracing::warn!(error = %err, "could not flush the last trace spans");
        }
    }
}

/// Whether an OTLP endpoint is configured (set and not blank), and
/// `OTEL_SDK_DISABLED` is not `true`.
fn endpoint_configured() -> bool {
    if std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return false;
    }
    ENDPOINT_VARS
        .iter()
        .any(|var| std::env::var(var).is_ok_and(|v| !v.trim().is_empty()))
}

/// Sets up logging, and tracing when an endpoint is configured. Call inside
/// the Tokio runtime: exports run on it. A second call (tests) changes
/// nothing.
pub fn init() -> Telemetry {
    // The scheduler crate logs every job it creates at info: noise for operators.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tokio_cron_scheduler=warn"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, never into log files or collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let fmt = if json {
        fmt.json()
            .flatten_event(true)
            .event_format(log_format::WithTraceId::json())
            .boxed()
    } else {
        fmt.event_format(log_format::WithTraceId::text()).boxed()
    };
    let mut problem = None;
    let provider = if endpoint_configured() {
        match export::provider() {
            Ok(provider) => Some(provider),
            Err(err) => {
                problem = Some(err);
                None
            }
        }
    } else {
        None
    };
    // Our spans at any level (they are debug, so the log filter hides
    // them), and warnings and errors as span events.
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(OWN_TARGET))
            .with_location(false)
            .with_threads(false)
            .with_filter(filter_fn(|meta| {
                if meta.is_span() {
                    meta.target().starts_with(OWN_TARGET)
                } else {
                    *meta.level() <= tracing::Level::WARN
                }
            }))
    });
    // try_init: a second call (tests) must not panic.
    let installed = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init()
        .is_ok();
    if let Some(err) = problem {
        tracing::error!(error = %err, "traces are not exported");
    }
    if !installed {
        // Another subscriber is in place: spans could not reach this one.
        if let Some(provider) = provider {
            let _ = provider.shutdown();
        }
        return Telemetry { provider: None };
    }
    if provider.is_some() {
        tracing::info!("traces are exported over OTLP/HTTP");
    }
    Telemetry { provider }
}

/// Makes `span` a child of the W3C `traceparent` (and `tracestate`) in
/// `headers`, so a caller's trace continues here. Without a valid header,
/// or with tracing off, nothing changes.
pub(crate) fn continue_remote_trace(span: &Span, headers: &axum::http::HeaderMap) {
    use opentelemetry::trace::TraceContextExt as _;
    if !headers.contains_key("traceparent") {
        return;
    }
    let context =
        TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    if context.span().span_context().is_valid() {
        // Err only when tracing is off: nothing to continue then.
        let _ = span.set_parent(context);
    }
}

/// Renames a traced span once its name is known (a request's route is
/// matched inside it): its exported name only, not its log name.
pub(crate) fn rename(span: &Span, name: String) {
    use opentelemetry::trace::TraceContextExt as _;
    span.context().span().update_name(name);
}

/// A span for work that several traced requests asked for together (a
/// queue's batch): a child of the first, linked to the others, so each
/// request's trace leads to the work done for it.
pub(crate) fn joined<'a>(name: Joined, mut parents: impl Iterator<Item = &'a Span>) -> Span {
    let first = parents.next().cloned().unwrap_or_else(Span::none);
    let span = match name {
        Joined::EventReads => tracing::debug_span!(parent: &first, "webhook.apply"),
    };
    for other in parents {
        span.follows_from(other);
    }
    span
}

/// The names a [`joined`] span can have (span names are static).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Joined {
    /// Reading and applying what webhooks and refreshes queued.
    EventReads,
}
