//! Bitbucket's webhook events: the `X-Hub-Signature` check and the
//! payloads of the events discovery acts on, reduced to what changed. The
//! events are one table, [`SUBSCRIBED`]: adding a row is all it takes for
//! the webhooks to ask for an event and for [`parse`] to read it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::urls::url_host;
use crate::integrations::{Product, RepoRef};

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under
/// `secret`. The comparison takes the same time wherever the bytes differ.
pub(crate) fn signature_matches(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_digest) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// `sha256=<hex>` for `body` under `secret`: what Bitbucket sends.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `host[:port]` of `repository`'s web URL: which Bitbucket it is on.
pub(crate) fn host_of(repository: &RepoRef) -> Option<String> {
    repository.web_url.as_deref().and_then(url_host)
}

/// One branch an event moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BranchMove {
    /// `main`, not `refs/heads/main`.
    pub branch: String,
    /// The new head; `None` when the branch was deleted.
    pub to: Option<String>,
}

/// What an event means for discovery; its name (for metrics and logs)
/// from [`Event::kind`].
#[derive(Debug, Clone, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub(crate) enum Event {
    /// "Test connection".
    Ping,
    /// Branches moved (Data Center `repo:refs_changed`, Cloud `repo:push`).
    #[strum(serialize = "push")]
    Pushed {
        repository: RepoRef,
        branches: Vec<BranchMove>,
    },
    /// Renamed or moved to another project or workspace; `old` when the
    /// payload says where it was (else its id tells).
    Moved { old: Option<RepoRef>, new: RepoRef },
    /// Cloud `repo:deleted`.
    Deleted { repository: RepoRef },
    /// A pull request opened, or its source or target moved: check it
    /// (`repository`: the one it merges into).
    #[strum(serialize = "pullrequest")]
    PullRequest {
        repository: RepoRef,
        pull_request: PullRequest,
    },
    /// A pull request merged, declined or deleted: its preview goes.
    #[strum(serialize = "pullrequest_closed")]
    PullRequestClosed { repository: RepoRef, id: u64 },
    /// An event discovery does not act on.
    #[strum(serialize = "other")]
    Ignored { key: String },
}

/// A pull request as its event tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PullRequest {
    pub id: u64,
    pub title: String,
    /// The commit to check (the source branch's head).
    pub source_commit: String,
    pub source_branch: String,
    /// The branch it merges into.
    pub target_branch: String,
    /// The repository its source is in, when not the target (a fork).
    pub fork: Option<RepoRef>,
}

