//! `GET /`: the page an operator opens in a browser. Rendered on the server
//! from the state `/api/catalog/providers` reports, with no script and no
//! external asset (its CSP allows only its own stylesheet), reloading
//! itself: it works offline, behind any proxy, on a laptop and a phone.
//! Every list on it is capped, so its size does not grow with the catalog.

use std::collections::BTreeMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::providers::current_problems;
use super::state::ApiState;
use crate::bitbucket::PaceView;
use crate::discovery::{CatalogFile, Outcome, Problem, RepositoryRecord, RunReport};
use crate::rfc3339;
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
    let Some(html) = state
        .status_page
        .get(
            &state.catalog,
            &state.scheduler,
            state.reloads.generation(),
            build(&state),
        )
        .await
    else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    (static_headers(headers), html).into_response()
}

/// Reads what the page shows, then renders it on the blocking pool (the
/// problems, the adoption table and the HTML are the CPU of it).
async fn build(state: &ApiState) -> Option<Bytes> {
    let mut read = Vec::new();
    for runner in state.scheduler.runners() {
        // A store that cannot be read costs the page its adoption table
        // and per-file problems, not the page.
        let records = if runner.source().lists_repositories() {
            runner.repositories().await.unwrap_or_default()
        } else {
            Vec::new()
        };
        let next_run = state.scheduler.next_run(runner.id()).await;
        let entities = state.catalog.source_len(runner.id());
        read.push((runner, records, next_run, entities));
    }
    let paces = state.integrations.paces();
    let total = state.catalog.len();
    let follower = state
        .replica
        .as_ref()
        .and_then(|r| follower_line(&r.status()));
    let config_reload = state.reloads.last();
    let open = state.scheduler.previews();
    let previews = open.summaries(MAX_PREVIEW_ROWS);
    let previews_more = open.len().saturating_sub(previews.len());
    let rendered = tokio::task::spawn_blocking(move || {
        let sources: Vec<SourceView> = read
            .into_iter()
            .map(|(runner, records, next_run, entities)| {
                let report = runner.last_report();
                let problems = current_problems(report.as_ref(), &records);
                SourceView {
                    runner,
                    next_run,
                    entities,
                    report,
                    records,
                    problems,
                }
            })
            .collect();
        let previews = (previews, previews_more);
        render(total, follower, config_reload, &sources, &paces, previews)
    })
    .await;
    match rendered {
        Ok(Ok(html)) => Some(Bytes::from(html)),
        Ok(Err(err)) => {
            tracing::error!(error = %err, "the status page cannot be rendered");
            None
        }
        Err(err) => {
            tracing::error!(error = %err, "rendering the status page panicked or was cancelled");
            None
        }
    }
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

/// The page; `templates/status_page.html` escapes every value.
#[derive(Template)]
#[template(path = "status_page.html")]
struct Page {
    reload: u32,
    version: &'static str,
    icon: &'static str,
    stylesheet: &'static str,
    total_entities: usize,
    now: String,
    /// Said only on a follower: its schedules wait until it leads.
    follower: Option<String>,
    /// The last config reload (SIGHUP or a watched file), once there was one.
    config_reload: Option<super::config_reload::ReloadLine>,
    sources: Vec<Card>,
    integrations: Vec<IntegrationRow>,
    problems: Vec<ProblemGroup>,
    adoption: Vec<AdoptionTable>,
    previews: Vec<PreviewRow>,
    /// Open pull requests not listed (past [`MAX_PREVIEW_ROWS`]).
    previews_more: usize,
}

/// Open pull requests listed at most.
const MAX_PREVIEW_ROWS: usize = 50;

/// One open pull request's check.
struct PreviewRow {
    source: String,
    pull_request: String,
    title: String,
    passed: bool,
    link: Link,
}

/// One source's card.
struct Card {
    class: &'static str,
    id: String,
    kind: &'static str,
    target: String,
    outcome: &'static str,
    /// When the last run finished, with its figures; `None` before it.
    when: Option<String>,
    message: Option<String>,
    progress: Option<ProgressView>,
    /// Running, still listing.
    listing: bool,
    next: String,
    schedule: String,
    entities: usize,
    problems: usize,
    repositories: Option<Repositories>,
}

struct ProgressView {
    to_read: usize,
    read: usize,
    rate: String,
    eta: Option<String>,
}

struct Repositories {
    with: usize,
    total: usize,
}

struct IntegrationRow {
    host: String,
    pace: String,
    /// `rateLimit.share` of the learnt refill, and the fixed ceiling.
    budget: String,
    /// Requests per second over the last ~10 s.
    used: String,
    /// Each provider's last full run: its requests at the pace in force.
    full_run: String,
    blocked: bool,
    /// Requests allowed in flight now (the adaptive limit).
    concurrency: usize,
    answered: u64,
    rate_limited: u64,
}

struct ProblemGroup {
    kind: String,
    count: usize,
    items: Vec<ProblemItem>,
    /// Problems not shown, and where to read them all.
    more: usize,
    errors: Vec<Link>,
}

struct ProblemItem {
    source: String,
    file: Link,
    message: String,
}

struct AdoptionTable {
    id: String,
    share: String,
    with: usize,
    known: usize,
    rows: Vec<AdoptionRow>,
    more_projects: usize,
    missing: Link,
    /// Repositories served by a generated Component.
    generated: usize,
}

struct AdoptionRow {
    project: String,
    max: usize,
    share: String,
    with: usize,
    without: usize,
    named: Vec<Link>,
    more: usize,
}

/// A link when `href` is an HTTP(S) URL or a path of ours; text otherwise.
#[derive(Debug, PartialEq, Eq)]
struct Link {
    href: Option<String>,
    text: String,
}

impl Link {
    fn new(href: &str, text: &str) -> Self {
        let lower = href.to_ascii_lowercase();
        let web =
            lower.starts_with("https://") || lower.starts_with("http://") || href.starts_with('/');
        Self {
            href: web.then(|| href.to_owned()),
            text: text.to_owned(),
        }
    }

    /// A path of ours, shown as itself.
    fn path(path: String) -> Self {
        Self::new(&path, &path)
    }
}

/// A follower's line: whom it follows and how far behind it is.
fn follower_line(status: &crate::replica::ReplicaStatus) -> Option<String> {
    (status.role == crate::replica::Role::Follower).then(|| {
        let leader = status.leader.as_deref().unwrap_or("unknown");
        format!(
            "This replica is a follower: it serves the leader's catalog ({} changes behind) and runs no schedule until it leads. Leader: {leader}.",
            status.lag_changes
        )
    })
}

fn render(
    total_entities: usize,
    follower: Option<String>,
    config_reload: Option<super::config_reload::ReloadLine>,
    sources: &[SourceView],
    paces: &[(String, PaceView)],
    (previews, previews_more): (Vec<crate::checks::PreviewSummary>, usize),
) -> Result<String, askama::Error> {
    let running = sources.iter().any(|s| s.runner.in_progress());
    Page {
        reload: if running { RELOAD_RUNNING } else { RELOAD_IDLE },
        version: env!("CARGO_PKG_VERSION"),
        icon: ICON_PATH,
        stylesheet: STYLESHEET_PATH,
        total_entities,
        now: rfc3339::format(&chrono::Utc::now()),
        follower,
        config_reload,
        sources: sources.iter().map(card).collect(),
        integrations: integrations(paces, sources),
        problems: problems(sources),
        adoption: sources.iter().filter_map(adoption).collect(),
        previews: previews
            .into_iter()
            .map(|p| PreviewRow {
                source: p.provider,
                pull_request: format!("{}/{} #{}", p.project, p.repository, p.pull_request),
                title: p.title,
                passed: p.result == "pass",
                link: Link::path(p.path),
            })
            .collect(),
        previews_more,
    }
    .render()
}

fn card(source: &SourceView) -> Card {
    let runner = &source.runner;
    let (class, outcome, when, message) = outcome(source.report.as_ref());
    Card {
        class,
        id: runner.id().to_owned(),
        kind: runner.source().kind(),
        target: runner.target().to_owned(),
        outcome,
        when,
        message,
        progress: runner.progress().map(|progress| ProgressView {
            to_read: progress.to_read.max(1),
            read: progress.read,
            rate: format!("{:.1}", progress.reads_per_second),
            eta: progress.estimated_finish,
        }),
        listing: runner.in_progress(),
        next: source
            .next_run
            .clone()
            .unwrap_or_else(|| "only on POST …/refresh".to_owned()),
        schedule: runner.schedule().frequency.to_string(),
        entities: source.entities,
        problems: source.problems.len(),
        repositories: runner.repository_counts().map(|c| Repositories {
            with: c.with_catalog,
            total: c.total,
        }),
    }
}

/// A CSS class, a label, the figures and the message of the last run.
fn outcome(
    report: Option<&RunReport>,
) -> (&'static str, &'static str, Option<String>, Option<String>) {
    let Some(report) = report else {
        return ("pending", "not run yet", None, None);
    };
    let when = format!(
        "{} · {:.1} s · {} requests, {} × 429{}",
        report
            .finished_at
            .as_ref()
            .map(rfc3339::format)
            .unwrap_or_default(),
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
    (class, label, Some(when), message.map(|m| shortened(m)))
}

fn integrations(paces: &[(String, PaceView)], sources: &[SourceView]) -> Vec<IntegrationRow> {
    // The implicit anonymous bitbucket.org (and any integration no source
    // has used yet) has nothing to say.
    paces
        .iter()
        .filter(|(_, p)| p.answered > 0)
        .map(|(host, pace)| IntegrationRow {
            host: host.clone(),
            pace: match pace.pace_per_second {
                Some(rate) => format!("{rate:.2} requests/s"),
                None => "not paced".to_owned(),
            },
            budget: budget(pace),
            used: format!("{:.2} requests/s", pace.used_per_second),
            full_run: full_runs(host, pace, sources),
            blocked: pace.blocked,
            concurrency: pace.concurrency,
            answered: pace.answered,
            rate_limited: pace.rate_limited,
        })
        .collect()
}

/// "50 % of 10.00 requests/s learnt", "at most 2.00 requests/s", or "none".
fn budget(pace: &PaceView) -> String {
    let share = pace.share.map(|share| {
        let learnt = pace.refill_per_second.map_or_else(
            || "the rate learnt (none yet)".to_owned(),
            |r| format!("{r:.2} requests/s learnt"),
        );
        format!("{:.0} % of {learnt}", share * 100.0)
    });
    let ceiling = pace
        .ceiling_per_second
        .map(|c| format!("at most {c:.2} requests/s"));
    let parts: Vec<String> = share.into_iter().chain(ceiling).collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// What each provider on `host` costs per full run under the pace in
/// force (or the ceiling): its last succeeded run's requests ÷ that rate.
fn full_runs(host: &str, pace: &PaceView, sources: &[SourceView]) -> String {
    let rate = pace.pace_per_second.or(pace.ceiling_per_second);
    let runs: Vec<String> = sources
        .iter()
        .filter(|s| {
            crate::discovery::plan_diff::host(s.runner.source())
                .is_some_and(|h| crate::integrations::HostKey::same(h, host))
        })
        .filter_map(|s| {
            let report = s.report.as_ref()?;
            matches!(report.outcome, Outcome::Succeeded).then_some((s.runner.id(), report))
        })
        .map(|(id, report)| match rate {
            Some(rate) if rate > 0.0 => format!(
                "{id}: {} requests ≈ {}",
                report.requests,
                seconds(report.requests as f64 / rate)
            ),
            _ => format!("{id}: {} requests, not paced", report.requests),
        })
        .collect();
    if runs.is_empty() {
        "no full run yet".to_owned()
    } else {
        runs.join("; ")
    }
}

/// "42 s", "3 min 5 s", "2 h 10 min".
fn seconds(secs: f64) -> String {
    let whole = secs.ceil().min(1e9) as u64;
    match whole {
        0..60 => format!("{whole} s"),
        60..3600 => format!("{} min {} s", whole / 60, whole % 60),
        _ => format!("{} h {} min", whole / 3600, whole % 3600 / 60),
    }
}

fn problems(sources: &[SourceView]) -> Vec<ProblemGroup> {
    let mut by_kind: BTreeMap<String, Vec<(&str, &Problem)>> = BTreeMap::new();
    for source in sources {
        for problem in &source.problems {
            by_kind
                .entry(kind_label(problem))
                .or_default()
                .push((source.runner.id(), problem));
        }
    }
    by_kind
        .into_iter()
        .map(|(kind, problems)| {
            let mut ids: Vec<&str> = problems.iter().map(|(id, _)| *id).collect();
            ids.dedup();
            ProblemGroup {
                kind,
                count: problems.len(),
                items: problems
                    .iter()
                    .take(PROBLEMS_PER_KIND)
                    .map(|(source, problem)| ProblemItem {
                        source: (*source).to_owned(),
                        // Compiler-style, as `validate` prints it.
                        file: Link::new(
                            &problem.url,
                            &format!(
                                "{}:{}:{}",
                                file_name(&problem.url),
                                problem.line,
                                problem.column
                            ),
                        ),
                        message: shortened(&problem.message),
                    })
                    .collect(),
                more: problems.len().saturating_sub(PROBLEMS_PER_KIND),
                errors: ids
                    .iter()
                    .map(|id| {
                        Link::path(format!("/api/catalog/providers/{}/errors", url_segment(id)))
                    })
                    .collect(),
            }
        })
        .collect()
}

/// One project's repositories by whether they have a catalog file.
#[derive(Default)]
struct Adoption<'a> {
    with: usize,
    without: Vec<&'a RepositoryRecord>,
    unknown: usize,
}

fn adoption(source: &SourceView) -> Option<AdoptionTable> {
    if source.records.is_empty() {
        return None;
    }
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
    let mut rows: Vec<(&&str, &Adoption)> = projects.iter().collect();
    // The projects with the most repositories to bring in first.
    rows.sort_by(|a, b| b.1.without.len().cmp(&a.1.without.len()).then(a.0.cmp(b.0)));
    let rows = rows
        .iter()
        .take(PROJECTS_SHOWN)
        .map(|(project, adoption)| {
            let known = adoption.with + adoption.without.len();
            AdoptionRow {
                project: (**project).to_owned(),
                max: known.max(1),
                share: share(adoption.with, known),
                with: adoption.with,
                without: adoption.without.len(),
                named: adoption
                    .without
                    .iter()
                    .take(REPOS_NAMED)
                    .map(|r| match r.generated {
                        Some(_) => Link::new(&r.url, &format!("{} (generated)", r.slug)),
                        None => Link::new(&r.url, &r.slug),
                    })
                    .collect(),
                more: adoption.without.len().saturating_sub(REPOS_NAMED),
            }
        })
        .collect();
    Some(AdoptionTable {
        id: source.runner.id().to_owned(),
        share: share(with, with + without),
        with,
        known: with + without,
        rows,
        more_projects: projects.len().saturating_sub(PROJECTS_SHOWN),
        generated: source
            .records
            .iter()
            .filter(|r| r.catalog == CatalogFile::Missing && r.generated.is_some())
            .count(),
        missing: Link::path(format!(
            "/api/catalog/providers/{}/repositories?catalog=missing",
            url_segment(source.runner.id())
        )),
    })
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

/// A source id (a location's is `location:…`) as one path segment.
fn url_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(link: Link) -> String {
        #[derive(Template)]
        #[template(
            source = "{% import \"status_page.html\" as page %}{% call page::link(l) %}",
            ext = "html"
        )]
        struct One {
            l: Link,
        }
        One { l: link }.render().unwrap()
    }

    #[test]
    fn text_is_escaped_and_only_web_links_are_links() {
        assert_eq!(
            rendered(Link::new("", "<script>\"a\" & 'b'</script>")),
            "&#60;script&#62;&#34;a&#34; &#38; &#39;b&#39;&#60;/script&#62;"
        );
        assert_eq!(
            rendered(Link::new("javascript:alert(1)", "x<y")),
            "x&#60;y",
            "no script URL becomes a link"
        );
        assert_eq!(
            rendered(Link::new("https://bb.example.com/a?b=1&c=\"", "f")),
            "<a href=\"https://bb.example.com/a?b=1&#38;c=&#34;\" rel=\"noreferrer\">f</a>"
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
