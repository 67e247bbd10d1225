//! `GET /`: the page an operator opens in a browser. Rendered on the server
//! from the state `/api/catalog/providers` reports, with no script and no
//! external asset (its CSP allows only its own stylesheet), reloading
//! itself: it works offline, behind any proxy, on a laptop and a phone.
//! Every list on it is capped, so its size does not grow with the catalog.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::providers::current_problems;
use super::state::ApiState;
use crate::bitbucket::PaceView;
use crate::discovery::{CatalogFile, Outcome, Problem, RepositoryRecord, RunReport};
use crate::scheduler::SourceRunner;

/// Only the page's own stylesheet; no script, frame, form or base.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
pub(super) const STYLESHEET_PATH: &str = "/status.css";
const STYLESHEET: &str = include_str!("status_page.css");
/// Browsers ask for an icon; without one each load logs a 404.
pub(super) const ICON_PATH: &str = "/favicon.svg";
const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\"><rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#0b57d0\"/><path d=\"M4 4h8v2H4zm0 3h8v2H4zm0 3h5v2H4z\" fill=\"#fff\"/></svg>";

/// Problems shown per kind; the rest are one link away.
const PROBLEMS_PER_KIND: usize = 20;
/// Projects shown per provider in the adoption table, fewest files first.
const PROJECTS_SHOWN: usize = 30;
/// Repositories without a catalog file named per project.
const REPOS_NAMED: usize = 5;
/// Characters of a problem's message shown.
const MESSAGE_CHARS: usize = 300;
/// Seconds between reloads: quicker while a run is in progress.
const RELOAD_RUNNING: u32 = 5;
const RELOAD_IDLE: u32 = 30;

/// What the page shows of one source.
struct SourceView {
    runner: std::sync::Arc<SourceRunner>,
    next_run: Option<String>,
    entities: usize,
    report: Option<RunReport>,
    records: Vec<RepositoryRecord>,
    problems: Vec<Problem>,
}

pub(super) async fn page(State(state): State<ApiState>) -> Response {
    let mut sources = Vec::new();
    for runner in state.scheduler.runners() {
        let report = runner.last_report();
        // A store that cannot be read costs the page its adoption table
        // and per-file problems, not the page.
        let records = if runner.source().lists_repositories() {
            runner.repositories().await.unwrap_or_default()
        } else {
            Vec::new()
        };
        let problems = current_problems(report.as_ref(), &records);
        sources.push(SourceView {
            next_run: state.scheduler.next_run(runner.id()).await,
            entities: state.catalog.source_len(runner.id()),
            runner,
            report,
            records,
            problems,
        });
    }
    let paces = state.integrations.paces();
    let html = render(state.catalog.len(), &sources, &paces);
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    (static_headers(headers), html).into_response()
}

pub(super) async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

pub(super) async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "max-age=300"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (static_headers(headers), body).into_response()
}

