//! Entity endpoints in the Backstage catalog REST dialect: each parses its
//! request, asks [`crate::catalog::paging`] or the snapshot, and renders
//! the stored JSON.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::error::{ApiError, Unavailable};
use super::params::Params;
use super::schema::{
    Ancestry, ERROR, Entity, ErrorBody, Facets, FullText, OrderBy, QueryPage, RefsItems, TotalItems,
};
use super::state::{
    ApiState, EntityName, Req, evaluate, evaluate_within, json_array, owning_runner, raw_json,
};
use super::stream::{Closed, Sink, Streamed, evaluate_streamed, json_headers};
use crate::catalog::budget::Budget;
use crate::catalog::facets::facet_counts;
use crate::catalog::paging::{
    self, Cursor, EntityQuery, FullTextFilter, ListQuery, OrderField, PageStart, PagingError,
    parse_total_items,
};
use crate::catalog::query::{MAX_FIELDS, Predicate, parse_fields, project};
use crate::catalog::{EntityKey, PreparedEntity};

fn render_one(entity: &PreparedEntity, fields: &[String]) -> String {
    if fields.is_empty() {
        entity.json.to_string()
    } else {
        project(&entity.value(), fields).to_string()
    }
}

/// A JSON array of `items` written to `out` one entity at a time.
fn write_array<'a>(
    items: impl Iterator<Item = &'a Arc<PreparedEntity>>,
    fields: &[String],
    out: &mut dyn Sink,
) -> Result<(), Closed> {
    out.write("[")?;
    for (index, entity) in items.enumerate() {
        if index > 0 {
            out.write(",")?;
        }
        if fields.is_empty() {
            out.write(&entity.json)?;
        } else {
            out.write(&project(&entity.value(), fields).to_string())?;
        }
    }
    out.write("]")
}

/// A query over the whole catalog, evaluated off the async workers within
/// its budget (see [`evaluate_within`]).
async fn evaluate_query<T: Send + 'static>(
    state: ApiState,
    req: Req,
    input: T,
    work: fn(&ApiState, &Req, T, &Budget) -> Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    let (s, r) = (state.clone(), req.clone());
    evaluate_within(&state, &req, move |budget| work(&s, &r, input, budget)).await
}

// ---------------------------------------------------------------- GET /entities

#[utoipa::path(get, path = "/api/catalog/entities", summary = "List entities",
    params(("filter" = Option<Vec<String>>, Query, explode = true, description = "Comma-separated key=value (or bare key) conditions, ANDed; repeat to OR"), ("fields" = Option<String>, Query, description = "Comma-separated dotted paths to return"), ("limit" = Option<u32>, Query, minimum = 0, description = "Page size"), ("offset" = Option<u32>, Query, minimum = 0, description = "Items to skip"),
        ("after" = Option<String>, Query, min_length = 1, description = "Cursor from a previous Link header"),
        ("order" = Option<Vec<String>>, Query, explode = true, description = "asc:<field> or desc:<field>")),
    responses((status = 200, description = "Entities; a Link rel=next header when more remain", body = Vec<Entity>), (status = 400, description = ERROR, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    req: Req,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (s, r) = (state.clone(), req.clone());
    evaluate_streamed(&state, &req, move |budget| list_now(&s, &r, raw, budget)).await
}

/// The page's entities are chosen within the budget and rendered as they
/// are streamed; the whole catalog (no filter, order or window) is
/// streamed straight from the snapshot, holding no list of it.
fn list_now(
    state: &ApiState,
    req: &Req,
    raw: Option<String>,
    budget: &Budget,
) -> Result<Streamed, ApiError> {
    let params = Params::parse(
        raw.as_deref(),
        &["filter", "fields", "limit", "offset", "after", "order"],
    )?;
    let mut list = ListQuery {
        predicate: Predicate::from_filter_params(&params.all("filter"))?,
        ..ListQuery::default()
    };
    let fields = parse_fields(&params.all("fields"))?;
    list.window(
        params.uint("limit")?,
        params.uint("offset")?,
        params.one("after"),
    )?;
    list.order(&params.all("order"))?;
    let snapshot = state.catalog.snapshot();
    let mut headers = json_headers();
    if list.is_everything() {
        return Ok(Streamed {
            headers,
            body: Box::new(move |out| write_array(snapshot.iter(), &fields, out)),
        });
    }
    let page = list.run(&snapshot, budget)?;
    let items: Vec<Arc<PreparedEntity>> = page.items.into_iter().map(Arc::clone).collect();
    if let Some(next) = page.next {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in params.without(&["offset", "after"]) {
            query.append_pair(&name, &value);
        }
        query.append_pair("after", &next.encode());
        let link = format!("<{}?{}>; rel=\"next\"", req.uri.path(), query.finish());
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.insert(header::LINK, value);
        }
    }
    Ok(Streamed {
        headers,
        body: Box::new(move |out| write_array(items.iter(), &fields, out)),
    })
}

