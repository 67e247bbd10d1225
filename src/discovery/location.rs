//! One location given by URL, from `catalog.locations` or registered over
//! HTTP. Like Backstage, it contributes a generated `Location` entity
//! (`location:default/generated-<sha1 of url:target>`) plus what its target
//! file yields (with Location targets followed), and owns them as a source.
//! The target must be a file on a configured Bitbucket integration; any
//! other URL is refused without a request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::pipeline;
use super::{Outcome, RunContext, RunReport, UnitUpdate};
use crate::bitbucket::reader::{FileReader, ReadError, Sites};
use crate::bitbucket::refusal::UrlError;
use crate::bitbucket::{BitbucketError, HttpPool, RequestStats};
use crate::catalog::entity::{
    ANNOTATION_LOCATION, ANNOTATION_ORIGIN_LOCATION, DEFAULT_NAMESPACE, Metadata,
};
use crate::catalog::process::RepoInfo;
use crate::catalog::{Entity, ProcessedEntity};
use crate::config::{CatalogSettings, Schedule};
use crate::integrations::Integrations;

/// Namespace for location ids, so a location keeps its id across restarts.
const LOCATION_NAMESPACE: Uuid = Uuid::from_u128(0x0c5b_2a7e_51d4_4d8e_9f33_8e0a_4c6b_91d2);

/// The id of the `url` location `target`: stable, whatever registered it.
pub fn location_id(target: &str) -> String {
    Uuid::new_v5(&LOCATION_NAMESPACE, format!("url:{target}").as_bytes()).to_string()
}

/// Backstage names a location's entity after the SHA-1 of `type:target`.
pub fn location_entity_name(target: &str) -> String {
    let digest = sha1_smol::Sha1::from(format!("url:{target}"))
        .digest()
        .to_string();
    format!("generated-{digest}")
}

/// The location in Backstage's shape: `{id, type, target, entityRef}`, kept
/// as the reference the typed `locations::Location` is checked against.
#[cfg(test)]
pub(crate) fn location_json(target: &str) -> Value {
    serde_json::json!({
        "id": location_id(target),
        "type": "url",
        "target": target,
        "entityRef": format!("location:{DEFAULT_NAMESPACE}/{}", location_entity_name(target)),
    })
}

/// The source (catalog and store) id of the location with id `id`.
pub(crate) fn source_id(id: &str) -> String {
    format!("location:{id}")
}

/// The `Location` entity Backstage generates for a location.
pub(crate) fn location_entity(target: &str) -> Entity {
    let url = format!("url:{target}");
    let mut spec = Map::new();
    spec.insert("type".into(), "url".into());
    spec.insert("target".into(), target.into());
    Entity {
        api_version: "backstage.io/v1alpha1".into(),
        kind: "Location".into(),
        metadata: Metadata {
            name: location_entity_name(target),
            namespace: DEFAULT_NAMESPACE.into(),
            annotations: BTreeMap::from([
                (ANNOTATION_LOCATION.to_owned(), url.clone()),
                (ANNOTATION_ORIGIN_LOCATION.to_owned(), url),
            ]),
            rest: Map::new(),
            uid: None,
            etag: None,
        },
        spec: Some(Value::Object(spec)),
        relations: Vec::new(),
    }
}

/// Where a location comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum LocationOrigin {
    /// `catalog.locations`.
    Static,
    /// `POST /api/catalog/locations`.
    Registered,
}

/// What building a location source needs, at start-up or at run time.
#[derive(Debug, Clone)]
pub(crate) struct LocationContext {
    pub integrations: Arc<Integrations>,
    pub http: Arc<HttpPool>,
    pub settings: CatalogSettings,
    /// `catalog.locationSchedule`.
    pub schedule: Schedule,
}

impl LocationContext {
    /// Refuses a target that is not a file on a configured Bitbucket,
    /// without a request.
    pub(crate) fn check(&self, target: &str) -> Result<(), UrlError> {
        Sites::all(&self.integrations, None)
            .api_url(target)
            .map(drop)
    }
}