fn static_headers<const N: usize>(
    headers: [(HeaderName, &'static str); N],
) -> [(HeaderName, HeaderValue); N] {
    headers.map(|(name, value)| (name, HeaderValue::from_static(value)))
}

fn render(total_entities: usize, sources: &[SourceView], paces: &[(String, PaceView)]) -> String {
    let running = sources.iter().any(|s| s.runner.in_progress());
    let reload = if running { RELOAD_RUNNING } else { RELOAD_IDLE };
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{reload}\">\
         <title>bitbucket-catalogd</title>\
         <link rel=\"icon\" href=\"{ICON_PATH}\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"{STYLESHEET_PATH}\"></head><body>\
         <header><h1>bitbucket-catalogd <small>{version}</small></h1>\
         <p><strong id=\"total-entities\">{total_entities}</strong> entities served · \
         updated {now} · reloads every {reload} s · \
         <a href=\"/api/catalog/providers\">JSON</a> · <a href=\"/metrics\">metrics</a></p></header><main>",
        version = env!("CARGO_PKG_VERSION"),
        now = escape(&crate::discovery::now_rfc3339()),
    );
    render_sources(&mut out, sources);
    render_integrations(&mut out, paces);
    render_problems(&mut out, sources);
    render_adoption(&mut out, sources);
    out.push_str("</main></body></html>\n");
    out
}

fn render_sources(out: &mut String, sources: &[SourceView]) {
    out.push_str("<section><h2>Providers and locations</h2>");
    if sources.is_empty() {
        out.push_str("<p class=\"muted\">None configured: add <code>catalog.providers</code> or <code>catalog.locations</code>, or register a location.</p></section>");
        return;
    }
    out.push_str("<div class=\"cards\">");
    for source in sources {
        let runner = &source.runner;
        let (class, outcome, detail) = outcome(source.report.as_ref());
        let _ = write!(
            out,
            "<article class=\"card {class}\" data-source=\"{id}\"><h3>{id} <small>{kind}</small></h3>\
             <p class=\"target\">{target}</p><dl>\
             <dt>Last run</dt><dd><span class=\"badge\">{outcome}</span> {detail}</dd>",
            id = escape(runner.id()),
            kind = escape(runner.source().kind()),
            target = escape(runner.target()),
        );
        if let Some(progress) = runner.progress() {
            let _ = write!(
                out,
                "<dt>Running</dt><dd class=\"progress\"><progress max=\"{to_read}\" value=\"{read}\"></progress> \
                 {read} of {to_read} files read, {rate:.1}/s{eta}</dd>",
                to_read = progress.to_read.max(1),
                read = progress.read,
                rate = progress.reads_per_second,
                eta = progress
                    .estimated_finish
                    .map(|t| format!(", done about {}", escape(&t)))
                    .unwrap_or_default(),
            );
        } else if runner.in_progress() {
            out.push_str("<dt>Running</dt><dd>listing</dd>");
        }
        let _ = write!(
            out,
            "<dt>Next run</dt><dd>{next} <small>({schedule})</small></dd>\
             <dt>Entities</dt><dd class=\"entities\">{entities}</dd>\
             <dt>Problems</dt><dd>{problems}</dd>",
            next = escape(
                source
                    .next_run
                    .as_deref()
                    .unwrap_or("only on POST …/refresh")
            ),
            schedule = escape(&runner.schedule().frequency.to_string()),
            entities = source.entities,
            problems = source.problems.len(),
        );
        if let Some(counts) = runner.repository_counts() {
            let _ = write!(
                out,
                "<dt>Repositories</dt><dd>{} with a catalog file of {}</dd>",
                counts.with_catalog, counts.total
            );
        }
        out.push_str("</dl></article>");
    }
    out.push_str("</div></section>");
}

/// A CSS class, a label and a detail line for the last run.
fn outcome(report: Option<&RunReport>) -> (&'static str, &'static str, String) {
    let Some(report) = report else {
        return ("pending", "not run yet", String::new());
    };
    let when = format!(
        "{} · {:.1} s · {} requests, {} × 429{}",
        report.finished_at,
        report.duration.as_secs_f64(),
        report.requests,
        report.rate_limited,
        report
            .trigger
            .map(|t| format!(" · {}", t.label()))
            .unwrap_or_default()
    );
    let (class, label, message) = match &report.outcome {
        Outcome::Succeeded => ("ok", "succeeded", None),
        Outcome::Failed { error } => ("bad", "failed", Some(error)),
        Outcome::Incomplete { message, .. } => ("warn", "incomplete", Some(message)),
        Outcome::Held { message, .. } => ("warn", "held", Some(message)),
    };
    let detail = match message {
        Some(message) => format!(
            "<small>{}</small><br>{}",
            escape(&when),
            escape(&shortened(message))
        ),
        None => format!("<small>{}</small>", escape(&when)),
    };
    (class, label, detail)
}

fn render_integrations(out: &mut String, paces: &[(String, PaceView)]) {
    // The implicit anonymous bitbucket.org (and any integration no source
    // has used yet) has nothing to say.
    let used: Vec<&(String, PaceView)> = paces.iter().filter(|(_, p)| p.answered > 0).collect();
    if used.is_empty() {
        return;
    }
    out.push_str(
        "<section><h2>Bitbucket integrations</h2><div class=\"scroll\"><table>\
         <thead><tr><th>Host</th><th>Pace</th><th>Responses</th><th>429s</th></tr></thead><tbody>",
    );
    for (host, pace) in used {
        let pace_text = match pace.pace_per_second {
            Some(rate) => format!("{rate:.2} requests/s"),
            None => "not paced".to_owned(),
        };
        let _ = write!(
            out,
            "<tr data-host=\"{host}\"><td>{host}</td><td>{pace_text}{blocked}</td><td>{}</td><td>{}</td></tr>",
            pace.answered,
            pace.rate_limited,
            host = escape(host),
            blocked = if pace.blocked {
                " <span class=\"badge warn\">waiting out Retry-After</span>"
            } else {
                ""
            },
        );
    }
    out.push_str("</tbody></table></div><p class=\"muted\">Since start-up; integrations without answers yet are left out.</p></section>");
}

fn render_problems(out: &mut String, sources: &[SourceView]) {
    let mut by_kind: BTreeMap<String, Vec<(&str, &Problem)>> = BTreeMap::new();
    for source in sources {
        for problem in &source.problems {
            by_kind
                .entry(kind_label(problem))
                .or_default()
                .push((source.runner.id(), problem));
        }
    }
    out.push_str("<section><h2>Problems</h2>");
    if by_kind.is_empty() {
        out.push_str("<p class=\"muted\">No catalog file has a problem.</p></section>");
        return;
    }
    for (kind, problems) in &by_kind {
        let _ = write!(
            out,
            "<details open><summary>{} <span class=\"count\">{}</span></summary><ul class=\"problems\">",
            escape(kind),
            problems.len()
        );
        for (source, problem) in problems.iter().take(PROBLEMS_PER_KIND) {
            let _ = write!(
                out,
                "<li><span class=\"muted\">{}</span> {} {}</li>",
                escape(source),
                link(&problem.url, &file_name(&problem.url)),
                escape(&shortened(&problem.message))
            );
        }
        out.push_str("</ul>");
        if problems.len() > PROBLEMS_PER_KIND {
            let mut ids: Vec<&str> = problems.iter().map(|(id, _)| *id).collect();
            ids.dedup();
            let links: Vec<String> = ids
                .iter()
                .map(|id| {
                    let path = format!("/api/catalog/providers/{}/errors", url_segment(id));
                    link(&path, &path)
                })
                .collect();
            let _ = write!(
                out,
                "<p class=\"muted\">{} more: {}</p>",
                problems.len() - PROBLEMS_PER_KIND,
                links.join(" · ")
            );
        }
        out.push_str("</details>");
    }
    out.push_str("</section>");
}

/// One project's repositories by whether they have a catalog file.
#[derive(Default)]
struct Adoption<'a> {
    with: usize,
    without: Vec<&'a RepositoryRecord>,
    unknown: usize,
}