// ---------------------------------------------------------------- by-query

#[utoipa::path(get, path = "/api/catalog/entities/by-query", summary = "Query entities with cursor paging",
    params(("filter" = Option<Vec<String>>, Query, explode = true, description = "Comma-separated key=value (or bare key) conditions, ANDed; repeat to OR"), ("fields" = Option<String>, Query, description = "Comma-separated dotted paths to return"), ("limit" = Option<u32>, Query, minimum = 0, description = "Page size"), ("offset" = Option<u32>, Query, minimum = 0, description = "Items to skip"),
        ("orderField" = Option<Vec<String>>, Query, explode = true, description = "<field>,asc|desc (first one counts)"),
        ("cursor" = Option<String>, Query, description = "nextCursor or prevCursor of a previous page"),
        ("totalItems" = inline(Option<TotalItems>), Query, description = "Whether to count"),
        ("fullTextFilterTerm" = Option<String>, Query, description = "Case-insensitive substring"),
        ("fullTextFilterFields" = Option<String>, Query, description = "Comma-separated fields to search")),
    responses((status = 200, description = "A page", body = QueryPage), (status = 400, description = ERROR, body = ErrorBody)))]
pub(super) async fn query_get(
    State(state): State<ApiState>,
    req: Req,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let s = state.clone();
    evaluate_streamed(&state, &req, move |budget| query_get_now(&s, raw, budget)).await
}

fn query_get_now(
    state: &ApiState,
    raw: Option<String>,
    budget: &Budget,
) -> Result<Streamed, ApiError> {
    let params = Params::parse(
        raw.as_deref(),
        &[
            "fields",
            "limit",
            "offset",
            "orderField",
            "cursor",
            "filter",
            "totalItems",
            "fullTextFilterTerm",
            "fullTextFilterFields",
        ],
    )?;
    let fields = parse_fields(&params.all("fields"))?;
    let limit = params.uint("limit")?;
    let start = match params.one("cursor") {
        Some(cursor) => PageStart::Cursor(Box::new(Cursor::decode(cursor)?)),
        None => {
            let query = query_of_params(&params)?;
            PageStart::Offset(query, params.uint("offset")?.unwrap_or(0))
        }
    };
    answer_query(state, start, limit, &fields, budget)
}

