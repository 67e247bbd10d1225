//! The generated data set: projects, repositories, catalog files, and the
//! entity refs each file should yield, so tests can assert exact results.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::config::{DatasetConfig, FileMix};
use crate::entity_yaml::{ComponentSpec, Style, component_yaml, entity_ref};
use crate::estate::{self, CodeOwners, Place};
use crate::history::History;
use crate::rng::Rng;

/// Where every repository's catalog file lives (Backstage's default).
pub const CATALOG_PATH: &str = "catalog-info.yaml";

/// The shape of a repository's `catalog-info.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "variant")]
pub enum FileKind {
    /// No catalog file (reading it answers 404).
    None,
    /// One Component.
    Component,
    /// A Component and the API it provides, sometimes with a null document between.
    MultiDocument,
    /// A Location whose relative `targets` point at more files in the repo,
    /// one of which is another Location (three levels).
    LocationTree,
    /// YAML that does not parse: the whole file is a problem.
    BrokenYaml(BrokenYaml),
    /// Parses, but its only entity is invalid by Backstage's rules.
    InvalidEntity(InvalidEntity),
}

impl FileKind {
    pub fn has_file(self) -> bool {
        self != FileKind::None
    }

    /// A short label (`component`, `broken_yaml`, …) for summaries.
    pub fn label(self) -> &'static str {
        match self {
            FileKind::None => "none",
            FileKind::Component => "component",
            FileKind::MultiDocument => "multi_document",
            FileKind::LocationTree => "location_tree",
            FileKind::BrokenYaml(_) => "broken_yaml",
            FileKind::InvalidEntity(_) => "invalid_entity",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokenYaml {
    /// `name: [unclosed`
    UnclosedFlow,
    /// A tab used for indentation.
    TabIndent,
    /// `name:` twice in one mapping (Backstage rejects duplicate keys).
    DuplicateKey,
    /// `name: "abc` to the end of the file.
    UnterminatedQuote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidEntity {
    /// `metadata` without `name`.
    MissingName,
    /// `metadata.name` with spaces and `!` (fails `[a-zA-Z0-9]+([-_.][a-zA-Z0-9]+)*`).
    BadNameCharacters,
    /// A well-formed `metadata.name` longer than 63 characters.
    NameTooLong,
}

/// One repository, Server or Cloud.
#[derive(Debug, Clone, Serialize)]
pub struct Repo {
    /// Server project key (`P0001`, `~USER001`) or Cloud project key.
    pub project_key: String,
    pub slug: String,
    pub name: String,
    pub id: u64,
    /// `{…}` UUID (Cloud shows these).
    pub uuid: String,
    /// Always false in Cloud, which has no archiving.
    pub archived: bool,
    pub default_branch: String,
    /// The default branch's head commit; files exist only there.
    pub commit: String,
    pub file_kind: FileKind,
    /// Path (no leading `/`) → content. Every repo has a `README.md`.
    #[serde(skip)]
    pub files: BTreeMap<String, String>,
    /// Valid entities `catalog-info.yaml` itself yields, as lowercase
    /// `kind:namespace/name` refs (a Location tree's root yields its Location).
    pub entity_refs: Vec<String>,
    /// `entity_refs` plus everything reached by following Location targets.
    pub tree_entity_refs: Vec<String>,
    /// Holds `DatasetConfig::monorepo_files` nested catalog files.
    pub monorepo: bool,
    /// Valid entities of the `catalog-info.yaml` files below the root (a
    /// monorepo's); a `**/catalog-info.yaml` glob yields these and `entity_refs`.
    pub nested_entity_refs: Vec<String>,
    /// What `.bitbucket/CODEOWNERS` says about `*`.
    pub code_owners: CodeOwners,
    /// Past commits of the default branch (bounded), for reads at a commit.
    #[serde(skip)]
    pub history: History,
}

impl Repo {
    pub fn file(&self, path: &str) -> Option<&str> {
        self.files
            .get(path.trim_start_matches('/'))
            .map(String::as_str)
    }

    pub fn catalog_file(&self) -> Option<&str> {
        self.file(CATALOG_PATH)
    }

    /// Paths a `**/catalog-info.yaml` glob matches: the root file and every
    /// nested one (decoys such as `catalog-info.yml` excluded), sorted.
    pub fn catalog_paths(&self) -> Vec<&str> {
        self.files
            .keys()
            .filter(|p| p.as_str() == CATALOG_PATH || p.ends_with("/catalog-info.yaml"))
            .map(String::as_str)
            .collect()
    }

    /// What a `**/catalog-info.yaml` glob yields without following Location
    /// targets: `entity_refs` and `nested_entity_refs`.
    pub fn glob_entity_refs(&self) -> impl Iterator<Item = &String> {
        self.entity_refs.iter().chain(&self.nested_entity_refs)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerProject {
    pub key: String,
    pub id: u64,
    pub name: String,
    /// A `~USER` project.
    pub personal: bool,
    pub repos: Vec<Repo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CloudProject {
    pub key: String,
    pub uuid: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CloudWorkspace {
    pub slug: String,
    pub uuid: String,
    pub projects: Vec<CloudProject>,
    /// Ordered by project, then slug.
    pub repos: Vec<Repo>,
}

/// Counts that describe a data set at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetSummary {
    pub server_projects: usize,
    pub server_personal_projects: usize,
    pub server_repos: usize,
    pub server_archived_repos: usize,
    pub server_files_by_kind: BTreeMap<&'static str, usize>,
    pub server_entities: usize,
    pub server_tree_entities: usize,
    pub cloud_projects: usize,
    pub cloud_repos: usize,
    pub cloud_files_by_kind: BTreeMap<&'static str, usize>,
    pub cloud_entities: usize,
    /// Monorepos and what a `**/catalog-info.yaml` glob yields (0 and the
    /// plain counts unless `monorepo_ratio` is set).
    pub server_monorepos: usize,
    pub server_glob_files: usize,
    pub server_glob_entities: usize,
    pub cloud_monorepos: usize,
    pub cloud_glob_files: usize,
    pub cloud_glob_entities: usize,
    /// Repositories with a `.bitbucket/CODEOWNERS`.
    pub server_codeowners: usize,
    pub cloud_codeowners: usize,
}

/// The whole generated data set.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub seed: u64,
    pub config: DatasetConfig,
    /// Regular projects first (by key), then personal ones.
    pub server_projects: Vec<ServerProject>,
    pub cloud: CloudWorkspace,
    server_index: HashMap<String, usize>,
    repo_index: HashMap<(usize, String), usize>,
    cloud_index: HashMap<String, usize>,
}

const AREAS: &[&str] = &[
    "billing",
    "payments",
    "auth",
    "search",
    "gateway",
    "inventory",
    "orders",
    "users",
    "notify",
    "ledger",
    "catalog",
    "reports",
    "shipping",
    "pricing",
    "media",
    "profile",
];
const ROLES: &[&str] = &[
    "service", "api", "web", "worker", "lib", "ui", "jobs", "proxy",
];
const TYPES: &[&str] = &["service", "website", "library"];
const LIFECYCLES: &[&str] = &["production", "experimental", "deprecated"];

impl Dataset {
    /// Builds the data set. Each repository draws from its own stream, keyed
    /// by its project and slug, so the same repo looks the same whatever the
    /// other counts are.
    pub fn generate(seed: u64, config: &DatasetConfig) -> Self {
        let mut server_projects = Vec::new();
        let mut next_id: u64 = 1;
        let regular = (1..=config.projects).map(|i| (format!("P{i:04}"), false));
        let personal = (1..=config.personal_projects).map(|i| (format!("~USER{i:03}"), true));
        for (project_id, (key, personal)) in (1u64..).zip(regular.chain(personal)) {
            let count = if personal {
                config.repos_per_personal_project
            } else {
                config.repos_per_project
            };
            let owner = key.trim_start_matches('~').to_lowercase();
            let mut rng = Rng::derive(seed, &format!("server-project/{key}"));
            let repos = (1..=count)
                .map(|index| {
                    let slug = slug(&mut rng, &format!("{index:03}"));
                    let id = next_id;
                    next_id += 1;
                    build_repo(
                        seed,
                        config,
                        RepoSeed {
                            scope: "server",
                            project_key: &key,
                            slug,
                            id,
                            entity_base_prefix: &owner,
                            can_archive: true,
                        },
                    )
                })
                .collect();
            let name = if personal {
                format!("{owner}'s personal project")
            } else {
                format!("Project {key}")
            };
            server_projects.push(ServerProject {
                key,
                id: project_id,
                name,
                personal,
                repos,
            });
        }

        let ws = config.cloud_workspace.clone();
        let mut ws_rng = Rng::derive(seed, &format!("cloud-workspace/{ws}"));
        let ws_uuid = uuid(&mut ws_rng);
        let mut cloud_projects = Vec::new();
        let mut cloud_repos = Vec::new();
        let mut cloud_no = 0usize;
        for p in 1..=config.cloud_projects {
            let key = format!("CP{p:03}");
            let mut rng = Rng::derive(seed, &format!("cloud-project/{ws}/{key}"));
            cloud_projects.push(CloudProject {
                key: key.clone(),
                uuid: uuid(&mut rng),
                name: format!("Cloud project {key}"),
            });
            for _ in 0..config.cloud_repos_per_project {
                cloud_no += 1;
                // Cloud slugs are unique per workspace, so number them globally.
                let slug = slug(&mut rng, &format!("{cloud_no:04}"));
                let id = next_id;
                next_id += 1;
                cloud_repos.push(build_repo(
                    seed,
                    config,
                    RepoSeed {
                        scope: "cloud",
                        project_key: &key,
                        slug,
                        id,
                        entity_base_prefix: "cloud",
                        can_archive: false,
                    },
                ));
            }
        }

        let server_index = server_projects
            .iter()
            .enumerate()
            .map(|(i, p)| (p.key.to_uppercase(), i))
            .collect();
        let repo_index = server_projects
            .iter()
            .enumerate()
            .flat_map(|(pi, p)| {
                p.repos
                    .iter()
                    .enumerate()
                    .map(move |(ri, r)| ((pi, r.slug.to_lowercase()), ri))
            })
            .collect();
        let cloud_index = cloud_repos
            .iter()
            .enumerate()
            .map(|(i, r)| (r.slug.to_lowercase(), i))
            .collect();
        Dataset {
            seed,
            config: config.clone(),
            server_projects,
            cloud: CloudWorkspace {
                slug: ws,
                uuid: ws_uuid,
                projects: cloud_projects,
                repos: cloud_repos,
            },
            server_index,
            repo_index,
            cloud_index,
        }
    }

    /// A Server project by key, case-insensitively (as Bitbucket resolves keys).
    pub fn server_project(&self, key: &str) -> Option<&ServerProject> {
        self.server_index
            .get(&key.to_uppercase())
            .and_then(|i| self.server_projects.get(*i))
    }

    pub fn server_repo(&self, key: &str, slug: &str) -> Option<&Repo> {
        let pi = *self.server_index.get(&key.to_uppercase())?;
        let ri = *self.repo_index.get(&(pi, slug.to_lowercase()))?;
        self.server_projects.get(pi)?.repos.get(ri)
    }

    pub(crate) fn server_repo_mut(&mut self, key: &str, slug: &str) -> Option<&mut Repo> {
        let pi = *self.server_index.get(&key.to_uppercase())?;
        let ri = *self.repo_index.get(&(pi, slug.to_lowercase()))?;
        self.server_projects.get_mut(pi)?.repos.get_mut(ri)
    }

    pub(crate) fn cloud_repo_mut(&mut self, slug: &str) -> Option<&mut Repo> {
        let index = *self.cloud_index.get(&slug.to_lowercase())?;
        self.cloud.repos.get_mut(index)
    }

    /// Renames a Server repository (its id stays); `false` when it does not
    /// exist or the new slug is taken.
    pub(crate) fn rename_server_repo(&mut self, key: &str, slug: &str, new_slug: &str) -> bool {
        let Some(&pi) = self.server_index.get(&key.to_uppercase()) else {
            return false;
        };
        if self.repo_index.contains_key(&(pi, new_slug.to_lowercase())) {
            return false;
        }
        let Some(ri) = self.repo_index.remove(&(pi, slug.to_lowercase())) else {
            return false;
        };
        self.repo_index.insert((pi, new_slug.to_lowercase()), ri);
        if let Some(repo) = self
            .server_projects
            .get_mut(pi)
            .and_then(|p| p.repos.get_mut(ri))
        {
            new_slug.clone_into(&mut repo.slug);
        }
        true
    }

    /// Deletes a Server repository; `false` when it does not exist.
    pub(crate) fn delete_server_repo(&mut self, key: &str, slug: &str) -> bool {
        let Some(&pi) = self.server_index.get(&key.to_uppercase()) else {
            return false;
        };
        let Some(ri) = self.repo_index.remove(&(pi, slug.to_lowercase())) else {
            return false;
        };
        let Some(project) = self.server_projects.get_mut(pi) else {
            return false;
        };
        project.repos.remove(ri);
        // The repositories after it moved up one place.
        for (index, repo) in project.repos.iter().enumerate().skip(ri) {
            self.repo_index
                .insert((pi, repo.slug.to_lowercase()), index);
        }
        true
    }

    /// Renames a Cloud repository (its UUID stays), as [`Self::rename_server_repo`].
    pub(crate) fn rename_cloud_repo(&mut self, slug: &str, new_slug: &str) -> bool {
        if self.cloud_index.contains_key(&new_slug.to_lowercase()) {
            return false;
        }
        let Some(index) = self.cloud_index.remove(&slug.to_lowercase()) else {
            return false;
        };
        self.cloud_index.insert(new_slug.to_lowercase(), index);
        if let Some(repo) = self.cloud.repos.get_mut(index) {
            new_slug.clone_into(&mut repo.slug);
        }
        true
    }

    pub fn server_repos(&self) -> impl Iterator<Item = &Repo> {
        self.server_projects.iter().flat_map(|p| p.repos.iter())
    }

    pub fn cloud_repo(&self, slug: &str) -> Option<&Repo> {
        self.cloud_index
            .get(&slug.to_lowercase())
            .and_then(|i| self.cloud.repos.get(*i))
    }

    /// Whether `ws` names the Cloud workspace (slug, any case, or `{uuid}`).
    pub fn is_cloud_workspace(&self, ws: &str) -> bool {
        ws.eq_ignore_ascii_case(&self.cloud.slug) || ws.eq_ignore_ascii_case(&self.cloud.uuid)
    }

    /// The projects `GET /projects` lists.
    pub fn listed_server_projects(&self, list_personal: bool) -> Vec<&ServerProject> {
        self.server_projects
            .iter()
            .filter(|p| list_personal || !p.personal)
            .collect()
    }

    /// Every entity ref a Server discovery that reads `catalog-info.yaml`
    /// (without following Location targets) should produce.
    pub fn expected_server_refs(&self, skip_archived: bool) -> BTreeSet<String> {
        self.server_repos()
            .filter(|r| !(skip_archived && r.archived))
            .flat_map(|r| r.entity_refs.iter().cloned())
            .collect()
    }

    /// The same, following Location targets inside each repository.
    pub fn expected_server_tree_refs(&self, skip_archived: bool) -> BTreeSet<String> {
        self.server_repos()
            .filter(|r| !(skip_archived && r.archived))
            .flat_map(|r| r.tree_entity_refs.iter().cloned())
            .collect()
    }

    pub fn expected_cloud_refs(&self) -> BTreeSet<String> {
        self.cloud
            .repos
            .iter()
            .flat_map(|r| r.entity_refs.iter().cloned())
            .collect()
    }

    /// What a Server discovery with `catalogPath: "**/catalog-info.yaml"`
    /// should produce (no Location targets followed).
    pub fn expected_server_glob_refs(&self, skip_archived: bool) -> BTreeSet<String> {
        self.server_repos()
            .filter(|r| !(skip_archived && r.archived))
            .flat_map(|r| r.glob_entity_refs().cloned())
            .collect()
    }

    /// The same for the Cloud workspace.
    pub fn expected_cloud_glob_refs(&self) -> BTreeSet<String> {
        self.cloud
            .repos
            .iter()
            .flat_map(|r| r.glob_entity_refs().cloned())
            .collect()
    }

    /// The fewest requests a first Server discovery with a glob can make
    /// when it lists each kept repository's files (`files?limit=page_size`,
    /// all pages) and reads each matching file once: listing pages + file
    /// listing pages + one read per catalog file.
    pub fn server_glob_minimum_requests(
        &self,
        page_size: usize,
        list_personal: bool,
        skip_archived: bool,
    ) -> usize {
        let pages = |n: usize| n.div_ceil(page_size.max(1)).max(1);
        let per_repo: usize = self
            .listed_server_projects(list_personal)
            .iter()
            .flat_map(|p| p.repos.iter())
            .filter(|r| !(skip_archived && r.archived))
            .map(|r| pages(r.files.len()) + r.catalog_paths().len())
            .sum();
        self.server_listing_pages(page_size, list_personal) + per_repo
    }

    /// Listing pages a Server discovery needs at `page_size` (Σ pages of
    /// `/projects` and of each listed project's `/repos`; an empty listing
    /// still costs one request).
    pub fn server_listing_pages(&self, page_size: usize, list_personal: bool) -> usize {
        let pages = |n: usize| n.div_ceil(page_size.max(1)).max(1);
        let projects = self.listed_server_projects(list_personal);
        pages(projects.len()) + projects.iter().map(|p| pages(p.repos.len())).sum::<usize>()
    }

    /// The fewest requests a Server discovery can make: every listing page
    /// plus one file read per repository that is kept.
    pub fn server_minimum_requests(
        &self,
        page_size: usize,
        list_personal: bool,
        skip_archived: bool,
    ) -> usize {
        let reads: usize = self
            .listed_server_projects(list_personal)
            .iter()
            .flat_map(|p| p.repos.iter())
            .filter(|r| !(skip_archived && r.archived))
            .count();
        self.server_listing_pages(page_size, list_personal) + reads
    }

    /// Files a Server discovery reads through Location targets (each once):
    /// every `.yaml` of a Location tree but its `catalog-info.yaml`.
    pub fn server_location_target_reads(&self) -> usize {
        self.server_repos()
            .filter(|r| matches!(r.file_kind, FileKind::LocationTree))
            .map(|r| {
                r.files
                    .keys()
                    .filter(|p| p.ends_with(".yaml") && p.as_str() != "catalog-info.yaml")
                    .count()
            })
            .sum()
    }

    /// [`Dataset::server_minimum_requests`] plus the Location target reads:
    /// what a discovery that follows Location targets needs at the least.
    pub fn server_minimum_requests_with_targets(&self, page_size: usize) -> usize {
        self.server_minimum_requests(page_size, true, false) + self.server_location_target_reads()
    }

    pub fn summary(&self) -> DatasetSummary {
        let mut server_files_by_kind = BTreeMap::new();
        for r in self.server_repos() {
            *server_files_by_kind.entry(r.file_kind.label()).or_insert(0) += 1;
        }
        let mut cloud_files_by_kind = BTreeMap::new();
        for r in &self.cloud.repos {
            *cloud_files_by_kind.entry(r.file_kind.label()).or_insert(0) += 1;
        }
        DatasetSummary {
            server_projects: self.server_projects.iter().filter(|p| !p.personal).count(),
            server_personal_projects: self.server_projects.iter().filter(|p| p.personal).count(),
            server_repos: self.server_repos().count(),
            server_archived_repos: self.server_repos().filter(|r| r.archived).count(),
            server_files_by_kind,
            server_entities: self.expected_server_refs(false).len(),
            server_tree_entities: self.expected_server_tree_refs(false).len(),
            cloud_projects: self.cloud.projects.len(),
            cloud_repos: self.cloud.repos.len(),
            cloud_files_by_kind,
            cloud_entities: self.expected_cloud_refs().len(),
            server_monorepos: self.server_repos().filter(|r| r.monorepo).count(),
            server_glob_files: self.server_repos().map(|r| r.catalog_paths().len()).sum(),
            server_glob_entities: self.expected_server_glob_refs(false).len(),
            cloud_monorepos: self.cloud.repos.iter().filter(|r| r.monorepo).count(),
            cloud_glob_files: self
                .cloud
                .repos
                .iter()
                .map(|r| r.catalog_paths().len())
                .sum(),
            cloud_glob_entities: self.expected_cloud_glob_refs().len(),
            server_codeowners: count_codeowners(self.server_repos()),
            cloud_codeowners: count_codeowners(self.cloud.repos.iter()),
        }
    }
}

fn count_codeowners<'a>(repos: impl Iterator<Item = &'a Repo>) -> usize {
    repos
        .filter(|r| r.code_owners != CodeOwners::NoFile)
        .count()
}

fn slug(rng: &mut Rng, suffix: &str) -> String {
    let area = rng.pick(AREAS).copied().unwrap_or("misc");
    let role = rng.pick(ROLES).copied().unwrap_or("service");
    format!("{area}-{role}-{suffix}")
}

fn uuid(rng: &mut Rng) -> String {
    let h = rng.commit_hash();
    format!(
        "{{{}-{}-4{}-a{}-{}}}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

struct RepoSeed<'a> {
    scope: &'a str,
    project_key: &'a str,
    slug: String,
    id: u64,
    /// Entity names are `<prefix>-<slug>…`: unique across the data set
    /// because slugs are unique per project (Server) or workspace (Cloud).
    entity_base_prefix: &'a str,
    can_archive: bool,
}

fn build_repo(seed: u64, config: &DatasetConfig, s: RepoSeed<'_>) -> Repo {
    let mut rng = Rng::derive(seed, &format!("{}/{}/{}", s.scope, s.project_key, s.slug));
    let archived = s.can_archive && rng.chance(config.archived_ratio);
    let default_branch = match rng.next_f64() {
        x if x < 0.8 => "main",
        x if x < 0.95 => "master",
        _ => "develop",
    }
    .to_owned();
    let commit = rng.commit_hash();
    let uuid = uuid(&mut rng);
    let file_kind = if rng.chance(config.catalog_ratio) {
        pick_kind(&mut rng, &config.mix)
    } else {
        FileKind::None
    };
    let base = format!("{}-{}", s.entity_base_prefix, s.slug);
    let mut files = BTreeMap::new();
    files.insert(
        "README.md".to_owned(),
        format!("# {}\n\nGenerated by bitbucket-sim.\n", s.slug),
    );
    let content = CatalogContent::build(&mut rng, file_kind, &base, s.project_key, &s.slug);
    files.extend(content.files);
    let estate = estate::build(
        seed,
        config,
        &Place {
            scope: s.scope,
            project_key: s.project_key,
            slug: &s.slug,
            base: &base,
        },
    );
    files.extend(estate.files);
    Repo {
        project_key: s.project_key.to_owned(),
        name: s.slug.replace('-', " "),
        slug: s.slug,
        id: s.id,
        uuid,
        archived,
        default_branch,
        commit,
        file_kind,
        files,
        entity_refs: content.refs,
        tree_entity_refs: content.tree_refs,
        monorepo: estate.monorepo,
        nested_entity_refs: estate.nested_refs,
        code_owners: estate.code_owners,
        history: History::default(),
    }
}

fn pick_kind(rng: &mut Rng, mix: &FileMix) -> FileKind {
    let weights = [
        mix.component,
        mix.multi_document,
        mix.location_tree,
        mix.broken_yaml,
        mix.invalid_entity,
    ];
    let total: f64 = weights.iter().sum();
    let mut x = rng.next_f64() * total;
    // Rounding can leave x past the end: fall back to the last weighted shape.
    let mut choice = weights.iter().rposition(|w| *w > 0.0).unwrap_or(0);
    for (i, w) in weights.iter().enumerate() {
        if *w > 0.0 && x < *w {
            choice = i;
            break;
        }
        x -= w;
    }
    match choice {
        0 => FileKind::Component,
        1 => FileKind::MultiDocument,
        2 => FileKind::LocationTree,
        3 => FileKind::BrokenYaml(match rng.below(4) {
            0 => BrokenYaml::UnclosedFlow,
            1 => BrokenYaml::TabIndent,
            2 => BrokenYaml::DuplicateKey,
            _ => BrokenYaml::UnterminatedQuote,
        }),
        _ => FileKind::InvalidEntity(match rng.below(3) {
            0 => InvalidEntity::MissingName,
            1 => InvalidEntity::BadNameCharacters,
            _ => InvalidEntity::NameTooLong,
        }),
    }
}

struct CatalogContent {
    files: Vec<(String, String)>,
    refs: Vec<String>,
    tree_refs: Vec<String>,
}

fn api_yaml(name: &str, owner: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: {name}\n  description: The {name} HTTP API\nspec:\n  type: openapi\n  lifecycle: production\n  owner: {owner}\n  definition: |\n    openapi: 3.0.0\n    info:\n      title: {name}\n      version: 1.0.0\n    paths: {{}}\n"
    )
}

fn location_yaml(name: &str, targets: &[&str]) -> String {
    if let [single] = targets {
        format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: {name}\nspec:\n  target: {single}\n"
        )
    } else {
        let list: String = targets.iter().map(|t| format!("    - {t}\n")).collect();
        format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: {name}\n  description: Catalog files of this repository\nspec:\n  targets:\n{list}"
        )
    }
}

impl CatalogContent {
    fn build(rng: &mut Rng, kind: FileKind, base: &str, project: &str, slug: &str) -> Self {
        let style = match rng.below(4) {
            0 => Style::Plain,
            1 => Style::Commented,
            2 => Style::Flow,
            _ => Style::Crlf,
        };
        let owner = format!("team-{}", rng.below(12) + 1);
        let kind_type = rng.pick(TYPES).copied().unwrap_or("service");
        let lifecycle = rng.pick(LIFECYCLES).copied().unwrap_or("production");
        let description = format!("{slug} in {project}");
        let component = |name: &str, provides_api: Option<&str>, style| {
            component_yaml(
                &ComponentSpec {
                    name,
                    description: &description,
                    kind_type,
                    lifecycle,
                    owner: &owner,
                    provides_api,
                },
                style,
            )
        };
        let one = |path: &str, text: String| vec![(path.to_owned(), text)];
        match kind {
            FileKind::None => Self {
                files: Vec::new(),
                refs: Vec::new(),
                tree_refs: Vec::new(),
            },
            FileKind::Component => {
                let refs = vec![entity_ref("Component", base)];
                Self {
                    files: one(CATALOG_PATH, component(base, None, style)),
                    tree_refs: refs.clone(),
                    refs,
                }
            }
            FileKind::MultiDocument => {
                let api = format!("{base}-api");
                // A null document between entities must be skipped, not rejected.
                let separator = if rng.chance(0.5) {
                    "---\n---\n"
                } else {
                    "---\n"
                };
                let first = component(base, Some(&api), Style::Plain);
                let text = format!("{first}{separator}{}", api_yaml(&api, &owner));
                let refs = vec![entity_ref("Component", base), entity_ref("API", &api)];
                Self {
                    files: one(CATALOG_PATH, text),
                    tree_refs: refs.clone(),
                    refs,
                }
            }
            FileKind::LocationTree => {
                let root = format!("{base}-locations");
                let web = format!("{base}-web");
                let worker = format!("{base}-worker");
                let nested = format!("{base}-api-locations");
                let api = format!("{base}-public-api");
                let files = vec![
                    (
                        CATALOG_PATH.to_owned(),
                        location_yaml(&root, &["./catalog/components.yaml", "./catalog/apis.yaml"]),
                    ),
                    (
                        "catalog/components.yaml".to_owned(),
                        format!(
                            "{}---\n{}",
                            component(&web, None, Style::Plain),
                            component(&worker, None, Style::Plain)
                        ),
                    ),
                    // Relative to catalog/apis.yaml, so catalog/apis/public-api.yaml.
                    (
                        "catalog/apis.yaml".to_owned(),
                        location_yaml(&nested, &["./apis/public-api.yaml"]),
                    ),
                    (
                        "catalog/apis/public-api.yaml".to_owned(),
                        api_yaml(&api, &owner),
                    ),
                ];
                Self {
                    files,
                    refs: vec![entity_ref("Location", &root)],
                    tree_refs: vec![
                        entity_ref("Location", &root),
                        entity_ref("Component", &web),
                        entity_ref("Component", &worker),
                        entity_ref("Location", &nested),
                        entity_ref("API", &api),
                    ],
                }
            }
            FileKind::BrokenYaml(how) => {
                let head = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n";
                let text = match how {
                    BrokenYaml::UnclosedFlow => {
                        format!("{head}  name: [{base}\nspec:\n  type: service\n")
                    }
                    BrokenYaml::TabIndent => {
                        format!("{head}\tname: {base}\nspec:\n  type: service\n")
                    }
                    BrokenYaml::DuplicateKey => {
                        format!(
                            "{head}  name: {base}\n  name: {base}-again\nspec:\n  type: service\n"
                        )
                    }
                    BrokenYaml::UnterminatedQuote => {
                        format!("{head}  name: \"{base}\nspec:\n  type: service\n")
                    }
                };
                Self {
                    files: one(CATALOG_PATH, text),
                    refs: Vec::new(),
                    tree_refs: Vec::new(),
                }
            }
            FileKind::InvalidEntity(how) => {
                let metadata = match how {
                    InvalidEntity::MissingName => format!("  description: {description}\n"),
                    InvalidEntity::BadNameCharacters => format!("  name: \"{base} Has Spaces!\"\n"),
                    InvalidEntity::NameTooLong => format!("  name: {base}-{}\n", "x".repeat(64)),
                };
                let text = format!(
                    "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n{metadata}spec:\n  type: service\n  lifecycle: production\n  owner: {owner}\n"
                );
                Self {
                    files: one(CATALOG_PATH, text),
                    refs: Vec::new(),
                    tree_refs: Vec::new(),
                }
            }
        }
    }
}

/// A repository of the data set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RepoRef {
    /// A Data Center repository: project key and slug.
    Server { project: String, slug: String },
    /// A repository of the Cloud workspace.
    Cloud { slug: String },
}
