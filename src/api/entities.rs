//! Entity endpoints in the Backstage catalog REST dialect.

use std::cmp::Ordering;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::params::Params;
use super::{ApiError, ApiState, Req, raw_json};
use crate::catalog::facets::facet_counts;
use crate::catalog::query::{FullText, MAX_FIELDS, Predicate, parse_fields, project};
use crate::catalog::{EntityKey, PreparedEntity, Snapshot};
use crate::config::WritePermission;

/// Backstage's default page size for `by-query`.
const DEFAULT_QUERY_LIMIT: usize = 200;

type Item<'a> = &'a Arc<PreparedEntity>;

fn render_one(entity: &PreparedEntity, fields: &[String]) -> String {
    if fields.is_empty() {
        entity.json.to_string()
    } else {
        project(&entity.value(), fields).to_string()
    }
}

fn render_array<'a>(items: impl Iterator<Item = Item<'a>>, fields: &[String]) -> String {
    let mut out = String::from("[");
    for (index, entity) in items.enumerate() {
        if index > 0 {
            out.push(',');
        }
        if fields.is_empty() {
            out.push_str(&entity.json);
        } else {
            out.push_str(&project(&entity.value(), fields).to_string());
        }
    }
    out.push(']');
    out
}

fn filtered<'a>(snapshot: &'a Snapshot, predicate: Option<&Predicate>) -> Vec<Item<'a>> {
    snapshot
        .iter()
        .filter(|e| predicate.is_none_or(|p| p.matches(&e.search)))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Direction {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct OrderField {
    field: String,
    order: Direction,
}

/// The lowercased first value of `field`, what Backstage sorts by.
fn sort_value(entity: &PreparedEntity, field: &str) -> Option<String> {
    entity
        .search
        .values(&field.to_lowercase())
        .flatten()
        .next()
        .map(str::to_lowercase)
}

/// Values first (in `direction`), missing values last; ties by entity ref.
fn compare_values(a: &Option<String>, b: &Option<String>, direction: Direction) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => match direction {
            Direction::Asc => x.cmp(y),
            Direction::Desc => y.cmp(x),
        },
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

// ---------------------------------------------------------------- GET /entities

/// `after` cursors: base64 of `{"limit": L, "offset": O}`, as Backstage.
#[derive(Debug, Serialize, Deserialize)]
struct AfterCursor {
    limit: serde_json::Number,
    offset: serde_json::Number,
}

pub async fn list(
    State(state): State<ApiState>,
    req: Req,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (s, r) = (state.clone(), req.clone());
    super::evaluate(&state, &req, move || list_now(&s, &r, raw.as_deref())).await
}

fn list_now(state: &ApiState, req: &Req, raw: Option<&str>) -> Result<Response, ApiError> {
    let params = Params::parse(
        raw,
        &["filter", "fields", "limit", "offset", "after", "order"],
    )
    .map_err(|m| req.input(m))?;
    let predicate =
        Predicate::from_filter_params(&params.all("filter")).map_err(|e| req.input(e.0))?;
    let fields = parse_fields(&params.all("fields")).map_err(|e| req.input(e.0))?;
    let mut limit = params.uint("limit").map_err(|m| req.input(m))?;
    let mut offset = params.uint("offset").map_err(|m| req.input(m))?;
    if limit == Some(0) {
        return Err(req.input("Invalid limit, must be greater than zero"));
    }
    if let Some(after) = params.one("after") {
        if after.is_empty() {
            return Err(req.input("Invalid after, must not be empty"));
        }
        let cursor: AfterCursor = BASE64
            .decode(after)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| req.input("Malformed after cursor, could not be parsed"))?;
        limit = Some(
            cursor
                .limit
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| req.input("Malformed after cursor, limit was not an number"))?,
        );
        offset = Some(
            cursor
                .offset
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| req.input("Malformed after cursor, offset was not a number"))?,
        );
    }
    let mut order = Vec::new();
    for item in params.all("order") {
        let parsed = item
            .split_once(':')
            .and_then(|(dir, field)| {
                let direction = match dir {
                    "asc" => Direction::Asc,
                    "desc" => Direction::Desc,
                    _ => return None,
                };
                (!field.is_empty()).then(|| OrderField {
                    field: field.to_owned(),
                    order: direction,
                })
            })
            .ok_or_else(|| {
                req.input(format!(
                    "Invalid order parameter \"{item}\", expected \"<asc or desc>:<field name>\""
                ))
            })?;
        // A repeated field never changes the order (the first one decides),
        // and each distinct one costs a key per entity: dedupe and cap.
        if order
            .iter()
            .any(|o: &OrderField| o.field.eq_ignore_ascii_case(&parsed.field))
        {
            continue;
        }
        if order.len() == MAX_FIELDS {
            return Err(req.input(format!(
                "Invalid order: more than {MAX_FIELDS} order fields in one request"
            )));
        }
        order.push(parsed);
    }

    let snapshot = state.catalog.snapshot();
    let mut items = filtered(&snapshot, predicate.as_ref());
    if !order.is_empty() {
        let mut keyed: Vec<(Vec<Option<String>>, Item<'_>)> = items
            .into_iter()
            .map(|e| (order.iter().map(|o| sort_value(e, &o.field)).collect(), e))
            .collect();
        keyed.sort_by(|(a, ea), (b, eb)| {
            order
                .iter()
                .enumerate()
                .map(|(i, o)| compare_values(&a[i], &b[i], o.order))
                .find(|o| o.is_ne())
                .unwrap_or_else(|| ea.key.cmp(&eb.key))
        });
        items = keyed.into_iter().map(|(_, e)| e).collect();
    }
    let total = items.len();
    let start = offset.unwrap_or(0).min(total);
    let end = limit.map_or(total, |l| start.saturating_add(l).min(total));
    let body = render_array(items[start..end].iter().copied(), &fields);
    let mut response = raw_json(body);
    if let Some(limit) = limit
        && end < total
    {
        let cursor = BASE64.encode(json!({"limit": limit, "offset": end}).to_string());
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in params.without(&["offset", "after"]) {
            query.append_pair(&name, &value);
        }
        query.append_pair("after", &cursor);
        let link = format!("<{}?{}>; rel=\"next\"", req.uri.path(), query.finish());
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

// ---------------------------------------------------------------- by-query

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FullTextJson {
    #[serde(default)]
    term: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fields: Option<Vec<String>>,
}

/// Our `by-query` cursor. `query` is only set for queries that started as
/// a `POST` predicate: the JS client switches to `POST` when it sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryCursor {
    order_fields: Vec<OrderField>,
    is_previous: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    filter: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    full_text_filter: Option<FullTextJson>,
    /// `[sort value, entity ref]`, or `[entity ref]` when unsorted.
    order_field_values: Vec<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_sort_field_values: Option<Vec<Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    total_items: Option<usize>,
}

/// Everything that defines a by-query result set (not the page).
#[derive(Debug, Clone)]
struct QuerySpec {
    filter: Option<Vec<String>>,
    query: Option<Value>,
    order: Option<OrderField>,
    full_text: FullTextJson,
    include_total: bool,
}

/// Where the page starts.
enum PageStart {
    Offset(usize),
    Cursor(Box<QueryCursor>),
}

fn parse_total_items(value: Option<&str>) -> Result<bool, String> {
    match value {
        None | Some("include") => Ok(true),
        Some("exclude") => Ok(false),
        Some(other) => Err(format!(
            "Invalid totalItems parameter \"{other}\", expected one of: include, exclude"
        )),
    }
}

fn decode_cursor(text: &str) -> Result<QueryCursor, String> {
    let bytes = BASE64
        .decode(text)
        .map_err(|e| format!("Malformed cursor: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("Malformed cursor: {e}"))
}

pub async fn query_get(
    State(state): State<ApiState>,
    req: Req,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (s, r) = (state.clone(), req.clone());
    super::evaluate(&state, &req, move || query_get_now(&s, &r, raw.as_deref())).await
}

fn query_get_now(state: &ApiState, req: &Req, raw: Option<&str>) -> Result<Response, ApiError> {
    let params = Params::parse(
        raw,
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
    )
    .map_err(|m| req.input(m))?;
    let fields = parse_fields(&params.all("fields")).map_err(|e| req.input(e.0))?;
    let limit = params.uint("limit").map_err(|m| req.input(m))?;
    if let Some(cursor) = params.one("cursor") {
        return from_cursor(state, req, cursor, limit, &fields);
    }
    let mut order = None;
    for item in params.all("orderField") {
        let (field, dir) = item.split_once(',').unwrap_or((item.as_str(), "asc"));
        let order_dir = match dir.trim() {
            "asc" => Direction::Asc,
            "desc" => Direction::Desc,
            _ => return Err(req.input("Invalid order field order, must be asc or desc")),
        };
        // Like Backstage, only the first order field counts.
        order.get_or_insert(OrderField {
            field: field.trim().to_owned(),
            order: order_dir,
        });
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
    let spec = QuerySpec {
        filter: (!filter.is_empty()).then_some(filter),
        query: None,
        order,
        full_text: FullTextJson {
            term: params
                .one("fullTextFilterTerm")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            fields: (!full_text_fields.is_empty()).then_some(full_text_fields),
        },
        include_total: parse_total_items(params.one("totalItems")).map_err(|m| req.input(m))?,
    };
    let offset = params
        .uint("offset")
        .map_err(|m| req.input(m))?
        .unwrap_or(0);
    execute(
        state,
        req,
        Some(spec),
        PageStart::Offset(offset),
        limit,
        &fields,
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct QueryBody {
    cursor: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    #[serde(default)]
    order_by: Vec<OrderField>,
    full_text_filter: Option<FullTextJson>,
    #[serde(default)]
    fields: Vec<String>,
    total_items: Option<String>,
    query: Option<Value>,
}

pub async fn query_post(
    State(state): State<ApiState>,
    req: Req,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (s, r) = (state.clone(), req.clone());
    super::evaluate(&state, &req, move || query_post_now(&s, &r, &body)).await
}

fn query_post_now(state: &ApiState, req: &Req, body: &[u8]) -> Result<Response, ApiError> {
    let body: QueryBody =
        serde_json::from_slice(body).map_err(|e| req.input(format!("Invalid query: {e}")))?;
    let fields = parse_fields(&body.fields).map_err(|e| req.input(e.0))?;
    if let Some(cursor) = body.cursor.as_deref() {
        return from_cursor(state, req, cursor, body.limit, &fields);
    }
    if let Some(query) = &body.query
        && !query.is_object()
    {
        return Err(req.input("Query must be an object"));
    }
    let spec = QuerySpec {
        filter: None,
        query: body.query,
        order: body.order_by.into_iter().next(),
        full_text: body.full_text_filter.unwrap_or(FullTextJson {
            term: String::new(),
            fields: None,
        }),
        include_total: parse_total_items(body.total_items.as_deref())
            .map_err(|m| req.input(m.replace("parameter", "value")))?,
    };
    execute(
        state,
        req,
        Some(spec),
        PageStart::Offset(body.offset.unwrap_or(0)),
        body.limit,
        &fields,
    )
}

/// The next or previous page of a query, from its cursor.
fn from_cursor(
    state: &ApiState,
    req: &Req,
    cursor: &str,
    limit: Option<usize>,
    fields: &[String],
) -> Result<Response, ApiError> {
    if cursor.is_empty() {
        return Err(req.input("Cursor cannot be empty"));
    }
    let cursor = decode_cursor(cursor).map_err(|m| req.input(m))?;
    execute(
        state,
        req,
        None,
        PageStart::Cursor(Box::new(cursor)),
        limit,
        fields,
    )
}

fn execute(
    state: &ApiState,
    req: &Req,
    spec: Option<QuerySpec>,
    start: PageStart,
    limit: Option<usize>,
    fields: &[String],
) -> Result<Response, ApiError> {
    let spec = match (&start, spec) {
        (_, Some(spec)) => spec,
        (PageStart::Cursor(cursor), None) => QuerySpec {
            filter: cursor.filter.clone(),
            query: cursor.query.clone(),
            order: cursor.order_fields.first().cloned(),
            full_text: cursor.full_text_filter.clone().unwrap_or(FullTextJson {
                term: String::new(),
                fields: None,
            }),
            include_total: cursor.total_items.is_some(),
        },
        (PageStart::Offset(_), None) => return Err(req.input("Invalid query")),
    };
    let limit = limit.unwrap_or(DEFAULT_QUERY_LIMIT);
    let mut predicates = Vec::new();
    if let Some(filter) = &spec.filter {
        predicates.extend(Predicate::from_filter_params(filter).map_err(|e| req.input(e.0))?);
    }
    if let Some(query) = &spec.query {
        predicates.push(
            Predicate::from_json(query)
                .map_err(|e| req.input(format!("Invalid query: {}", e.0)))?,
        );
    }
    let predicate = match predicates.len() {
        0 => None,
        1 => predicates.pop(),
        _ => Some(Predicate::All(predicates)),
    };
    let order = spec.order.clone();
    if spec
        .full_text
        .fields
        .as_ref()
        .is_some_and(|f| f.len() > MAX_FIELDS)
    {
        return Err(req.input(format!(
            "Invalid fullTextFilterFields: more than {MAX_FIELDS} fields in one request"
        )));
    }
    let term = spec.full_text.term.trim().to_lowercase();
    let full_text = (!term.is_empty()).then(|| FullText {
        term,
        fields: spec
            .full_text
            .fields
            .clone()
            .unwrap_or_else(|| {
                vec![
                    order
                        .as_ref()
                        .map_or_else(|| "metadata.uid".to_owned(), |o| o.field.clone()),
                ]
            })
            .iter()
            .map(|f| f.to_lowercase())
            .collect(),
    });

    let snapshot = state.catalog.snapshot();
    let direction = order.as_ref().map_or(Direction::Asc, |o| o.order);
    let mut rows: Vec<(Vec<Option<String>>, Item<'_>)> = filtered(&snapshot, predicate.as_ref())
        .into_iter()
        .filter(|e| full_text.as_ref().is_none_or(|ft| ft.matches(&e.search)))
        .map(|e| {
            let mut key = Vec::with_capacity(2);
            if let Some(o) = &order {
                key.push(sort_value(e, &o.field));
            }
            key.push(Some(e.entity_ref.to_lowercase()));
            (key, e)
        })
        .collect();
    let compare = |a: &[Option<String>], b: &[Option<String>]| -> Ordering {
        a.iter()
            .zip(b)
            .map(|(x, y)| compare_values(x, y, direction))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    };
    rows.sort_by(|(a, _), (b, _)| compare(a, b));

    let (total, first_values, page, is_previous) = match &start {
        PageStart::Offset(offset) => {
            let total = spec.include_total.then_some(rows.len());
            let first = rows.first().map(|(k, _)| k.clone());
            let from = (*offset).min(rows.len());
            (
                total,
                first,
                from..from.saturating_add(limit).min(rows.len()),
                false,
            )
        }
        PageStart::Cursor(cursor) => {
            let at = &cursor.order_field_values;
            if cursor.is_previous {
                let end = rows.partition_point(|(k, _)| compare(k, at) == Ordering::Less);
                (
                    cursor.total_items,
                    cursor.first_sort_field_values.clone(),
                    end.saturating_sub(limit)..end,
                    true,
                )
            } else {
                let from = rows.partition_point(|(k, _)| compare(k, at) != Ordering::Greater);
                (
                    cursor.total_items,
                    cursor.first_sort_field_values.clone(),
                    from..from.saturating_add(limit).min(rows.len()),
                    false,
                )
            }
        }
    };
    let items = &rows[page.clone()];
    let base_cursor = QueryCursor {
        order_fields: order.into_iter().collect(),
        is_previous: false,
        query: spec.query.clone(),
        filter: spec.filter.clone(),
        full_text_filter: Some(spec.full_text.clone()),
        order_field_values: Vec::new(),
        first_sort_field_values: first_values.clone(),
        total_items: total,
    };
    let encode =
        |cursor: QueryCursor| BASE64.encode(serde_json::to_string(&cursor).unwrap_or_default());
    let mut page_info = serde_json::Map::new();
    if limit > 0 {
        if let Some((last, _)) = items.last()
            && (is_previous || page.end < rows.len())
        {
            page_info.insert(
                "nextCursor".into(),
                json!(encode(QueryCursor {
                    order_field_values: last.clone(),
                    ..base_cursor.clone()
                })),
            );
        }
        let is_first_request = matches!(start, PageStart::Offset(_));
        if let Some((first, _)) = items.first()
            && !is_first_request
            && first_values.as_ref() != Some(first)
        {
            page_info.insert(
                "prevCursor".into(),
                json!(encode(QueryCursor {
                    order_field_values: first.clone(),
                    is_previous: true,
                    ..base_cursor
                })),
            );
        }
    }
    let items_json = if limit == 0 {
        "[]".to_owned()
    } else {
        render_array(items.iter().map(|(_, e)| *e), fields)
    };
    Ok(raw_json(format!(
        "{{\"items\":{items_json},\"totalItems\":{},\"pageInfo\":{}}}",
        total.unwrap_or(0),
        Value::Object(page_info)
    )))
}

// ---------------------------------------------------------------- by-refs, by-name, by-uid

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefsBody {
    entity_refs: Vec<String>,
    #[serde(default)]
    fields: Vec<String>,
    query: Option<Value>,
}

pub async fn by_refs(
    State(state): State<ApiState>,
    req: Req,
    RawQuery(raw): RawQuery,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (s, r) = (state.clone(), req.clone());
    super::evaluate(&state, &req, move || {
        by_refs_now(&s, &r, raw.as_deref(), &body)
    })
    .await
}

fn by_refs_now(
    state: &ApiState,
    req: &Req,
    raw: Option<&str>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let params = Params::parse(raw, &["filter", "fields"]).map_err(|m| req.input(m))?;
    let body: RefsBody = serde_json::from_slice(body)
        .map_err(|e| req.input(format!("Malformed request body (did you remember to specify an application/json content type?), {e}")))?;
    let mut field_params = params.all("fields");
    field_params.extend(body.fields);
    let fields = parse_fields(&field_params).map_err(|e| req.input(e.0))?;
    let mut predicates: Vec<Predicate> = Predicate::from_filter_params(&params.all("filter"))
        .map_err(|e| req.input(e.0))?
        .into_iter()
        .collect();
    if let Some(query) = &body.query {
        predicates.push(Predicate::from_json(query).map_err(|e| req.input(e.0))?);
    }
    let snapshot = state.catalog.snapshot();
    let mut out = String::from("{\"items\":[");
    for (index, entity_ref) in body.entity_refs.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let found = parse_ref(entity_ref)
            .and_then(|key| snapshot.get(&key))
            .filter(|e| predicates.iter().all(|p| p.matches(&e.search)));
        match found {
            Some(entity) => out.push_str(&render_one(entity, &fields)),
            None => out.push_str("null"),
        }
    }
    out.push_str("]}");
    Ok(raw_json(out))
}

/// `kind:namespace/name`; the namespace may be left out (`default`).
pub(super) fn parse_ref(text: &str) -> Option<EntityKey> {
    let (kind, rest) = text.split_once(':')?;
    let (namespace, name) = rest.split_once('/').unwrap_or(("default", rest));
    (!kind.is_empty() && !name.is_empty()).then(|| EntityKey::new(kind, namespace, name))
}

pub async fn by_name(
    State(state): State<ApiState>,
    req: Req,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    match state.catalog.get(&EntityKey::new(&kind, &namespace, &name)) {
        Some(entity) => Ok(raw_json(entity.json.to_string())),
        None => Err(req.not_found(format!(
            "No entity named '{name}' found, with kind '{kind}' in namespace '{namespace}'"
        ))),
    }
}

pub async fn by_uid(
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

pub async fn facets(
    State(state): State<ApiState>,
    req: Req,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (s, r) = (state.clone(), req.clone());
    super::evaluate(&state, &req, move || facets_now(&s, &r, raw.as_deref())).await
}

fn facets_now(state: &ApiState, req: &Req, raw: Option<&str>) -> Result<Response, ApiError> {
    let params = Params::parse(raw, &["facet", "filter"]).map_err(|m| req.input(m))?;
    let facets = params.all("facet");
    if facets.is_empty() {
        return Err(req.input("Missing facet parameter"));
    }
    if facets.len() > MAX_FIELDS {
        return Err(req.input(format!(
            "Invalid facet: more than {MAX_FIELDS} facets in one request"
        )));
    }
    let predicate =
        Predicate::from_filter_params(&params.all("filter")).map_err(|e| req.input(e.0))?;
    facets_answer(state, predicate.as_ref(), &facets)
}

fn facets_answer(
    state: &ApiState,
    predicate: Option<&Predicate>,
    facets: &[String],
) -> Result<Response, ApiError> {
    let snapshot = state.catalog.snapshot();
    let counts = facet_counts(snapshot.iter(), predicate, facets);
    Ok(Json(json!({"facets": counts})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FacetsBody {
    facets: Vec<String>,
    query: Option<Value>,
}

/// `POST /entity-facets`: facets with a predicate, the language of `POST
/// /entities/by-query`.
pub async fn facets_post(
    State(state): State<ApiState>,
    req: Req,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (s, r) = (state.clone(), req.clone());
    super::evaluate(&state, &req, move || {
        let body: FacetsBody = serde_json::from_slice(&body).map_err(|e| {
            r.input(format!(
                "Malformed request body, expected {{\"facets\": [...], \"query\": {{...}}}}: {e}"
            ))
        })?;
        if body.facets.is_empty() {
            return Err(r.input("Missing facets"));
        }
        if body.facets.len() > MAX_FIELDS {
            return Err(r.input(format!(
                "Invalid facets: more than {MAX_FIELDS} facets in one request"
            )));
        }
        let predicate = match &body.query {
            None => None,
            Some(query) if !query.is_object() => return Err(r.input("Query must be an object")),
            Some(query) => Some(
                Predicate::from_json(query)
                    .map_err(|e| r.input(format!("Invalid query: {}", e.0)))?,
            ),
        };
        facets_answer(&s, predicate.as_ref(), &body.facets)
    })
    .await
}

// ---------------------------------------------------------------- ancestry, delete

/// `GET /entities/by-name/{kind}/{namespace}/{name}/ancestry`:
/// `{rootEntityRef, items: [{entity, parentEntityRefs}]}`.
pub async fn ancestry(
    State(state): State<ApiState>,
    req: Req,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (s, r) = (state.clone(), req.clone());
    super::evaluate(&state, &req, move || {
        let key = EntityKey::new(&kind, &namespace, &name);
        let snapshot = s.catalog.snapshot();
        let resolve = s.locations.resolver();
        let chain =
            crate::catalog::ancestry::ancestry(&snapshot, &key, &resolve).ok_or_else(|| {
                r.not_found(format!(
                    "No entity named '{name}' found, with kind '{kind}' in namespace '{namespace}'"
                ))
            })?;
        let root = chain
            .first()
            .map(|a| a.entity.entity_ref.clone())
            .unwrap_or_default();
        let mut out = format!("{{\"rootEntityRef\":{},\"items\":[", json!(root));
        for (index, ancestor) in chain.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                "{{\"entity\":{},\"parentEntityRefs\":{}}}",
                ancestor.entity.json,
                json!(ancestor.parent_entity_refs)
            ));
        }
        out.push_str("]}");
        Ok(raw_json(out))
    })
    .await
}

/// `DELETE /entities/by-uid/{uid}`: 204; the entity stops being served at
/// once and comes back when its repository or location is next read and
/// applied (an orphan's fate in Backstage).
pub async fn delete_by_uid(
    State(state): State<ApiState>,
    req: Req,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    req.authorize(&state, &headers, WritePermission::EntityDelete)?;
    let not_found = || req.not_found(format!("No entity with uid {uid}"));
    let key = state
        .catalog
        .snapshot()
        .by_uid(&uid)
        .map(|e| e.key.clone())
        .ok_or_else(not_found)?;
    let owner = state.catalog.owner(&key).ok_or_else(not_found)?;
    let runner = state
        .scheduler
        .runner(&owner.source)
        .ok_or_else(not_found)?;
    let problems = runner
        .remove_entity(&owner.unit, &key)
        .await
        .map_err(|why| {
            req.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableError",
                format!("the entity cannot be removed now: {why}"),
            )
        })?;
    for problem in problems {
        tracing::warn!(uid, "{}", problem.message);
    }
    tracing::info!(uid, entity = key.as_str(), "entity removed by uid");
    Ok(StatusCode::NO_CONTENT.into_response())
}