/// The result set a first `GET by-query` asks for.
fn query_of_params(params: &Params) -> Result<EntityQuery, PagingError> {
    let mut order = None;
    for item in params.all("orderField") {
        // Like Backstage, only the first order field counts.
        let parsed = OrderField::parse_query(&item)?;
        order.get_or_insert(parsed);
    }
    let full_text_fields: Vec<String> = params
        .all("fullTextFilterFields")
        .iter()
        .flat_map(|f| f.split(','))
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    let filter = params.all("filter");
    let term = params.one("fullTextFilterTerm").unwrap_or_default().trim();
    Ok(EntityQuery {
        filter: (!filter.is_empty()).then_some(filter),
        query: None,
        order,
        full_text: FullTextFilter {
            term: term.to_owned(),
            fields: (!full_text_fields.is_empty()).then_some(full_text_fields),
        },
        include_total: parse_total_items(params.one("totalItems"), "parameter")?,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct QueryBody {
    #[schema(nullable = false)]
    cursor: Option<String>,
    #[schema(nullable = false)]
    limit: Option<usize>,
    #[schema(nullable = false)]
    offset: Option<usize>,
    #[serde(default)]
    #[schema(value_type = Vec<OrderBy>, required = false)]
    order_by: Vec<OrderField>,
    #[schema(value_type = FullText, required = false)]
    full_text_filter: Option<FullTextFilter>,
    #[serde(default)]
    #[schema(required = false)]
    fields: Vec<String>,
    #[schema(value_type = TotalItems, required = false)]
    total_items: Option<String>,
    #[schema(value_type = Object, required = false)]
    query: Option<Value>,
}

impl QueryBody {
    fn start(self) -> Result<PageStart, PagingError> {
        if let Some(cursor) = self.cursor.as_deref() {
            return Ok(PageStart::Cursor(Box::new(Cursor::decode(cursor)?)));
        }
        if self.query.as_ref().is_some_and(|q| !q.is_object()) {
            return Err(PagingError::QueryNotObject);
        }
        let query = EntityQuery {
            filter: None,
            include_total: parse_total_items(self.total_items.as_deref(), "value")?,
            query: self.query,
            order: self.order_by.into_iter().next(),
            full_text: self.full_text_filter.unwrap_or_default(),
        };
        Ok(PageStart::Offset(query, self.offset.unwrap_or(0)))
    }
}

#[utoipa::path(post, path = "/api/catalog/entities/by-query",
    summary = "Query entities with a JSON predicate ($all, $any, $not, $exists, $in, $hasPrefix, $contains)",
    request_body(content = inline(QueryBody), content_type = "application/json"),
    responses((status = 200, description = "A page", body = QueryPage), (status = 400, description = ERROR, body = ErrorBody)))]
pub(super) async fn query_post(
    State(state): State<ApiState>,
    req: Req,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (s, r) = (state.clone(), req.clone());
    evaluate_streamed(&state, &req, move |budget| {
        query_post_now(&s, &r, body, budget)
    })
    .await
}

fn query_post_now(
    state: &ApiState,
    req: &Req,
    body: axum::body::Bytes,
    budget: &Budget,
) -> Result<Streamed, ApiError> {
    let mut body: QueryBody =
        serde_json::from_slice(&body).map_err(|e| req.input(format!("Invalid query: {e}")))?;
    let fields = parse_fields(&std::mem::take(&mut body.fields))?;
    let limit = body.limit;
    answer_query(state, body.start()?, limit, &fields, budget)
}

/// `{"items", "totalItems", "pageInfo"}` for one page of a query: the
/// page is chosen within the budget, then its entities are rendered as
/// they are streamed (one pointer per entity held, not the answer).
fn answer_query(
    state: &ApiState,
    start: PageStart,
    limit: Option<usize>,
    fields: &[String],
    budget: &Budget,
) -> Result<Streamed, ApiError> {
    let snapshot = state.catalog.snapshot();
    let page = paging::run_query(&snapshot, start, limit, budget)?;
    let items: Vec<Arc<PreparedEntity>> = page.items.into_iter().map(Arc::clone).collect();
    let tail = format!(
        ",\"totalItems\":{},\"pageInfo\":{}}}",
        page.total_items,
        json!(page.page_info)
    );
    let fields = fields.to_vec();
    Ok(Streamed {
        headers: json_headers(),
        body: Box::new(move |out| {
            out.write("{\"items\":")?;
            write_array(items.iter(), &fields, out)?;
            out.write(&tail)
        }),
    })
}

// ---------------------------------------------------------------- by-refs, by-name, by-uid

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RefsBody {
    entity_refs: Vec<String>,
    #[serde(default)]
    #[schema(required = false)]
    fields: Vec<String>,
    #[schema(value_type = Object, required = false)]
    query: Option<Value>,
}

#[utoipa::path(post, path = "/api/catalog/entities/by-refs", summary = "Entities by ref, in request order (null when missing)",
    params(("filter" = Option<Vec<String>>, Query, explode = true, description = "Comma-separated key=value (or bare key) conditions, ANDed; repeat to OR"), ("fields" = Option<String>, Query, description = "Comma-separated dotted paths to return")),
    request_body(content = inline(RefsBody), content_type = "application/json"),
    responses((status = 200, description = "Items", body = RefsItems), (status = 400, description = ERROR, body = ErrorBody)))]
pub(super) async fn by_refs(
    State(state): State<ApiState>,
    req: Req,
    RawQuery(raw): RawQuery,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    evaluate_query(state, req, (raw, body), by_refs_now).await
}

