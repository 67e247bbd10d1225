//! `validate`: check catalog files offline, as discovery would.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{Cli, exit, input};

/// `validate`: the daemon's parser, budgets, validation and, with
/// `--config`, its `catalog.rules` and `catalog.processing`. Exit 1 when a
/// file has a problem, 2 when the config or an input cannot be read.
pub(super) async fn validate(cli: &Cli, paths: &[PathBuf]) -> ExitCode {
    // Without --config, Backstage's defaults (the default file is not read:
    // CI checks a repository, not a deployment).
    let settings = if cli.config.is_empty() {
        crate::config::CatalogSettings::default()
    } else {
        match cli.load() {
            Ok(loaded) => loaded.config.catalog,
            Err(code) => return code,
        }
    };
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    let limit = settings.processing.limits.max_file_bytes;
    for path in paths {
        let (name, read) = if path.as_os_str() == "-" {
            let name = crate::catalog::disk::STDIN;
            (name.to_owned(), input::read_stdin(name, limit))
        } else {
            let name = path.to_string_lossy().into_owned();
            (name, input::read_file(path, limit))
        };
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(err) => return exit::config_error(err),
        };
        let checked =
            crate::catalog::disk::check(&name, &bytes, &settings.rules, &settings.processing).await;
        for finding in &checked.findings {
            // A closed stdout (`| head`) is not the files' fault.
            let _ = writeln!(out, "{finding}");
        }
        for url in &checked.skipped {
            eprintln!("note: {name}: target {url} is a URL and is not read offline");
        }
        failed |= !checked.findings.is_empty();
        eprintln!(
            "{name}: {} entit{}, {} problem(s)",
            checked.entities,
            if checked.entities == 1 { "y" } else { "ies" },
            checked.findings.len()
        );
    }
    ExitCode::from(if failed { exit::FAILED } else { exit::OK })
}
