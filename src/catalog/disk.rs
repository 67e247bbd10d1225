//! Catalog files on disk, checked offline (`bitbucket-catalogd validate`):
//! the same [`Processor`] discovery runs, with files read from a directory
//! instead of Bitbucket. Relative Location targets and placeholders are
//! followed inside the repository (the nearest directory holding `.git`,
//! else the checked file's directory), never outside it; targets that are
//! URLs are not fetched and are listed as skipped.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use futures::future::BoxFuture;
use parking_lot::Mutex;

use super::problem::Problem;
use super::process::ProcessingConfig;
use super::process::{FetchError, FileSource, Processor, RepoInfo, ResolveError};
use super::rules::CatalogRules;

/// What the standard input is called in findings.
pub(crate) const STDIN: &str = "<stdin>";

/// One problem, placed in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub path: String,
    /// 1-based: the field at fault, else the document's first line.
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path, self.line, self.column, self.message
        )
    }
}

/// What checking one file found.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    pub findings: Vec<Finding>,
    /// Entities the file (and what it leads to) yields.
    pub entities: usize,
    /// Targets that are URLs, not followed offline.
    pub skipped: Vec<String>,
}

/// Files under `root`, named by their path relative to the working
/// directory (or as given).
struct DiskSource {
    /// Canonical; nothing outside it is read.
    root: PathBuf,
    max_file_bytes: usize,
    skipped: Mutex<BTreeSet<String>>,
}

fn is_url(target: &str) -> bool {
    url::Url::parse(target).is_ok_and(|u| u.scheme().len() > 1)
}

/// `path` with `.` and `..` folded without touching the disk (a missing
/// target must still be named).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if out.file_name().is_some() {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The repository holding `file`: the nearest ancestor with `.git`, else
/// the file's directory.
pub(crate) fn repository_root(file: &Path) -> PathBuf {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.ancestors()
        .find(|a| a.join(".git").exists())
        .map_or_else(|| dir.clone(), Path::to_path_buf)
}

impl DiskSource {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, FetchError> {
        let outside = || {
            FetchError::Refused(format!(
                "{path} is outside the repository ({})",
                self.root.display()
            ))
        };
        let absolute = std::env::current_dir()
            .map(|cwd| normalize(&cwd.join(path)))
            .map_err(|err| FetchError::Failed(format!("{path}: {err}")))?;
        // Where the path really leads (symbolic links followed as far as
        // the path exists), so neither `..` nor a link gets out.
        let real = absolute
            .ancestors()
            .find_map(|existing| {
                let rest = absolute.strip_prefix(existing).ok()?;
                let canonical = existing.canonicalize().ok()?;
                // `join("")` would add a trailing `/`.
                Some(if rest.as_os_str().is_empty() {
                    canonical
                } else {
                    canonical.join(rest)
                })
            })
            .unwrap_or_else(|| absolute.clone());
        if !real.starts_with(&self.root) {
            return Err(outside());
        }
        let canonical = match real.canonicalize() {
            Ok(canonical) => canonical,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(FetchError::Failed(format!("{path}: {err}"))),
        };
        if !canonical.starts_with(&self.root) {
            return Err(outside());
        }
        let metadata = std::fs::metadata(&canonical)
            .map_err(|err| FetchError::Failed(format!("{path}: {err}")))?;
        // A pipe or device would block the read or never end.
        if !metadata.is_file() {
            return Err(FetchError::Failed(format!("{path} is not a regular file")));
        }
        let size = metadata.len();
        if size > self.max_file_bytes as u64 {
            return Err(FetchError::Failed(format!(
                "{path} is larger than the {}-byte limit (catalog.processing.maxFileSize)",
                self.max_file_bytes
            )));
        }
        let bytes = std::fs::read(&canonical)
            .map_err(|err| FetchError::Failed(format!("{path}: {err}")))?;
        Ok(Some(bytes))
    }
}

/// `problem` as a compiler-style finding (processing placed it).
fn place(problem: &Problem) -> Finding {
    let mut message = problem.message.clone();
    if let Some(entity_ref) = &problem.entity_ref {
        message = format!("{entity_ref}: {message}");
    }
    Finding {
        path: problem.url.clone(),
        line: problem.line,
        column: problem.column,
        message,
    }
}

impl FileSource for DiskSource {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, FetchError>> {
        Box::pin(async move {
            if is_url(url) {
                self.skipped.lock().insert(url.to_owned());
                return Ok(Some(Vec::new()));
            }
            self.read(url)
        })
    }

    fn resolve(&self, target: &str, base: &str) -> Result<String, ResolveError> {
        if is_url(target) {
            return Ok(target.to_owned());
        }
        if Path::new(target).is_absolute() {
            return Err(ResolveError::AbsolutePath {
                target: target.to_owned(),
            });
        }
        let dir = if base == STDIN {
            Path::new("")
        } else {
            Path::new(base).parent().unwrap_or(Path::new(""))
        };
        let joined = normalize(&dir.join(target));
        let text = joined.to_string_lossy().into_owned();
        // Processing asks for `./` to fill source-location; a directory is fine.
        Ok(if text.is_empty() { ".".into() } else { text })
    }
}

/// Checks the catalog file `path` whose content is `bytes` (read by the
/// caller, so `-` can be the standard input) as discovery would.
pub(crate) async fn check(
    path: &str,
    bytes: &[u8],
    rules: &CatalogRules,
    config: &ProcessingConfig,
) -> Checked {
    let root = if path == STDIN {
        std::env::current_dir()
            .map(|d| repository_root(&d.join("stdin")))
            .unwrap_or_else(|_| PathBuf::from("."))
    } else {
        repository_root(Path::new(path))
    };
    let source = DiskSource {
        root,
        max_file_bytes: config.limits.max_file_bytes,
        skipped: Mutex::new(BTreeSet::new()),
    };
    let processor = Processor {
        source: &source,
        rules,
        config,
        repo: &RepoInfo::default(),
    };
    let tree = processor.process_tree(path, bytes).await;
    let findings = tree.problems.iter().map(place).collect();
    Checked {
        findings,
        entities: tree.entities.len(),
        skipped: source.skipped.into_inner().into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fold_without_the_disk() {
        assert_eq!(
            normalize(Path::new("a/./b/../c.yaml")),
            PathBuf::from("a/c.yaml")
        );
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
        assert_eq!(
            normalize(Path::new("a/../../../etc/passwd")),
            PathBuf::from("../../etc/passwd")
        );
    }
}