impl Event {
    /// The event's name, for metrics and logs.
    pub(crate) fn kind(&self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the {key} event's body is not what Bitbucket sends: {source}")]
pub(crate) struct PayloadError {
    key: String,
    #[source]
    source: serde_json::Error,
}

/// How an event's body becomes an [`Event`].
type Reader = fn(&[u8]) -> Result<Event, serde_json::Error>;

/// The events discovery acts on, by product and `X-Event-Key`, with how
/// each body is read: the webhooks discovery keeps subscribe to exactly
/// these, and [`parse`] reads exactly these (plus the ping).
pub(crate) const SUBSCRIBED: &[(Product, &str, Reader)] = &[
    (Product::Server, "repo:refs_changed", server::refs_changed),
    (Product::Server, "repo:modified", server::modified),
    (Product::Cloud, "repo:push", cloud::push),
    (Product::Cloud, "repo:updated", cloud::updated),
    (Product::Cloud, "repo:transfer", cloud::updated),
    (Product::Cloud, "repo:deleted", cloud::deleted),
    (Product::Server, "pr:opened", server::pull_request),
    (Product::Server, "pr:from_ref_updated", server::pull_request),
    (
        Product::Server,
        "pr:modified",
        server::pull_request_retargeted,
    ),
    (Product::Server, "pr:merged", server::pull_request_closed),
    (Product::Server, "pr:declined", server::pull_request_closed),
    (Product::Server, "pr:deleted", server::pull_request_closed),
    (Product::Cloud, "pullrequest:created", cloud::pull_request),
    (Product::Cloud, "pullrequest:updated", cloud::pull_request),
    (
        Product::Cloud,
        "pullrequest:fulfilled",
        cloud::pull_request_closed,
    ),
    (
        Product::Cloud,
        "pullrequest:rejected",
        cloud::pull_request_closed,
    ),
];

/// Data Center's "Test connection" (sent whatever the subscription).
const PING: (Product, &str) = (Product::Server, "diagnostics:ping");

/// The event keys webhooks of `product` subscribe to; pull-request events
/// only for a provider that checks pull requests.
pub(crate) fn subscribed(product: Product, pull_requests: bool) -> Vec<&'static str> {
    SUBSCRIBED
        .iter()
        .filter(|(p, key, _)| *p == product && (pull_requests || !is_pull_request_event(key)))
        .map(|(_, key, _)| *key)
        .collect()
}

/// `pr:…` (Data Center) and `pullrequest:…` (Cloud).
fn is_pull_request_event(key: &str) -> bool {
    key.starts_with("pr:") || key.starts_with("pullrequest:")
}

/// Reads the body of an `X-Event-Key: key` event.
pub(crate) fn parse(flavour: Product, key: &str, body: &[u8]) -> Result<Event, PayloadError> {
    if (flavour, key) == PING {
        return Ok(Event::Ping);
    }
    match SUBSCRIBED
        .iter()
        .find(|(f, k, _)| *f == flavour && *k == key)
    {
        Some((_, _, read)) => read(body).map_err(|source| PayloadError {
            key: key.to_owned(),
            source,
        }),
        None => Ok(Event::Ignored {
            key: key.to_owned(),
        }),
    }
}

/// Data Center's payload shapes (only the fields used).
mod server {
    use serde::Deserialize;

    use super::{BranchMove, Event, PullRequest, RepoRef, strip_heads};
    use crate::bitbucket::server::Repository;

    /// `repo:refs_changed`: branches (and tags) moved.
    pub(super) fn refs_changed(body: &[u8]) -> Result<Event, serde_json::Error> {
        let payload: RefsChanged = serde_json::from_slice(body)?;
        Ok(Event::Pushed {
            repository: payload.repository.into(),
            branches: payload
                .changes
                .into_iter()
                .filter_map(Change::branch_move)
                .collect(),
        })
    }

    /// `repo:modified`: renamed or moved to another project.
    pub(super) fn modified(body: &[u8]) -> Result<Event, serde_json::Error> {
        let payload: Modified = serde_json::from_slice(body)?;
        Ok(Event::Moved {
            old: Some(payload.old.into()),
            new: payload.new.into(),
        })
    }

    /// `pr:opened`, `pr:from_ref_updated`: a pull request to check.
    pub(super) fn pull_request(body: &[u8]) -> Result<Event, serde_json::Error> {
        let payload: PullRequestPayload = serde_json::from_slice(body)?;
        Ok(payload.pull_request.into_event())
    }

    /// `pr:modified`: checked again only when its target branch changed
    /// (a new title changes nothing in the catalog).
    pub(super) fn pull_request_retargeted(body: &[u8]) -> Result<Event, serde_json::Error> {
        let payload: PullRequestPayload = serde_json::from_slice(body)?;
        let retargeted = payload.previous_target.as_ref().is_some_and(|previous| {
            previous.id.as_deref().and_then(strip_heads)
                != payload
                    .pull_request
                    .to_ref
                    .id
                    .as_deref()
                    .and_then(strip_heads)
        });
        if !retargeted {
            return Ok(Event::Ignored {
                key: "pr:modified".into(),
            });
        }
        Ok(payload.pull_request.into_event())
    }