fn render_adoption(out: &mut String, sources: &[SourceView]) {
    let listing: Vec<&SourceView> = sources.iter().filter(|s| !s.records.is_empty()).collect();
    if listing.is_empty() {
        return;
    }
    out.push_str("<section><h2>Adoption</h2>");
    for source in listing {
        let mut projects: BTreeMap<&str, Adoption> = BTreeMap::new();
        for record in &source.records {
            let project = projects.entry(record.project.as_str()).or_default();
            match record.catalog {
                CatalogFile::Present => project.with += 1,
                CatalogFile::Missing => project.without.push(record),
                CatalogFile::Unknown | CatalogFile::Unreadable => project.unknown += 1,
            }
        }
        let with: usize = projects.values().map(|p| p.with).sum();
        let without: usize = projects.values().map(|p| p.without.len()).sum();
        let _ = write!(
            out,
            "<h3>{id}: {share} of repositories have a catalog file ({with} of {known})</h3>\
             <div class=\"scroll\"><table class=\"adoption\"><thead><tr><th>Project</th><th>Share</th>\
             <th>With</th><th>Without</th><th>Repositories without a catalog file</th></tr></thead><tbody>",
            id = escape(source.runner.id()),
            share = share(with, with + without),
            known = with + without,
        );
        let mut rows: Vec<(&&str, &Adoption)> = projects.iter().collect();
        // The projects with the most repositories to bring in first.
        rows.sort_by(|a, b| b.1.without.len().cmp(&a.1.without.len()).then(a.0.cmp(b.0)));
        for (project, adoption) in rows.iter().take(PROJECTS_SHOWN) {
            let known = adoption.with + adoption.without.len();
            let named: Vec<String> = adoption
                .without
                .iter()
                .take(REPOS_NAMED)
                .map(|r| link(&r.url, &r.slug))
                .collect();
            let more = adoption.without.len().saturating_sub(REPOS_NAMED);
            let _ = write!(
                out,
                "<tr><td>{}</td><td><meter min=\"0\" max=\"{max}\" value=\"{with}\"></meter> {}</td><td>{with}</td><td>{}</td><td>{}{}</td></tr>",
                escape(project),
                share(adoption.with, known),
                adoption.without.len(),
                named.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                },
                max = known.max(1),
                with = adoption.with,
            );
        }
        out.push_str("</tbody></table></div>");
        if projects.len() > PROJECTS_SHOWN {
            let _ = write!(
                out,
                "<p class=\"muted\">{} more projects: {}</p>",
                projects.len() - PROJECTS_SHOWN,
                {
                    let path = format!(
                        "/api/catalog/providers/{}/repositories?catalog=missing",
                        url_segment(source.runner.id())
                    );
                    link(&path, &path)
                }
            );
        }
    }
    out.push_str("</section>");
}

