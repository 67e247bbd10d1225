//! Log lines written inside a traced span end with (text) or carry (JSON)
//! its `trace_id`, so a line found in the logs leads to its trace.

use std::fmt;

use opentelemetry::trace::TraceContextExt as _;
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The usual format, with the trace id of the current span when tracing is
/// on and a span is active.
pub(super) struct WithTraceId<F> {
    inner: F,
}

impl WithTraceId<Format> {
    pub(super) fn text() -> Self {
        Self {
            inner: Format::default(),
        }
    }
}

impl WithTraceId<Format<Json>> {
    pub(super) fn json() -> Self {
        Self {
            inner: Format::default().json().flatten_event(true),
        }
    }
}

/// The current span's trace id, if it is traced.
fn current_trace_id() -> Option<String> {
    let span = tracing::Span::current();
    if span.is_none() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// Where a formatter's finished line takes the trace id.
pub(super) trait PlaceTraceId {
    fn place(line: &str, trace_id: &str, writer: &mut Writer<'_>) -> fmt::Result;
}

impl PlaceTraceId for Format {
    fn place(line: &str, trace_id: &str, writer: &mut Writer<'_>) -> fmt::Result {
        // Last on the line, after the message and its fields.
        let line = line.strip_suffix('\n').unwrap_or(line);
        writeln!(writer, "{line} trace_id={trace_id}")
    }
}

impl PlaceTraceId for Format<Json> {
    fn place(line: &str, trace_id: &str, writer: &mut Writer<'_>) -> fmt::Result {
        // The JSON formatter writes one object: the id goes in first.
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"trace_id\":\"{trace_id}\",{rest}"),
            None => writer.write_str(line),
        }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N> + PlaceTraceId,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(trace_id) = current_trace_id() else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        F::place(&line, &trace_id, &mut writer)
    }
}