    /// `pr:merged`, `pr:declined`, `pr:deleted`.
    pub(super) fn pull_request_closed(body: &[u8]) -> Result<Event, serde_json::Error> {
        let payload: PullRequestPayload = serde_json::from_slice(body)?;
        let pr = payload.pull_request;
        Ok(Event::PullRequestClosed {
            repository: pr.to_ref.repository.into(),
            id: pr.id,
        })
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct PullRequestPayload {
        pull_request: Pr,
        previous_target: Option<PreviousTarget>,
    }

    /// `pr:modified`'s target before the change.
    #[derive(Deserialize)]
    struct PreviousTarget {
        id: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Pr {
        id: u64,
        #[serde(default)]
        title: String,
        from_ref: PrRef,
        to_ref: PrRef,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct PrRef {
        id: Option<String>,
        display_id: Option<String>,
        latest_commit: Option<String>,
        repository: Repository,
    }

    impl PrRef {
        fn branch(&self) -> String {
            self.id
                .as_deref()
                .and_then(strip_heads)
                .or_else(|| self.display_id.clone())
                .unwrap_or_default()
        }
    }

    impl Pr {
        fn into_event(self) -> Event {
            let source_branch = self.from_ref.branch();
            let target_branch = self.to_ref.branch();
            let same = self.from_ref.repository.slug == self.to_ref.repository.slug
                && self.from_ref.repository.project.key == self.to_ref.repository.project.key;
            let source_commit = self.from_ref.latest_commit.unwrap_or_default();
            let fork = (!same).then(|| self.from_ref.repository.into());
            Event::PullRequest {
                repository: self.to_ref.repository.into(),
                pull_request: PullRequest {
                    id: self.id,
                    title: self.title,
                    source_commit,
                    source_branch,
                    target_branch,
                    fork,
                },
            }
        }
    }

    #[derive(Deserialize)]
    struct RefsChanged {
        pub repository: Repository,
        #[serde(default)]
        pub changes: Vec<Change>,
    }

    #[derive(Deserialize)]
    struct Change {
        #[serde(rename = "ref")]
        reference: Option<Ref>,
        #[serde(rename = "refId")]
        ref_id: Option<String>,
        #[serde(rename = "toHash")]
        to_hash: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
    }

    #[derive(Deserialize)]
    struct Ref {
        id: Option<String>,
        #[serde(rename = "displayId")]
        display_id: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
    }

    impl Change {
        /// The branch it moved; `None` for tags.
        fn branch_move(self) -> Option<BranchMove> {
            let reference = self.reference.as_ref();
            if reference
                .and_then(|r| r.kind.as_deref())
                .is_some_and(|k| !k.eq_ignore_ascii_case("BRANCH"))
            {
                return None;
            }
            let id = reference.and_then(|r| r.id.clone()).or(self.ref_id.clone());
            let branch = match id {
                Some(id) => strip_heads(&id)?,
                None => reference.and_then(|r| r.display_id.clone())?,
            };
            let deleted = self
                .kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("DELETE"));
            Some(BranchMove {
                branch,
                to: if deleted { None } else { self.to_hash },
            })
        }
    }

    #[derive(Deserialize)]
    struct Modified {
        pub old: Repository,
        pub new: Repository,
    }

    impl From<Repository> for RepoRef {
        fn from(repo: Repository) -> Self {
            Self {
                web_url: repo.browse_url().map(str::to_owned),
                project: Some(repo.project.key),
                workspace: None,
                id: repo.id.map(|id| id.to_string()),
                archived: repo.archived,
                main_branch: repo.default_branch.and_then(|b| b.name()),
                slug: repo.slug,
            }
        }
    }
}

/// Cloud's payload shapes (only the fields used).
mod cloud {
    use serde::Deserialize;

    use super::{BranchMove, Event, PullRequest, RepoRef};

    /// `pullrequest:created`, `pullrequest:updated`: a pull request to check.
    pub(super) fn pull_request(body: &[u8]) -> Result<Event, serde_json::Error> {
        let payload: PullRequestPayload = serde_json::from_slice(body)?;
        let pr = payload.pullrequest;
        let target: RepoRef = pr
            .destination
            .repository
            .or(payload.repository)
            .ok_or_else(no_repository)?
            .into();
        let source: Option<RepoRef> = pr.source.repository.map(Into::into);
        let fork = source.filter(|s| {
            !(s.slug.eq_ignore_ascii_case(&target.slug)
                && s.workspace.as_deref().map(str::to_lowercase)
                    == target.workspace.as_deref().map(str::to_lowercase))
        });
        Ok(Event::PullRequest {
            repository: target,
            pull_request: PullRequest {
                id: pr.id,
                title: pr.title,
                source_commit: pr.source.commit.and_then(|c| c.hash).unwrap_or_default(),
                source_branch: pr.source.branch.map(|b| b.name).unwrap_or_default(),
                target_branch: pr.destination.branch.map(|b| b.name).unwrap_or_default(),
                fork,
            },
        })
    }

    /// `pullrequest:fulfilled` (merged), `pullrequest:rejected` (declined).
    pub(super) fn pull_request_closed(body: &[u8]) -> Result<Event, serde_json::Error> {
        let payload: PullRequestPayload = serde_json::from_slice(body)?;
        let pr = payload.pullrequest;
        Ok(Event::PullRequestClosed {
            repository: pr
                .destination
                .repository
                .or(payload.repository)
                .ok_or_else(no_repository)?
                .into(),
            id: pr.id,
        })
    }

    fn no_repository() -> serde_json::Error {
        serde::de::Error::custom("the pull request names no repository")
    }

    #[derive(Deserialize)]
    struct PullRequestPayload {
        pullrequest: Pr,
        repository: Option<Repository>,
    }

    #[derive(Deserialize)]
    struct Pr {
        id: u64,
        #[serde(default)]
        title: String,
        source: Side,
        destination: Side,
    }

    #[derive(Deserialize)]
    struct Side {
        branch: Option<Named>,
        commit: Option<Target>,
        repository: Option<Repository>,
    }

    /// `repo:push`: branches (and tags) moved.
    pub(super) fn push(body: &[u8]) -> Result<Event, serde_json::Error> {
        let payload: Push = serde_json::from_slice(body)?;
        Ok(Event::Pushed {
            repository: payload.repository.into(),
            branches: payload
                .push
                .changes
                .into_iter()
                .filter_map(Change::branch_move)
                .collect(),
        })
    }

    /// `repo:updated` and `repo:transfer`: renamed, or moved to another
    /// workspace.
    pub(super) fn updated(body: &[u8]) -> Result<Event, serde_json::Error> {
        let payload: Updated = serde_json::from_slice(body)?;
        Ok(Event::Moved {
            old: payload.old(),
            new: payload.repository.into(),
        })
    }

    /// `repo:deleted`.
    pub(super) fn deleted(body: &[u8]) -> Result<Event, serde_json::Error> {
        let payload: Deleted = serde_json::from_slice(body)?;
        Ok(Event::Deleted {
            repository: payload.repository.into(),
        })
    }

    #[derive(Deserialize)]
    pub(crate) struct Repository {
        full_name: Option<String>,
        slug: Option<String>,
        uuid: Option<String>,
        workspace: Option<Workspace>,
        project: Option<Project>,
        mainbranch: Option<Named>,
        links: Option<Links>,
    }

    #[derive(Deserialize)]
    struct Workspace {
        slug: String,
    }

    #[derive(Deserialize)]
    struct Project {
        key: String,
    }

    #[derive(Deserialize)]
    pub(super) struct Named {
        name: String,
    }

    #[derive(Deserialize)]
    struct Links {
        html: Option<Href>,
    }

    #[derive(Deserialize)]
    struct Href {
        href: String,
    }

    impl Repository {
        /// `(workspace, slug)`: from the fields, else from `full_name`.
        fn names(&self) -> (Option<String>, Option<String>) {
            let (ws, slug) = match self.full_name.as_deref().and_then(|f| f.split_once('/')) {
                Some((ws, slug)) => (Some(ws.to_owned()), Some(slug.to_owned())),
                None => (None, None),
            };
            (
                self.workspace.as_ref().map(|w| w.slug.clone()).or(ws),
                self.slug.clone().or(slug),
            )
        }
    }

    impl From<Repository> for RepoRef {
        fn from(repo: Repository) -> Self {
            let (workspace, slug) = repo.names();
            Self {
                project: repo.project.map(|p| p.key),
                workspace,
                slug: slug.unwrap_or_default(),
                id: repo.uuid,
                web_url: repo
                    .links
                    .and_then(|l| l.html)
                    .map(|h| h.href.trim_end_matches('/').to_owned()),
                archived: false,
                main_branch: repo.mainbranch.map(|b| b.name).filter(|n| !n.is_empty()),
            }
        }
    }

    #[derive(Deserialize)]
    struct Push {
        pub repository: Repository,
        pub push: Changes,
    }

    #[derive(Deserialize)]
    struct Changes {
        #[serde(default)]
        pub changes: Vec<Change>,
    }

    #[derive(Deserialize)]
    struct Change {
        old: Option<Head>,
        new: Option<Head>,
    }

    #[derive(Deserialize)]
    struct Head {
        name: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
        target: Option<Target>,
    }

    #[derive(Deserialize)]
    struct Target {
        hash: Option<String>,
    }

    impl Change {
        /// The branch it moved; `None` for tags.
        fn branch_move(self) -> Option<BranchMove> {
            let is_branch = |h: &Head| h.kind.as_deref().is_none_or(|k| k == "branch");
            match (self.new, self.old) {
                (Some(new), _) if is_branch(&new) => Some(BranchMove {
                    branch: new.name?,
                    to: new.target.and_then(|t| t.hash),
                }),
                (None, Some(old)) if is_branch(&old) => Some(BranchMove {
                    branch: old.name?,
                    to: None,
                }),
                _ => None,
            }
        }
    }

    /// `repo:updated` and `repo:transfer`: the repository as it is now,
    /// with what changed (`changes.full_name.old` after a rename).
    #[derive(Deserialize)]
    struct Updated {
        pub repository: Repository,
        #[serde(default)]
        changes: Option<UpdatedChanges>,
    }

    #[derive(Deserialize)]
    struct UpdatedChanges {
        full_name: Option<OldNew>,
        slug: Option<OldNew>,
    }

    #[derive(Deserialize)]
    struct OldNew {
        old: Option<String>,
    }

    impl Updated {
        /// Where the repository was, when the payload says.
        fn old(&self) -> Option<RepoRef> {
            let changes = self.changes.as_ref()?;
            let (workspace, slug) = match changes
                .full_name
                .as_ref()
                .and_then(|f| f.old.as_deref())
                .and_then(|f| f.split_once('/'))
            {
                Some((ws, slug)) => (Some(ws.to_owned()), slug.to_owned()),
                None => (
                    self.repository.names().0,
                    changes.slug.as_ref().and_then(|s| s.old.clone())?,
                ),
            };
            Some(RepoRef {
                project: None,
                workspace,
                slug,
                id: self.repository.uuid.clone(),
                web_url: None,
                archived: false,
                main_branch: None,
            })
        }
    }

    #[derive(Deserialize)]
    struct Deleted {
        pub repository: Repository,
    }
}

/// A body with what every subscribed event of `product` needs, and
/// nothing else: for tests that go through [`SUBSCRIBED`].
#[cfg(test)]
pub(crate) fn minimal_body(product: Product) -> serde_json::Value {
    use serde_json::json;
    match product {
        Product::Server => {
            let repository = json!({"slug": "svc", "project": {"key": "PRJ"}});
            let side = |branch: &str| json!({"id": format!("refs/heads/{branch}"), "latestCommit": "c0ffee", "repository": repository});
            json!({"repository": repository, "old": repository, "new": repository, "changes": [],
                "pullRequest": {"id": 1, "fromRef": side("feature"), "toRef": side("main")},
                "previousTarget": {"id": "refs/heads/old"}})
        }
        Product::Cloud => {
            let side = |branch: &str| json!({"branch": {"name": branch}, "commit": {"hash": "c0ffee"}, "repository": {"full_name": "ws/svc"}});
            json!({"repository": {"full_name": "ws/svc"}, "push": {"changes": []},
                "pullrequest": {"id": 1, "source": side("feature"), "destination": side("main")}})
        }
    }
}

/// `main` from `refs/heads/main`; `None` for other refs (tags, notes).
fn strip_heads(id: &str) -> Option<String> {
    id.strip_prefix("refs/heads/")
        .filter(|b| !b.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parsed(flavour: Product, key: &str, body: &serde_json::Value) -> Event {
        parse(flavour, key, &serde_json::to_vec(body).unwrap()).unwrap()
    }

    /// The repository and branches of a push event.
    fn pushed(flavour: Product, key: &str, body: &serde_json::Value) -> (RepoRef, Vec<BranchMove>) {
        match parsed(flavour, key, body) {
            Event::Pushed {
                repository,
                branches,
            } => (repository, branches),
            event => panic!("{event:?}"),
        }
    }

    #[test]
    fn signatures_verify_only_with_the_same_secret_and_body() {
        let body = br#"{"eventKey":"repo:refs_changed"}"#;
        let header = sign(b"s3cret", body);
        assert!(header.starts_with("sha256="));
        assert!(signature_matches(b"s3cret", body, &header));
        assert!(!signature_matches(b"other", body, &header));
        assert!(!signature_matches(b"s3cret", b"{}", &header));
        assert!(!signature_matches(b"s3cret", body, "sha1=abc"));
        assert!(!signature_matches(b"s3cret", body, "sha256=zz"));
        assert!(!signature_matches(b"s3cret", body, ""));
    }

    #[test]
    fn data_center_refs_changed_names_branches_not_tags() {
        let body = json!({
            "eventKey": "repo:refs_changed",
            "repository": {"slug": "svc", "id": 7, "project": {"key": "PRJ"},
                "links": {"self": [{"href": "https://bb.example.com/projects/PRJ/repos/svc/browse"}]}},
            "changes": [
                {"ref": {"id": "refs/heads/main", "displayId": "main", "type": "BRANCH"},
                 "refId": "refs/heads/main", "fromHash": "a", "toHash": "b", "type": "UPDATE"},
                {"ref": {"id": "refs/tags/v1", "displayId": "v1", "type": "TAG"},
                 "refId": "refs/tags/v1", "fromHash": "0", "toHash": "c", "type": "ADD"},
                {"ref": {"id": "refs/heads/old", "displayId": "old", "type": "BRANCH"},
                 "refId": "refs/heads/old", "fromHash": "d", "toHash": "0", "type": "DELETE"}
            ]
        });
        let (repository, branches) = pushed(Product::Server, "repo:refs_changed", &body);
        assert_eq!(repository.project.as_deref(), Some("PRJ"));
        assert_eq!(repository.id.as_deref(), Some("7"));
        assert_eq!(host_of(&repository).as_deref(), Some("bb.example.com"));
        assert_eq!(
            branches,
            [
                BranchMove {
                    branch: "main".into(),
                    to: Some("b".into())
                },
                BranchMove {
                    branch: "old".into(),
                    to: None
                }
            ]
        );
    }

    #[test]
    fn cloud_push_and_rename() {
        let push = json!({
            "push": {"changes": [{"old": null, "new": {"name": "main", "type": "branch", "target": {"hash": "abc"}}},
                                 {"new": {"name": "v1", "type": "tag", "target": {"hash": "def"}}}]},
            "repository": {"full_name": "ws/svc", "uuid": "{u}", "links": {"html": {"href": "https://bitbucket.org/ws/svc"}}}
        });
        let (repository, branches) = pushed(Product::Cloud, "repo:push", &push);
        assert_eq!(
            (repository.workspace.as_deref(), repository.slug.as_str()),
            (Some("ws"), "svc")
        );
        assert_eq!(
            branches,
            [BranchMove {
                branch: "main".into(),
                to: Some("abc".into())
            }]
        );

        let updated = json!({
            "repository": {"full_name": "ws/new", "uuid": "{u}"},
            "changes": {"full_name": {"old": "ws/old", "new": "ws/new"}}
        });
        let event = parsed(Product::Cloud, "repo:updated", &updated);
        let Event::Moved { old, new } = event else {
            panic!("{event:?}")
        };
        assert_eq!(old.unwrap().slug, "old");
        assert_eq!(new.slug, "new");
    }

    #[test]
    fn every_subscribed_event_is_acted_on() {
        for (flavour, key, _) in SUBSCRIBED {
            let event = parsed(*flavour, key, &minimal_body(*flavour));
            assert!(
                !matches!(event, Event::Ignored { .. } | Event::Ping),
                "{key}: {event:?}"
            );
        }
    }

    #[test]
    fn only_subscribed_events_and_the_ping_are_acted_on() {
        let keys = [
            "diagnostics:ping",
            "repo:refs_changed",
            "repo:modified",
            "repo:push",
            "repo:updated",
            "repo:transfer",
            "repo:deleted",
            "repo:forked",
            "pr:opened",
            "pullrequest:created",
            "repo:commit_status_created",
        ];
        for flavour in [Product::Server, Product::Cloud] {
            for key in keys {
                let event = parsed(flavour, key, &minimal_body(flavour));
                let acted_on = !matches!(event, Event::Ignored { .. });
                let expected = SUBSCRIBED
                    .iter()
                    .any(|(f, k, _)| *f == flavour && *k == key)
                    || (flavour, key) == PING;
                assert_eq!(acted_on, expected, "{flavour:?} {key}: {event:?}");
            }
        }
    }

    #[test]
    fn pull_request_events_name_the_target_and_the_source_commit() {
        let repo = |slug: &str| json!({"slug": slug, "id": 7, "project": {"key": "PRJ"}});
        let body = json!({"pullRequest": {"id": 12, "title": "t",
            "fromRef": {"id": "refs/heads/feature", "latestCommit": "abc", "repository": repo("fork")},
            "toRef": {"id": "refs/heads/main", "latestCommit": "def", "repository": repo("svc")}}});
        let Event::PullRequest {
            repository,
            pull_request,
        } = parsed(Product::Server, "pr:opened", &body)
        else {
            panic!("not a pull request")
        };
        assert_eq!(repository.slug, "svc");
        assert_eq!(
            (pull_request.id, pull_request.source_commit.as_str()),
            (12, "abc")
        );
        assert_eq!(pull_request.target_branch, "main");
        assert_eq!(pull_request.fork.map(|f| f.slug).as_deref(), Some("fork"));
        // A new title alone is not checked again.
        let mut retitled = body.clone();
        retitled["previousTarget"] = json!({"id": "refs/heads/main"});
        assert!(matches!(
            parsed(Product::Server, "pr:modified", &retitled),
            Event::Ignored { .. }
        ));
        let cloud = json!({"pullrequest": {"id": 3, "title": "t",
            "source": {"branch": {"name": "f"}, "commit": {"hash": "abc"}, "repository": {"full_name": "ws/svc"}},
            "destination": {"branch": {"name": "main"}, "repository": {"full_name": "ws/svc"}}}});
        let Event::PullRequest { pull_request, .. } =
            parsed(Product::Cloud, "pullrequest:updated", &cloud)
        else {
            panic!("not a pull request")
        };
        assert_eq!(pull_request.fork, None);
        assert_eq!(
            parsed(Product::Cloud, "pullrequest:fulfilled", &cloud).kind(),
            "pullrequest_closed"
        );
    }

    #[test]
    fn unknown_events_are_ignored_and_broken_bodies_are_errors() {
        assert_eq!(
            parse(Product::Server, "pr:comment:added", b"{}").unwrap(),
            Event::Ignored {
                key: "pr:comment:added".into()
            }
        );
        assert!(parse(Product::Server, "repo:refs_changed", b"{}").is_err());
        assert!(parse(Product::Cloud, "repo:push", b"not json").is_err());
    }
}
