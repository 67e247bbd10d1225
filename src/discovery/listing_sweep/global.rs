//! Which listing a Data Center sweep makes. The global listing
//! (`GET /repos?limit=1000`) costs one request per 1,000 repositories the
//! credential can read; the provider's own listing costs one request per
//! project (plus the projects page). The sweep uses the global one unless
//! the server does not serve it (then it says so once and lists project by
//! project), or it showed that the provider's projects cost less.
//!
//! The global listing shows every repository the credential can read, so
//! its answer is cut to what the provider's own listing would list: only
//! projects `GET /projects` lists (it leaves out personal ones, which a full
//! run never sees either), then the provider's filters, through the same
//! check events go through ([`Flavour::listed_one`]). `GET /projects` is
//! asked again when a project it has not seen shows up, or after
//! [`PROJECTS_TTL`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::super::RepoRef;
use super::super::plan::Listed;
use super::super::provider::{Flavour, ListingError, Provider};
use super::super::server::ServerFlavour;
use super::SweepError;
use crate::bitbucket::server::{PAGE_LIMIT, Repository, ServerClient, global_listing_missing};
use crate::bitbucket::{BitbucketError, RequestStats};

/// How long the projects `GET /projects` listed are trusted; a new project
/// that shows up in the global listing is looked up at once anyway.
pub(crate) const PROJECTS_TTL: Duration = Duration::from_secs(3600);

/// A provider's choice of listing, kept between its sweeps.
#[derive(Debug, Default)]
pub(crate) struct ListingRoute {
    state: Mutex<RouteState>,
}

#[derive(Debug, Default)]
struct RouteState {
    /// List project by project: the global listing is not served, or
    /// costs more for this provider.
    per_project: bool,
    scope: Option<ProjectScope>,
}

/// What `GET /projects` listed, and the projects the global listing showed
/// that it did not list (personal ones): both known, no need to ask again.
#[derive(Debug, Clone)]
struct ProjectScope {
    listed: HashSet<String>,
    unlisted: HashSet<String>,
    at: Instant,
}

impl ProjectScope {
    fn knows_all<'a>(&self, mut keys: impl Iterator<Item = &'a str>) -> bool {
        self.at.elapsed() < PROJECTS_TTL
            && keys.all(|k| self.listed.contains(k) || self.unlisted.contains(k))
    }
}

/// Why the global listing gave no listing.
#[derive(Debug)]
pub(super) enum GlobalError {
    /// Not served: list project by project (this sweep and the next ones).
    Missing(BitbucketError),
    /// Failed this time: nothing may be removed.
    Failed(SweepError),
}

impl ListingRoute {
    /// Whether the sweep should try the global listing.
    pub(super) fn global(&self) -> bool {
        !self.state.lock().per_project
    }

    /// From now on, list project by project.
    pub(super) fn per_project(&self) {
        self.state.lock().per_project = true;
    }
}

/// The provider's repositories through the global listing, cut to what its
/// own listing would list.
pub(super) async fn list(
    provider: &Provider<ServerFlavour>,
    client: &ServerClient,
    stats: &Arc<RequestStats>,
    route: &ListingRoute,
) -> Result<Vec<Listed>, GlobalError> {
    let flavour = &provider.flavour;
    let before = stats.requests();
    let repos = client
        .all_repositories(!flavour.config.filters.skip_archived_repos)
        .await
        .map_err(|err| {
            if global_listing_missing(&err) {
                GlobalError::Missing(err)
            } else {
                GlobalError::Failed(SweepError::Global(err))
            }
        })?;
    let pages = stats.requests().saturating_sub(before);
    let scope = scope(client, route, &repos)
        .await
        .map_err(|err| GlobalError::Failed(ListingError::Projects(err).into()))?;
    let estimate = per_project_cost(provider, &scope, &repos);
    if pages > estimate {
        tracing::info!(
            provider = flavour.id(),
            global = pages,
            per_project = estimate,
            "listing sweep: the provider's projects cost fewer requests than the global listing; sweeps list project by project from now on"
        );
        route.per_project();
    }
    let mut listed: Vec<Listed> = repos
        .into_iter()
        .filter(|repo| scope.listed.contains(&repo.project.key))
        .filter_map(|repo| {
            flavour
                .listed_one(client, &repo_ref(repo), None, &provider.fingerprint)
                .ok()
        })
        .collect();
    listed.sort_by(|a, b| {
        (&a.record.project, &a.record.slug).cmp(&(&b.record.project, &b.record.slug))
    });
    Ok(listed)
}

/// The projects in scope: the last `GET /projects`, or a new one when the
/// listing shows a project it did not see, or it is older than the TTL.
async fn scope(
    client: &ServerClient,
    route: &ListingRoute,
    repos: &[Repository],
) -> Result<ProjectScope, BitbucketError> {
    let keys = || repos.iter().map(|r| r.project.key.as_str());
    if let Some(scope) = &route.state.lock().scope
        && scope.knows_all(keys())
    {
        return Ok(scope.clone());
    }
    let listed: HashSet<String> = client
        .projects()
        .await?
        .into_iter()
        .map(|p| p.key)
        .collect();
    let unlisted = keys()
        .filter(|k| !listed.contains(*k))
        .map(str::to_owned)
        .collect();
    let scope = ProjectScope {
        listed,
        unlisted,
        at: Instant::now(),
    };
    route.state.lock().scope = Some(scope.clone());
    Ok(scope)
}

/// The fewest requests the provider's own listing could make: the projects
/// pages and, per project its `projectKey` lets in, one page per 1,000 of
/// its repositories (at least one).
fn per_project_cost(
    provider: &Provider<ServerFlavour>,
    scope: &ProjectScope,
    repos: &[Repository],
) -> u64 {
    let page = u64::from(PAGE_LIMIT);
    let mut per_project: HashMap<&str, u64> = HashMap::new();
    for repo in repos {
        *per_project.entry(repo.project.key.as_str()).or_default() += 1;
    }
    let filter = provider.flavour.config.filters.project_key.as_ref();
    let projects = u64::try_from(scope.listed.len()).unwrap_or(u64::MAX);
    let pages: u64 = scope
        .listed
        .iter()
        .filter(|key| filter.is_none_or(|re| re.is_match(key)))
        .map(|key| {
            per_project
                .get(key.as_str())
                .map_or(1, |n| n.div_ceil(page).max(1))
        })
        .sum();
    projects.div_ceil(page).max(1).saturating_add(pages)
}

/// A listed repository as an event would name it.
fn repo_ref(repo: Repository) -> RepoRef {
    let web_url = repo.browse_url().map(str::to_owned);
    RepoRef {
        main_branch: repo.default_branch.as_ref().and_then(|b| b.name()),
        project: Some(repo.project.key),
        workspace: None,
        slug: repo.slug,
        id: repo.id.map(|id| id.to_string()),
        web_url,
        archived: repo.archived,
    }
}