fn by_refs_now(
    state: &ApiState,
    req: &Req,
    (raw, body): (Option<String>, axum::body::Bytes),
    budget: &Budget,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &["filter", "fields"])?;
    let body: RefsBody = serde_json::from_slice(&body)
        .map_err(|e| req.input(format!("Malformed request body (did you remember to specify an application/json content type?), {e}")))?;
    let mut field_params = params.all("fields");
    field_params.extend(body.fields);
    let fields = parse_fields(&field_params)?;
    let mut predicates: Vec<Predicate> = Predicate::from_filter_params(&params.all("filter"))?
        .into_iter()
        .collect();
    if let Some(query) = &body.query {
        predicates.push(Predicate::from_json(query)?);
    }
    let snapshot = state.catalog.snapshot();
    let mut items = Vec::with_capacity(body.entity_refs.len());
    for entity_ref in &body.entity_refs {
        if !predicates.is_empty() {
            budget.check()?;
        }
        items.push(
            parse_ref(entity_ref)
                .and_then(|key| snapshot.get(&key))
                .filter(|e| predicates.iter().all(|p| p.matches(&e.search)))
                .map_or_else(|| "null".to_owned(), |entity| render_one(entity, &fields)),
        );
    }
    Ok(raw_json(format!(
        "{{\"items\":{}}}",
        json_array(items.into_iter())
    )))
}

/// `kind:namespace/name`; the namespace may be left out (`default`).
pub(super) fn parse_ref(text: &str) -> Option<EntityKey> {
    let (kind, rest) = text.split_once(':')?;
    let (namespace, name) = rest.split_once('/').unwrap_or(("default", rest));
    (!kind.is_empty() && !name.is_empty()).then(|| EntityKey::new(kind, namespace, name))
}

#[utoipa::path(get, path = "/api/catalog/entities/by-name/{kind}/{namespace}/{name}", summary = "One entity by name (case-insensitive)",
    params(("kind" = String, Path), ("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "The entity", body = Entity), (status = 404, description = ERROR, body = ErrorBody)))]
pub(super) async fn by_name(
    State(state): State<ApiState>,
    req: Req,
    Path(name): Path<EntityName>,
) -> Result<Response, ApiError> {
    match state.catalog.get(&name.key()) {
        Some(entity) => Ok(raw_json(entity.json.to_string())),
        None => Err(name.not_found(&req)),
    }
}

#[utoipa::path(get, path = "/api/catalog/entities/by-uid/{uid}", summary = "One entity by metadata.uid",
    params(("uid" = String, Path)),
    responses((status = 200, description = "The entity", body = Entity), (status = 404, description = ERROR, body = ErrorBody)))]
pub(super) async fn by_uid(
    State(state): State<ApiState>,
    req: Req,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    let snapshot = state.catalog.snapshot();
    match snapshot.by_uid(&uid) {
        Some(entity) => Ok(raw_json(entity.json.to_string())),
        None => Err(req.not_found(format!("No entity with uid {uid}"))),
    }
}

// ---------------------------------------------------------------- facets

#[utoipa::path(get, path = "/api/catalog/entity-facets", summary = "Value counts of fields",
    params(("facet" = Option<Vec<String>>, Query, explode = true, description = "Field to count"), ("filter" = Option<Vec<String>>, Query, explode = true, description = "Comma-separated key=value (or bare key) conditions, ANDed; repeat to OR")),
    responses((status = 200, description = "Facets", body = Facets), (status = 400, description = ERROR, body = ErrorBody)))]
pub(super) async fn facets(
    State(state): State<ApiState>,
    req: Req,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    evaluate_query(state, req, raw, facets_now).await
}

fn facets_now(
    state: &ApiState,
    req: &Req,
    raw: Option<String>,
    budget: &Budget,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &["facet", "filter"])?;
    let facets = params.all("facet");
    check_facets(req, &facets, "Missing facet parameter", "facet")?;
    let predicate = Predicate::from_filter_params(&params.all("filter"))?;
    facets_answer(state, predicate.as_ref(), &facets, budget)
}

/// At least one facet and at most [`MAX_FIELDS`]; `missing` and `name`
/// word the refusal as each endpoint does.
fn check_facets(req: &Req, facets: &[String], missing: &str, name: &str) -> Result<(), ApiError> {
    if facets.is_empty() {
        return Err(req.input(missing));
    }
    if facets.len() > MAX_FIELDS {
        return Err(req.input(format!(
            "Invalid {name}: more than {MAX_FIELDS} facets in one request"
        )));
    }
    Ok(())
}

fn facets_answer(
    state: &ApiState,
    predicate: Option<&Predicate>,
    facets: &[String],
    budget: &Budget,
) -> Result<Response, ApiError> {
    let snapshot = state.catalog.snapshot();
    let counts = facet_counts(&snapshot, predicate, facets, budget)?;
    Ok(Json(json!({"facets": counts})).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct FacetsBody {
    facets: Vec<String>,
    #[schema(value_type = Object, required = false)]
    query: Option<Value>,
}

/// `POST /entity-facets`: facets with a predicate, the language of `POST
/// /entities/by-query`.
#[utoipa::path(post, path = "/api/catalog/entity-facets",
    summary = "Value counts of fields over the entities a predicate matches (the language of POST /entities/by-query)",
    request_body(content = inline(FacetsBody), content_type = "application/json"),
    responses((status = 200, description = "Facets", body = Facets), (status = 400, description = ERROR, body = ErrorBody)))]