/// Why a location's target yielded nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LocationError {
    #[error(transparent)]
    Refused(#[from] UrlError),
    #[error("{0} does not exist (or the integration's credentials cannot see it); check the URL")]
    NotFound(String),
    #[error("reading {target} failed: {source}")]
    Read {
        target: String,
        source: BitbucketError,
    },
}

/// A read of a location: the report (failed when `error` is set) and,
/// when the target was read, the entities it yields as processed.
#[derive(Debug)]
pub(crate) struct LocationRead {
    pub report: RunReport,
    pub entities: Option<Vec<ProcessedEntity>>,
    pub error: Option<LocationError>,
}

#[derive(Debug, Clone)]
pub(crate) struct LocationSource {
    id: String,
    source_id: String,
    target: String,
    origin: LocationOrigin,
    context: LocationContext,
}

impl LocationSource {
    pub(crate) fn new(target: &str, origin: LocationOrigin, context: LocationContext) -> Self {
        Self::with_id(&location_id(target), target, origin, context)
    }

    /// A location kept under `id`: a registered location keeps its id when
    /// `PUT /locations/{id}` points it at another target.
    pub(crate) fn with_id(
        id: &str,
        target: &str,
        origin: LocationOrigin,
        context: LocationContext,
    ) -> Self {
        Self {
            source_id: source_id(id),
            id: id.to_owned(),
            target: target.to_owned(),
            origin,
            context,
        }
    }

    /// The location's id (as `GET /locations` shows it).
    pub(crate) fn location_id(&self) -> &str {
        &self.id
    }

    /// The source id its entities are kept under.
    pub(crate) fn source_id(&self) -> &str {
        &self.source_id
    }

    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    pub(crate) fn origin(&self) -> LocationOrigin {
        self.origin
    }

    pub(crate) fn schedule(&self) -> &Schedule {
        &self.context.schedule
    }

    /// Reads the target and applies what it yields as the location's one
    /// unit; a failed read changes nothing.
    pub(crate) async fn run(&self, ctx: &RunContext<'_>) -> RunReport {
        let read = self.read(&ctx.stats).await;
        let mut report = read.report;
        if let Some(entities) = read.entities {
            let update = UnitUpdate {
                unit: self.target.clone(),
                record: None,
                entities: Some(entities),
            };
            report.problems.extend(ctx.sink.apply(vec![update]).await);
        }
        report
    }

    /// Reads the target (and what its Location entities lead to). A target
    /// that is missing or cannot be read fails the run: the location's
    /// previous entities stay, as Backstage keeps them when a required
    /// location fails.
    pub(crate) async fn read(&self, stats: &Arc<RequestStats>) -> LocationRead {
        let started = Instant::now();
        let settings = &self.context.settings;
        let reader = FileReader::new(
            Sites::all(&self.context.integrations, Some(&self.context.http)),
            stats,
            settings.processing.limits.max_file_bytes,
        );
        let mut report = RunReport::new(&self.source_id);
        let target = &self.target;
        let (entities, error) = match reader.read(target).await {
            Ok(Some(bytes)) => {
                let file =
                    pipeline::process_file(&bytes, target, &reader, settings, &RepoInfo::default())
                        .await;
                report.files_found = 1;
                report.repos_read = 1;
                report.location_files = file.location_files;
                report.problems = file.problems;
                let mut entities = vec![location_entity(target).into()];
                entities.extend(file.entities);
                (Some(entities), None)
            }
            Ok(None) => (None, Some(LocationError::NotFound(target.clone()))),
            Err(ReadError::Refused(err)) => (None, Some(err.into())),
            Err(ReadError::Failed(source)) => (
                None,
                Some(LocationError::Read {
                    target: target.clone(),
                    source,
                }),
            ),
        };
        if let Some(error) = &error {
            report.outcome = Outcome::Failed {
                error: error.to_string(),
            };
        }
        pipeline::finish(&mut report, stats, started);
        LocationRead {
            report,
            entities,
            error,
        }
    }
}
