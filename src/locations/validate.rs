//! `POST /validate-entity`: the entity as discovery would read it from a
//! location. The location must be one discovery reads: a file a provider's
//! filters admit (targets and placeholders then stay within that
//! provider's `targetScope`) or a static or registered location (read as
//! location runs read). Anything else is refused before any request. No
//! problem handed back quotes a file read from Bitbucket: the caller may
//! not be allowed to see it.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::Value;

use super::Locations;
use crate::bitbucket::RequestStats;
use crate::bitbucket::file_url::FileUrl;
use crate::bitbucket::reader::{FileReader, Sites};
use crate::bitbucket::refusal::{Excluded, UrlError};
use crate::catalog::process::{FetchError, FileFacts, FileSource, RepoInfo, ResolveError};
use crate::config::TargetScope;
use crate::discovery::provider::{RepositoryReads, Unlisted};
use crate::discovery::{Problem, ProblemKind, RepoRef, pipeline};
use crate::integrations::Product;

/// Why an entity could not be validated (`POST /validate-entity`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ValidateError {
    #[error(
        "Invalid location ref {0}, only 'url:<target>' is supported, e.g. url:https://host/path"
    )]
    LocationRef(String),
    #[error("Entity must be an object")]
    NotObject,
    #[error("{0}")]
    Encode(#[source] serde_json::Error),
    #[error("validating took longer than catalog.locationSchedule.timeout ({0}s)")]
    Timeout(u64),
    #[error("Location {target} is refused, nothing was read: {source}")]
    Refused {
        target: String,
        #[source]
        source: UrlError,
    },
    #[error(
        "Location {0} is outside every provider's filters and is no static or registered location: discovery reads no entity from it, so nothing was read. Register it first (POST /locations), or validate against a file a provider discovers"
    )]
    OutsideFilters(String),
}

/// Bytes of a problem's message also found in a file read from Bitbucket
/// (and not in the request) that count as quoting it.
const QUOTE: usize = 6;

/// A provider that reads the location, and under which `targetScope`.
struct Admitting {
    id: String,
    product: Product,
    scope: TargetScope,
    reads: Arc<dyn RepositoryReads>,
}

impl Locations {
    /// The problems discovery would find with `entity` read from
    /// `location_ref` (`url:<target>`); none when it is valid.
    pub(crate) async fn validate(
        &self,
        entity: &Value,
        location_ref: &str,
    ) -> Result<Vec<Problem>, ValidateError> {
        let target = match location_ref.split_once(':') {
            Some(("url", target)) if !target.is_empty() => target,
            _ => return Err(ValidateError::LocationRef(location_ref.to_owned())),
        };
        if !entity.is_object() {
            return Err(ValidateError::NotObject);
        }
        self.context
            .check(target)
            .map_err(|source| ValidateError::Refused {
                target: target.to_owned(),
                source,
            })?;
        let admitting = self.admitting(target);
        if admitting.is_none() && self.runner_for(target).is_none() {
            return Err(ValidateError::OutsideFilters(target.to_owned()));
        }
        let bytes = serde_json::to_vec(entity).map_err(ValidateError::Encode)?;
        let settings = &self.context.settings;
        let stats = Arc::new(RequestStats::default());
        let mut reader = FileReader::new(
            Sites::all(&self.context.integrations, Some(&self.context.http)),
            &stats,
            settings.processing.limits.max_file_bytes,
        );
        if let Some(provider) = admitting {
            reader = reader.within(provider.scope_of(target));
        }
        let recording = Recording {
            inner: reader,
            read: Mutex::default(),
        };
        let timeout = self.context.schedule.timeout;
        let file = tokio::time::timeout(
            timeout,
            pipeline::process_file(&bytes, target, &recording, settings, &RepoInfo::default()),
        )
        .await
        .map_err(|_| ValidateError::Timeout(timeout.as_secs()))?;
        let read = recording.read.into_inner();
        let asked = String::from_utf8_lossy(&bytes).into_owned() + target;
        let texts: Vec<String> = file.problems.iter().map(shown).collect();
        let quoted = read_only_windows(&texts, &read, &asked);
        Ok(file
            .problems
            .into_iter()
            .zip(&texts)
            .map(|(problem, text)| {
                if text.as_bytes().windows(QUOTE).any(|w| quoted.contains(w)) {
                    withheld(problem)
                } else {
                    problem
                }
            })
            .collect())
    }

    /// The first provider whose filters admit the repository of `target`
    /// (checked without a request).
    fn admitting(&self, target: &str) -> Option<Admitting> {
        let host = host_of(target)?;
        self.scheduler.runners().into_iter().find_map(|runner| {
            let source = runner.source();
            let product = source.product()?;
            let reads = source.shared_reads()?;
            if !reads.host().eq_ignore_ascii_case(&host) {
                return None;
            }
            let file = FileUrl::parse(target, product).ok()?;
            let (owner, slug) = file.repository();
            let admitted = matches!(
                reads.listed_one(
                    &Arc::new(RequestStats::default()),
                    &repository(product, owner, slug),
                    None
                ),
                Ok(_) | Err(Unlisted::NeedsBranch)
            );
            admitted.then(|| Admitting {
                id: runner.id().to_owned(),
                product,
                scope: self
                    .target_scopes
                    .get(runner.id())
                    .copied()
                    .unwrap_or_default(),
                reads,
            })
        })
    }
}

