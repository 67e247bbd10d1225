//! The shapes the OpenAPI document names (`#/components/schemas/...`).
//! Entities and locations are served as stored JSON, not from these types:
//! they exist only to be described.
#![allow(dead_code, reason = "described, never built")]

use utoipa::ToSchema;

/// A Backstage entity, as served.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(super) struct Entity {
    api_version: String,
    kind: String,
    #[schema(inline)]
    metadata: EntityMetadata,
    #[schema(value_type = Object, required = false)]
    spec: (),
    #[schema(value_type = Vec<Object>, required = false)]
    relations: (),
}

#[derive(ToSchema)]
struct EntityMetadata {
    name: String,
    #[schema(required = false)]
    namespace: String,
    #[schema(required = false)]
    uid: String,
    #[schema(required = false)]
    etag: String,
    #[schema(required = false)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// One page of `by-query`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(super) struct QueryPage {
    #[schema(required = false)]
    items: Vec<Entity>,
    #[schema(required = false)]
    total_items: u64,
    #[schema(inline, required = false)]
    page_info: PageInfo,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
struct PageInfo {
    #[schema(required = false)]
    next_cursor: String,
    #[schema(required = false)]
    prev_cursor: String,
}

/// A location in Backstage's shape.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(super) struct Location {
    #[schema(required = false)]
    id: String,
    #[schema(rename = "type", required = false)]
    type_: String,
    #[schema(required = false)]
    target: String,
    #[schema(required = false)]
    entity_ref: String,
}

/// Backstage's error body.
#[derive(ToSchema)]
#[schema(as = Error)]
pub(super) struct ErrorBody {
    #[schema(inline, required = false)]
    error: ErrorName,
    #[schema(inline, required = false)]
    request: ErrorRequest,
    #[schema(inline, required = false)]
    response: ErrorResponse,
}

#[derive(ToSchema)]
struct ErrorName {
    #[schema(required = false)]
    name: String,
    #[schema(required = false)]
    message: String,
}

#[derive(ToSchema)]
struct ErrorRequest {
    #[schema(required = false)]
    method: String,
    #[schema(required = false)]
    url: String,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
struct ErrorResponse {
    #[schema(required = false)]
    status_code: u16,
}

/// The error responses' description.
pub(super) const ERROR: &str = "Backstage error body";

// `totalItems` of `by-query`: whether to count.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub(super) enum TotalItems {
    Include,
    Exclude,
}

// `dryRun` of a registration.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub(super) enum DryRun {
    True,
    False,
}

// `onConflict` of a registration.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub(super) enum OnConflict {
    Reject,
    Refresh,
}

// `catalog` of a provider's repositories.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub(super) enum CatalogFilter {
    Missing,
    Present,
    Unknown,
}

// A location's type: only `url`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub(super) enum LocationType {
    Url,
}

/// Value counts per facet.
#[derive(ToSchema)]
pub(super) struct Facets {
    facets: std::collections::BTreeMap<String, Vec<FacetCount>>,
}

#[derive(ToSchema)]
struct FacetCount {
    value: String,
    count: u64,
}

/// `by-refs`: the entities in request order.
#[derive(ToSchema)]
pub(super) struct RefsItems {
    /// `null` where missing (OpenAPI 3.0 cannot say so of a reference).
    items: Vec<Entity>,
}

/// An entity and the Location entities that led to it.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(super) struct Ancestry {
    root_entity_ref: String,
    items: Vec<Ancestor>,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
struct Ancestor {
    entity: Entity,
    parent_entity_refs: Vec<String>,
}

/// One `orderBy` item of `POST by-query`.
#[derive(ToSchema)]
pub(super) struct OrderBy {
    #[schema(required = false)]
    field: String,
    #[schema(inline, required = false)]
    order: Order,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
enum Order {
    Asc,
    Desc,
}

/// `fullTextFilter` of `POST by-query`.
#[derive(ToSchema)]
pub(super) struct FullText {
    #[schema(required = false)]
    term: String,
    #[schema(required = false)]
    fields: Vec<String>,
}

/// One item of `GET /locations`.
#[derive(ToSchema)]
pub(super) struct LocationItem {
    #[schema(required = false)]
    data: Location,
}

/// What registering a location answers.
#[derive(ToSchema)]
pub(super) struct Registration {
    #[schema(required = false)]
    location: Location,
    #[schema(required = false)]
    entities: Vec<Entity>,
    #[schema(required = false)]
    exists: bool,
    #[schema(value_type = Vec<Object>, required = false)]
    problems: (),
}

/// The body of `POST /locations/by-query`.
#[derive(ToSchema)]
pub(super) struct LocationQueryBody {
    #[schema(minimum = 1, required = false)]
    limit: u64,
    #[schema(required = false)]
    cursor: String,
    #[schema(value_type = Object, required = false)]
    query: (),
}

/// One page of `POST /locations/by-query`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(super) struct LocationPage {
    #[schema(required = false)]
    items: Vec<Location>,
    #[schema(required = false)]
    total_items: u64,
    #[schema(inline, required = false)]
    page_info: NextPage,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
struct NextPage {
    #[schema(required = false)]
    next_cursor: String,
}

/// What `analyze-location` answers.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(super) struct Analysis {
    #[schema(value_type = Vec<Object>, required = false)]
    existing_entity_files: (),
    #[schema(value_type = Vec<Object>, required = false)]
    generate_entities: (),
}

/// One repository record, as `/providers/{id}/repositories` lists it.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(super) struct Repository {
    #[schema(required = false)]
    project: String,
    #[schema(required = false)]
    slug: String,
    #[schema(required = false)]
    url: String,
    #[schema(required = false)]
    id: String,
    #[schema(required = false)]
    catalog_url: String,
    #[schema(required = false)]
    branch: String,
    #[schema(inline, required = false)]
    catalog: CatalogState,
    #[schema(required = false)]
    change_token: String,
    #[schema(format = DateTime, required = false)]
    read_at: String,
    #[schema(required = false)]
    entities: u64,
    #[schema(value_type = Vec<Object>, required = false)]
    problems: (),
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
enum CatalogState {
    Present,
    Missing,
    Unknown,
    Unreadable,
}

/// What `POST /providers/{id}/refresh` answers.
#[derive(ToSchema)]
pub(super) struct Refreshing {
    #[schema(required = false)]
    provider: String,
    #[schema(inline, required = false)]
    refresh: RefreshState,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
enum RefreshState {
    Started,
    AlreadyRunning,
}

/// `validate-entity`'s 400: Backstage's serialized `InputError`s.
#[derive(ToSchema)]
pub(super) struct InputErrors {
    #[schema(required = false)]
    errors: Vec<ErrorName>,
}

/// One page of the change feed.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub(super) struct Changes {
    #[schema(required = false)]
    items: Vec<Change>,
    #[schema(required = false)]
    cursor: String,
    #[schema(required = false)]
    has_more: bool,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
struct Change {
    #[schema(required = false)]
    sequence: u64,
    #[schema(rename = "type", inline, required = false)]
    type_: ChangeType,
    #[schema(required = false)]
    entity_ref: String,
    #[schema(required = false)]
    entity: Entity,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
enum ChangeType {
    Upsert,
    Delete,
}
