//! `run-once`'s progress on stderr while its runs go on: a bar per source
//! on a terminal, otherwise a line per source every `--progress-every`
//! (log files and CI keep no redrawn bars). stdout carries only the
//! entities, so the progress never mixes into them.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::bitbucket::RequestStats;
use crate::discovery::Progress;

/// How often a terminal's bars are redrawn.
const BAR_TICK: Duration = Duration::from_millis(200);

/// Reports until `done`; returns once the bars are cleared.
pub(super) async fn report(
    sources: Vec<(String, Arc<Progress>, Arc<RequestStats>)>,
    every: Duration,
    done: CancellationToken,
) {
    if std::io::stderr().is_terminal() {
        bars(&sources, &done).await;
    } else if !every.is_zero() {
        lines(&sources, every, &done).await;
    }
}

async fn bars(sources: &[(String, Arc<Progress>, Arc<RequestStats>)], done: &CancellationToken) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} files {msg}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bars: Vec<ProgressBar> = sources
        .iter()
        .map(|(id, _, _)| {
            let bar = multi.add(ProgressBar::new(0).with_style(style.clone()));
            bar.set_prefix(id.clone());
            bar
        })
        .collect();
    loop {
        for (bar, (_, progress, stats)) in bars.iter().zip(sources) {
            let (read, to_read, message) = state(progress, stats);
            bar.set_length(to_read as u64);
            bar.set_position(read as u64);
            bar.set_message(message);
        }
        tokio::select! {
            () = done.cancelled() => break,
            () = tokio::time::sleep(BAR_TICK) => {}
        }
    }
    for bar in bars {
        bar.finish_and_clear();
    }
}

async fn lines(
    sources: &[(String, Arc<Progress>, Arc<RequestStats>)],
    every: Duration,
    done: &CancellationToken,
) {
    loop {
        tokio::select! {
            () = done.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        for (id, progress, stats) in sources {
            eprintln!("{}", line(id, progress, stats));
        }
    }
}

/// `progress: <id>: …` — one source's state as a line.
fn line(id: &str, progress: &Progress, stats: &RequestStats) -> String {
    let (read, to_read, message) = state(progress, stats);
    if to_read == 0 {
        format!("progress: {id}: {message}")
    } else {
        format!("progress: {id}: {read} of {to_read} files read, {message}")
    }
}

/// Files read, files to read, and the rest as words.
fn state(progress: &Progress, stats: &RequestStats) -> (usize, usize, String) {
    let view = progress.view();
    let requests = stats.requests();
    let message = if view.to_read == 0 && view.listed == 0 {
        format!("listing repositories, {requests} requests")
    } else {
        let mut text = format!(
            "{} repositories listed, {} unchanged, {:.1} files/s, {requests} requests",
            view.listed, view.unchanged, view.reads_per_second
        );
        if let Some(eta) = view.estimated_finish {
            text.push_str(&format!(", done about {eta}"));
        }
        text
    };
    (view.read, view.to_read, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_what_is_listed_and_read() {
        let progress = Progress::new();
        let stats = RequestStats::default();
        assert_eq!(
            line("main", &progress, &stats),
            "progress: main: listing repositories, 0 requests"
        );
        progress.listed(10, 4, 6);
        progress.read_one(true);
        let text = line("main", &progress, &stats);
        assert!(
            text.starts_with(
                "progress: main: 1 of 6 files read, 10 repositories listed, 4 unchanged"
            ),
            "{text}"
        );
    }
}
