//! Why a registration, analysis or removal was refused. Each variant of
//! [`RegisterError`] and [`RemoveError`] is one of Backstage's error classes
//! (the API maps it to a status); what it holds names the cause.

use crate::bitbucket::refusal::UrlError;
use crate::discovery::location::LocationError;
use crate::store::StoreError;

/// Why a registration was refused. Each maps to one of Backstage's errors.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RegisterError {
    /// A bad request: wrong type, or a target this daemon does not read.
    #[error(transparent)]
    Input(#[from] BadInput),
    #[error(transparent)]
    Conflict(#[from] Conflict),
    #[error(transparent)]
    NotFound(#[from] Missing),
    /// Bitbucket could not be read (or not in time); nothing was stored.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// `catalog.maxRegisteredLocations` are registered already.
    /// Holds how many are registered.
    #[error(
        "{0} locations are registered, the most catalog.maxRegisteredLocations allows; remove one (DELETE /api/catalog/locations/{{id}}) or raise the limit"
    )]
    Full(usize),
    /// Over `catalog.registrationsPerMinute`; try again later.
    /// Holds the configured limit.
    #[error(
        "more than {0} registrations in a minute (catalog.registrationsPerMinute); try again in a minute"
    )]
    TooFrequent(u32),
    #[error("the location was read but cannot be stored: {0}")]
    Store(#[from] StoreError),
}

/// A request this daemon cannot act on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BadInput {
    #[error(
        "location type '{0}' is not supported; use {{\"type\": \"url\", \"target\": <Bitbucket file URL>}}"
    )]
    RegisterType(String),
    #[error(
        "location type '{0}' is not supported; analyze {{\"type\": \"url\", \"target\": <Bitbucket repository or file URL>}}"
    )]
    AnalyzeType(String),
    /// Not a file on a configured Bitbucket; nothing was requested.
    #[error(transparent)]
    Refused(#[from] UrlError),
    #[error(
        "{0} is not a Bitbucket repository or file URL: give https://<host>/projects/<KEY>/repos/<slug> (Server), https://bitbucket.org/<workspace>/<slug>/src/<branch> (Cloud) or a catalog file's URL"
    )]
    NotRepositoryOrFile(String),
}

/// The target is read already, or its entities are served by another source.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Conflict {
    #[error(
        "Location url:{target} already exists (id {id}); pass onConflict=refresh to read it again"
    )]
    Registered { target: String, id: String },
    #[error("Location url:{target} already exists (id {id}); remove it or pick another target")]
    TargetTaken { target: String, id: String },
    #[error(
        "Location url:{0} is already read by a provider's discovery; its entities are in the catalog (refresh the provider instead)"
    )]
    Discovered(String),
    /// Entity refs another source serves (the first five are named).
    #[error(
        "{} of the entities at {target} already come from another source ({}{}); nothing was registered",
        held.len(),
        held.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
        if held.len() > 5 { ", …" } else { "" }
    )]
    Held { target: String, held: Vec<String> },
}

/// No such location, or its target does not exist.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Missing {
    #[error("Found no location with ID {0}")]
    Id(String),
    #[error(
        "Location {id} ({target}) was not registered over HTTP: it comes from catalog.locations or a provider's discovery, so change the configuration instead"
    )]
    NotRegistered { id: String, target: String },
    /// The target's file does not exist (or cannot be seen).
    #[error(transparent)]
    Target(LocationError),
}

/// Bitbucket could not be read, or not in time; nothing was registered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unavailable {
    #[error(
        "reading {target} took longer than catalog.locationSchedule.timeout ({seconds}s); nothing was registered"
    )]
    Timeout { target: String, seconds: u64 },
    #[error("{0}; nothing was registered")]
    Read(#[source] LocationError),
}

/// Why a location was not removed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RemoveError {
    #[error(transparent)]
    NotFound(#[from] Missing),
    #[error("the location cannot be removed from the store: {0}")]
    Store(#[from] StoreError),
}

/// An update removes the old location as `DELETE` would.
impl From<RemoveError> for RegisterError {
    fn from(err: RemoveError) -> Self {
        match err {
            RemoveError::NotFound(missing) => RegisterError::NotFound(missing),
            RemoveError::Store(err) => RegisterError::Store(err),
        }
    }
}