pub(super) async fn facets_post(
    State(state): State<ApiState>,
    req: Req,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    evaluate_query(state, req, body, facets_post_now).await
}

fn facets_post_now(
    state: &ApiState,
    req: &Req,
    body: axum::body::Bytes,
    budget: &Budget,
) -> Result<Response, ApiError> {
    let body: FacetsBody = serde_json::from_slice(&body).map_err(|e| {
        req.input(format!(
            "Malformed request body, expected {{\"facets\": [...], \"query\": {{...}}}}: {e}"
        ))
    })?;
    check_facets(req, &body.facets, "Missing facets", "facets")?;
    let predicate = match &body.query {
        None => None,
        Some(query) if !query.is_object() => return Err(PagingError::QueryNotObject.into()),
        Some(query) => Some(Predicate::from_json(query).map_err(PagingError::Query)?),
    };
    facets_answer(state, predicate.as_ref(), &body.facets, budget)
}

// ---------------------------------------------------------------- ancestry, delete

/// `GET /entities/by-name/{kind}/{namespace}/{name}/ancestry`:
/// `{rootEntityRef, items: [{entity, parentEntityRefs}]}`.
#[utoipa::path(get, path = "/api/catalog/entities/by-name/{kind}/{namespace}/{name}/ancestry",
    summary = "The entity and the Location entities that led to it, each with its parents' refs",
    params(("kind" = String, Path), ("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "Ancestry", body = Ancestry), (status = 404, description = ERROR, body = ErrorBody)))]
pub(super) async fn ancestry(
    State(state): State<ApiState>,
    req: Req,
    Path(name): Path<EntityName>,
) -> Result<Response, ApiError> {
    let (s, r) = (state.clone(), req.clone());
    evaluate(&state, &req, move || {
        let snapshot = s.catalog.snapshot();
        let resolve = s.locations.resolver();
        let chain = crate::catalog::ancestry::ancestry(&snapshot, &name.key(), &resolve)
            .ok_or_else(|| name.not_found(&r))?;
        let root = chain
            .first()
            .map(|a| a.entity.entity_ref.clone())
            .unwrap_or_default();
        let items = chain.iter().map(|ancestor| {
            format!(
                "{{\"entity\":{},\"parentEntityRefs\":{}}}",
                ancestor.entity.json,
                json!(ancestor.parent_entity_refs)
            )
        });
        Ok(raw_json(format!(
            "{{\"rootEntityRef\":{},\"items\":{}}}",
            json!(root),
            json_array(items)
        )))
    })
    .await
}

/// `DELETE /entities/by-uid/{uid}`: 204; the entity stops being served at
/// once and comes back when its repository or location is next read and
/// applied (an orphan's fate in Backstage).
#[utoipa::path(delete, path = "/api/catalog/entities/by-uid/{uid}",
    summary = "Stop serving the entity now; it comes back when its repository or location is next read and applied",
    params(("uid" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 401, description = ERROR, body = ErrorBody), (status = 403, description = ERROR, body = ErrorBody), (status = 404, description = ERROR, body = ErrorBody), (status = 409, description = ERROR, body = ErrorBody), (status = 429, description = ERROR, body = ErrorBody)))]
pub(super) async fn delete_by_uid(
    State(state): State<ApiState>,
    req: Req,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || req.not_found(format!("No entity with uid {uid}"));
    let key = state
        .catalog
        .snapshot()
        .by_uid(&uid)
        .map(|e| e.key.clone())
        .ok_or_else(not_found)?;
    let (runner, unit) = owning_runner(&state, &key).ok_or_else(not_found)?;
    state.removals.admit(&req, state.catalog.len(), 1)?;
    let problems = runner
        .remove_entity(&unit, &key)
        .await
        .map_err(|why| Unavailable(format!("the entity cannot be removed now: {why}")))?;
    for problem in problems {
        tracing::warn!(uid, "{}", problem.message);
    }
    tracing::info!(uid, entity = key.as_str(), "entity removed by uid");
    Ok(StatusCode::NO_CONTENT.into_response())
}