impl Admitting {
    /// The provider's `targetScope` around the file at `location`.
    fn scope_of(self, location: &str) -> crate::bitbucket::scope::Scope {
        let key = match self.product {
            Product::Server => format!("catalog.providers.bitbucketServer.{}", self.id),
            Product::Cloud => format!("catalog.providers.bitbucketCloud.{}", self.id),
        };
        let (product, reads) = (self.product, self.reads);
        pipeline::target_scope(location, self.scope, key, product, move |owner, slug| {
            let stats = Arc::new(RequestStats::default());
            match reads.listed_one(&stats, &repository(product, owner, slug), None) {
                Ok(_) | Err(Unlisted::NeedsBranch) => Ok(()),
                Err(Unlisted::LeftOut(_)) => Err(Excluded::Filters),
            }
        })
    }
}

/// The repository a file URL names, as an event would name it.
fn repository(product: Product, owner: &str, slug: &str) -> RepoRef {
    let (project, workspace) = match product {
        Product::Server => (Some(owner.to_owned()), None),
        Product::Cloud => (None, Some(owner.to_owned())),
    };
    RepoRef {
        project,
        workspace,
        slug: slug.to_owned(),
        id: None,
        web_url: None,
        archived: false,
        main_branch: None,
    }
}

/// `host[:port]` of a URL, as integrations name it.
fn host_of(target: &str) -> Option<String> {
    let url = url::Url::parse(target).ok()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// A file source that keeps what it read, to check answers against.
struct Recording {
    inner: FileReader,
    read: Mutex<Vec<Vec<u8>>>,
}

impl FileSource for Recording {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, FetchError>> {
        Box::pin(async move {
            let fetched = self.inner.fetch(url).await;
            if let Ok(Some(bytes)) = &fetched {
                self.read.lock().push(bytes.clone());
            }
            fetched
        })
    }

    fn resolve(&self, target: &str, base: &str) -> Result<String, ResolveError> {
        self.inner.resolve(target, base)
    }

    fn describe(&self, url: &str) -> FileFacts {
        self.inner.describe(url)
    }
}

/// What the caller is shown of `problem`.
fn shown(problem: &Problem) -> String {
    format!(
        "{} {}",
        problem.entity_ref.as_deref().unwrap_or_default(),
        problem.message
    )
}

/// `problem` with a message naming the problem, file, document and
/// position (the structured line and column the parser or validator gave)
/// instead of one that would quote a file read from Bitbucket.
fn withheld(mut problem: Problem) -> Problem {
    let kind = match problem.kind {
        ProblemKind::Read => "read",
        ProblemKind::Parse => "parse",
        ProblemKind::Entity => "entity",
        ProblemKind::NotAllowed => "catalog.rules",
        ProblemKind::Location => "location",
        ProblemKind::Conflict => "conflict",
        ProblemKind::Store => "store",
    };
    let document = problem
        .document
        .map(|d| format!(", document {d}"))
        .unwrap_or_default();
    problem.message = format!(
        "{kind} problem in {}{document}, line {}, column {}; its details are withheld because they would quote a file read from Bitbucket",
        problem.url, problem.line, problem.column
    );
    problem.entity_ref = None;
    problem
}

/// The [`QUOTE`]-byte runs of `messages` found in a file of `read` but not
/// in `asked` (what the caller sent): one pass over each, whatever the
/// number of problems.
fn read_only_windows<'m>(
    messages: &'m [String],
    read: &[Vec<u8>],
    asked: &str,
) -> HashSet<&'m [u8]> {
    if read.is_empty() {
        return HashSet::new();
    }
    let windows: HashSet<&[u8]> = messages
        .iter()
        .flat_map(|m| m.as_bytes().windows(QUOTE))
        .collect();
    let mut found = HashSet::new();
    for window in read.iter().flat_map(|file| file.windows(QUOTE)) {
        if let Some(&mine) = windows.get(window) {
            found.insert(mine);
        }
    }
    for window in asked.as_bytes().windows(QUOTE) {
        found.remove(window);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotes(message: &str, read: &[Vec<u8>], asked: &str) -> bool {
        !read_only_windows(&[message.to_owned()], read, asked).is_empty()
    }

    #[test]
    fn a_message_quoting_a_read_file_is_withheld_and_others_kept() {
        let read = vec![b"name: Top Secret Value\n".to_vec()];
        let asked = r#"{"metadata":{"name":{"$text":"./x"}}}"#;
        assert!(quotes(
            "metadata.name must match, found 'Top Secret Value'",
            &read,
            asked
        ));
        assert!(!quotes("metadata.name must be a string", &[], asked));
        assert!(!quotes(
            "kind Foo is not allowed",
            &read,
            r#"{"kind":"Foo is not allowed"}"#
        ));
    }

    #[test]
    fn a_withheld_problem_keeps_its_structured_position() {
        let mut problem = Problem::new(
            "https://h/projects/P/repos/s/browse/c.yaml",
            ProblemKind::Parse,
            "found 'Top Secret' at line 99",
        );
        problem.line = 7;
        problem.column = 3;
        problem.document = Some(2);
        let shown = withheld(problem);
        assert!(
            shown.message.contains(", document 2, line 7, column 3;"),
            "{}",
            shown.message
        );
        assert!(!shown.message.contains("Top Secret"), "{}", shown.message);
    }
}