fn share(part: usize, whole: usize) -> String {
    if whole == 0 {
        return "–".to_owned();
    }
    format!("{:.0} %", 100.0 * part as f64 / whole as f64)
}

fn kind_label(problem: &Problem) -> String {
    serde_json::to_value(problem.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", problem.kind))
}

/// The last path segments of a file URL, short enough for a phone.
fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let parts: Vec<&str> = path.rsplit('/').take(5).collect();
    let parts: Vec<&str> = parts.into_iter().rev().collect();
    parts.join("/")
}

fn shortened(text: &str) -> String {
    if text.chars().count() <= MESSAGE_CHARS {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(MESSAGE_CHARS).collect();
    short.push('…');
    short
}

/// A link when `href` is an HTTP(S) URL or a path of ours; text otherwise.
fn link(href: &str, text: &str) -> String {
    let lower = href.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") || href.starts_with('/') {
        format!(
            "<a href=\"{}\" rel=\"noreferrer\">{}</a>",
            escape(href),
            escape(text)
        )
    } else {
        escape(text)
    }
}

/// A source id (a location's is `location:…`) as one path segment.
fn url_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_only_web_links_are_links() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
        assert_eq!(
            link("javascript:alert(1)", "x<y"),
            "x&lt;y",
            "no script URL becomes a link"
        );
        assert_eq!(
            link("https://bb.example.com/a?b=1&c=\"", "f"),
            "<a href=\"https://bb.example.com/a?b=1&amp;c=&quot;\" rel=\"noreferrer\">f</a>"
        );
        assert_eq!(url_segment("location:a b/c"), "location%3Aa%20b%2Fc");
        assert_eq!(
            file_name("https://bb/projects/P/repos/r/browse/catalog-info.yaml?at=main"),
            "P/repos/r/browse/catalog-info.yaml"
        );
        assert_eq!(share(1, 3), "33 %");
        assert_eq!(share(0, 0), "–");
    }
}
