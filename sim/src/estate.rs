//! The real estate beyond one catalog file per repository: monorepos with
//! many nested catalog files (and decoys a glob must not take), and
//! `.bitbucket/CODEOWNERS` files in Data Center's and Cloud's syntax.
//!
//! Each repository draws from its own streams, apart from the one that
//! shapes its root file, so with both ratios at 0 the data set is exactly
//! the simple estate.

use serde::Serialize;

use crate::config::DatasetConfig;
use crate::dataset::{ComponentSpec, Style, component_yaml, entity_ref};
use crate::rng::Rng;

/// Where Bitbucket (Data Center 8+ and Cloud) reads code owners.
pub const CODEOWNERS_PATH: &str = ".bitbucket/CODEOWNERS";

/// What a repository's code owners file says about `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "owner")]
pub enum CodeOwners {
    /// No `.bitbucket/CODEOWNERS`.
    NoFile,
    /// A file whose last `*` rule names nobody, or that has no `*` rule.
    Nobody,
    /// The owner of the last `*` rule as an entity ref:
    /// `group:default/<name>` for `@@group` (Data Center) and
    /// `@workspace/team` (Cloud), `user:default/<name>` for `@user`.
    Owner(String),
}

/// The extra files of one repository and what they should yield.
pub(crate) struct Estate {
    pub(crate) files: Vec<(String, String)>,
    /// Entities of the nested `catalog-info.yaml` files (not the root one).
    pub(crate) nested_refs: Vec<String>,
    pub(crate) monorepo: bool,
    pub(crate) code_owners: CodeOwners,
}

/// Where the repository is, for its streams and names.
pub(crate) struct Place<'a> {
    /// `server` or `cloud`.
    pub(crate) scope: &'a str,
    pub(crate) project_key: &'a str,
    pub(crate) slug: &'a str,
    /// The unique entity name prefix of the repository.
    pub(crate) base: &'a str,
}

const DIRS: &[&str] = &["services", "libs", "apps", "platform"];
const GROUPS: &[&str] = &["core", "edge", "data", "web"];

pub(crate) fn build(seed: u64, config: &DatasetConfig, at: &Place<'_>) -> Estate {
    let stream = format!("{}/{}/{}", at.scope, at.project_key, at.slug);
    let mut estate = Estate {
        files: Vec::new(),
        nested_refs: Vec::new(),
        monorepo: false,
        code_owners: CodeOwners::NoFile,
    };
    let mut rng = Rng::derive(seed, &format!("monorepo/{stream}"));
    if rng.chance(config.monorepo_ratio) {
        estate.monorepo = true;
        monorepo_files(&mut rng, config.monorepo_files, at, &mut estate);
    }
    let mut rng = Rng::derive(seed, &format!("codeowners/{stream}"));
    if rng.chance(config.codeowners_ratio) {
        let cloud_workspace = (at.scope == "cloud").then_some(config.cloud_workspace.as_str());
        let (text, owner) = codeowners(&mut rng, cloud_workspace);
        estate.files.push((CODEOWNERS_PATH.to_owned(), text));
        estate.code_owners = owner;
    }
    estate
}

fn monorepo_files(rng: &mut Rng, (least, most): (usize, usize), at: &Place<'_>, out: &mut Estate) {
    let count = least + rng.below(most - least + 1);
    for i in 1..=count {
        let dir = rng.pick(DIRS).copied().unwrap_or("services");
        let group = rng.pick(GROUPS).copied().unwrap_or("core");
        let unit = format!("unit-{i:04}");
        // Depths 2 to 4, so a glob must look at any depth.
        let path = match rng.below(4) {
            0 => format!("{dir}/{unit}/catalog-info.yaml"),
            1 => format!("{dir}/{group}/{unit}/catalog-info.yaml"),
            2 => format!("{dir}/{group}/{unit}/deploy/catalog-info.yaml"),
            _ => format!("{unit}/catalog-info.yaml"),
        };
        let name = format!("{}-m{i:04}", at.base);
        let style = match rng.below(4) {
            0 => Style::Plain,
            1 => Style::Commented,
            2 => Style::Flow,
            _ => Style::Crlf,
        };
        let description = format!("{unit} of {} in {}", at.slug, at.project_key);
        let owner = format!("team-{}", rng.below(12) + 1);
        let text = component_yaml(
            &ComponentSpec {
                name: &name,
                description: &description,
                kind_type: "service",
                lifecycle: "production",
                owner: &owner,
                provides_api: None,
            },
            style,
        );
        if let Some((dir, _)) = path.rsplit_once('/') {
            if rng.chance(0.5) {
                out.files
                    .push((format!("{dir}/README.md"), format!("# {unit}\n")));
            }
        }
        out.files.push((path, text));
        out.nested_refs.push(entity_ref("Component", &name));
    }
    // Names a `**/catalog-info.yaml` glob must not take; valid entities, so
    // serving one by mistake shows in the catalog.
    for (n, path) in [
        "docs/catalog-info.yaml.bak",
        "services/legacy/catalog-info.yml",
        "examples/catalog-info.yaml.example",
        "templates/catalog-info.yaml/README.md",
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("{}-decoy-{n}", at.base);
        let text = component_yaml(
            &ComponentSpec {
                name: &name,
                description: "not a catalog file",
                kind_type: "service",
                lifecycle: "experimental",
                owner: "team-decoy",
                provides_api: None,
            },
            Style::Plain,
        );
        out.files.push((path.to_owned(), text));
    }
}

/// A code owners file and the owner of its `*` rule. Data Center names
/// groups `@@group`; Cloud names teams `@workspace/team`; both name users
/// `@user`; the last matching rule wins.
fn codeowners(rng: &mut Rng, cloud_workspace: Option<&str>) -> (String, CodeOwners) {
    let team = format!("team-{}", rng.below(12) + 1);
    let user = format!("user{}", rng.below(40) + 1);
    let group_of = |name: &str| match cloud_workspace {
        Some(ws) => format!("@{ws}/{name}"),
        None => format!("@@{name}"),
    };
    let (group_token, writers, old_owners) =
        (group_of(&team), group_of("writers"), group_of("old-owners"));
    let header = "# Code owners, read by Bitbucket for reviewers.\n";
    let group = CodeOwners::Owner(format!("group:default/{team}"));
    match rng.below(5) {
        0 => (format!("{header}* {group_token}\n/docs/ @{user}\n"), group),
        1 => (
            format!("{header}*   @{user}   # the maintainer\n*.md {writers}\n"),
            CodeOwners::Owner(format!("user:default/{user}")),
        ),
        // The last `*` rule wins over the first.
        2 => (
            format!("{header}* {old_owners}\n/src/ @{user}\n* {group_token}\n"),
            group,
        ),
        // No `*` rule: nobody owns the repository as a whole.
        3 => (
            format!("{header}/src/ {group_token}\n*.yaml @{user}\n"),
            CodeOwners::Nobody,
        ),
        // A `*` rule with no owners resets ownership.
        _ => (
            format!("{header}* {group_token}\n*\n/src/ @{user}\n"),
            CodeOwners::Nobody,
        ),
    }
}
