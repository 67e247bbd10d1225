//! Why a file URL is not read, in one place: [`UrlError`] (not a usable
//! URL, unknown host, or outside the reader's scope), [`OutOfScope`] (the
//! provider's `targetScope` refuses it) and [`Excluded`] (its filters leave
//! the repository out). Nothing is requested for a refused URL.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UrlError {
    #[error("'{0}' is not a URL")]
    NotAUrl(String),
    #[error(
        "'{0}' is not a Bitbucket Server file URL (expected https://<host>/projects/<KEY>/repos/<slug>/browse/<path>)"
    )]
    NotAFileUrl(String),
    #[error(
        "'{0}' is not a Bitbucket Cloud file URL (expected https://<host>/<workspace>/<slug>/src/<ref>/<path>)"
    )]
    NotACloudFileUrl(String),
    /// Never echoed: the URL holds a credential.
    #[error(
        "a URL with a user name or password is not read (credentials belong in the integration, not in URLs)"
    )]
    Credentials,
    #[error("'{0}' climbs out of its repository with '.' or '..' segments")]
    Traversal(String),
    /// The URL as shown here has its control characters escaped.
    #[error(
        "'{0}' holds a control character (e.g. CR or LF, raw or written %0d%0a), which is never part of a file URL; remove it"
    )]
    ControlCharacter(String),
    #[error("cannot resolve '{target}' against '{base}': {message}")]
    Resolve {
        target: String,
        base: String,
        message: String,
    },
    /// Outside what the reader may read (a provider's target scope).
    #[error("'{url}' is not read: {reason}")]
    OutOfScope { url: String, reason: OutOfScope },
    /// Nothing is requested for such a URL.
    #[error("'{url}' is not read: host '{host}' is not {scope} (known hosts: {known}); {hint}")]
    UnknownHost {
        url: String,
        host: String,
        scope: &'static str,
        known: String,
        hint: &'static str,
    },
}

/// Why a file URL is outside a reader's scope (`scope::Scope`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OutOfScope {
    #[error(
        "it is in repository {owner}/{slug}, not the discovered file's; set {key}.targetScope: filters to follow targets into repositories this provider's filters match (or any, for any repository)"
    )]
    OtherRepository {
        owner: String,
        slug: String,
        key: String,
    },
    #[error("repository {owner}/{slug} is outside {key}: {why}")]
    Excluded {
        owner: String,
        slug: String,
        key: String,
        why: Excluded,
    },
}

/// Why a provider's filters leave a target's repository out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Excluded {
    #[error("its filters exclude it")]
    Filters,
    #[error("it is not in workspace {0}")]
    OtherWorkspace(String),
    /// A Cloud file URL does not say the repository's project.
    #[error(
        "its projectKey filter cannot be checked from a file URL, so only the discovered file's repository is followed"
    )]
    ProjectUnknown,
    #[error("its repoSlug filter excludes it")]
    RepoSlug,
}
