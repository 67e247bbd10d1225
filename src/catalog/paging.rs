//! Backstage's entity paging over a [`Snapshot`]: `GET /entities` (order,
//! limit/offset and `after` cursors) and `by-query` (one order field, full
//! text, keyset cursors both ways), as typed requests and pages the API
//! only has to parse and render.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::budget::{Budget, OverBudget};
use super::query::{FullText, MAX_FIELDS, Predicate, QueryError};
use super::sorted::SortEntry;
use super::{EntityKey, PreparedEntity, Snapshot};

/// Backstage's default page size for `by-query`.
pub(crate) const DEFAULT_QUERY_LIMIT: usize = 200;

/// An entity of a page, borrowed from its snapshot.
pub(crate) type Item<'a> = &'a Arc<PreparedEntity>;

/// Why a paging request was rejected; each becomes a 400 `InputError`
/// with Backstage's wording.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PagingError {
    #[error("Invalid limit, must be greater than zero")]
    ZeroLimit,
    #[error("Invalid after, must not be empty")]
    EmptyAfter,
    #[error("Malformed after cursor, could not be parsed")]
    MalformedAfter,
    #[error("Malformed after cursor, limit was not an number")]
    AfterLimit,
    #[error("Malformed after cursor, offset was not a number")]
    AfterOffset,
    #[error("Invalid order parameter \"{0}\", expected \"<asc or desc>:<field name>\"")]
    OrderParameter(String),
    #[error("Invalid order: more than {MAX_FIELDS} order fields in one request")]
    TooManyOrderFields,
    #[error("Invalid order field order, must be asc or desc")]
    OrderFieldDirection,
    /// `totalItems` as a query `parameter` or a body `value`.
    #[error("Invalid totalItems {0} \"{1}\", expected one of: include, exclude")]
    TotalItems(&'static str, String),
    #[error("Cursor cannot be empty")]
    EmptyCursor,
    #[error("Malformed cursor: {0}")]
    CursorEncoding(#[source] base64::DecodeError),
    #[error("Malformed cursor: {0}")]
    CursorJson(#[source] serde_json::Error),
    #[error("Invalid fullTextFilterFields: more than {MAX_FIELDS} fields in one request")]
    TooManyFullTextFields,
    #[error("Query must be an object")]
    QueryNotObject,
    /// A `filter` parameter.
    #[error(transparent)]
    Filter(QueryError),
    /// A JSON predicate.
    #[error("Invalid query: {0}")]
    Query(#[source] QueryError),
    /// The evaluation took longer than its budget.
    #[error(transparent)]
    OverBudget(#[from] OverBudget),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Direction {
    Asc,
    Desc,
}

impl Direction {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "asc" => Some(Self::Asc),
            "desc" => Some(Self::Desc),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OrderField {
    pub field: String,
    pub order: Direction,
}

impl OrderField {
    /// `GET /entities`' `order=<asc|desc>:<field>`.
    fn parse_list(item: &str) -> Result<Self, PagingError> {
        item.split_once(':')
            .and_then(|(dir, field)| {
                let order = Direction::parse(dir)?;
                (!field.is_empty()).then(|| Self {
                    field: field.to_owned(),
                    order,
                })
            })
            .ok_or_else(|| PagingError::OrderParameter(item.to_owned()))
    }

    /// `by-query`'s `orderField=<field>[,<asc|desc>]`.
    pub(crate) fn parse_query(item: &str) -> Result<Self, PagingError> {
        let (field, dir) = item.split_once(',').unwrap_or((item, "asc"));
        Ok(Self {
            field: field.trim().to_owned(),
            order: Direction::parse(dir.trim()).ok_or(PagingError::OrderFieldDirection)?,
        })
    }
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

/// Values first (in `direction`), missing values last.
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

/// The entities `predicate` keeps, in key order, within `budget`.
pub(crate) fn filtered<'a>(
    snapshot: &'a Snapshot,
    predicate: Option<&Predicate>,
    budget: &Budget,
) -> Result<Vec<Item<'a>>, OverBudget> {
    let mut kept = Vec::new();
    for entity in snapshot.iter() {
        if let Some(predicate) = predicate {
            budget.check()?;
            if !predicate.matches(&entity.search) {
                continue;
            }
        }
        kept.push(entity);
    }
    Ok(kept)
}

// ---------------------------------------------------------------- GET /entities

/// `after` cursors: base64 of `{"limit": L, "offset": O}`, as Backstage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AfterCursor {
    pub limit: usize,
    pub offset: usize,
}

#[derive(Serialize, Deserialize)]
struct AfterCursorJson {
    limit: serde_json::Number,
    offset: serde_json::Number,
}

impl AfterCursor {
    pub(crate) fn encode(&self) -> String {
        let json = AfterCursorJson {
            limit: self.limit.into(),
            offset: self.offset.into(),
        };
        BASE64.encode(serde_json::to_string(&json).unwrap_or_default())
    }

    pub(crate) fn decode(text: &str) -> Result<Self, PagingError> {
        if text.is_empty() {
            return Err(PagingError::EmptyAfter);
        }
        let json: AfterCursorJson = BASE64
            .decode(text)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(PagingError::MalformedAfter)?;
        let number = |n: &serde_json::Number| n.as_u64().and_then(|n| usize::try_from(n).ok());
        Ok(Self {
            limit: number(&json.limit)
                .filter(|n| *n > 0)
                .ok_or(PagingError::AfterLimit)?,
            offset: number(&json.offset).ok_or(PagingError::AfterOffset)?,
        })
    }
}

/// A `GET /entities` request: which entities, in which order, which window.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListQuery {
    pub predicate: Option<Predicate>,
    pub order: Vec<OrderField>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

impl ListQuery {
    /// The window from `limit`, `offset` and an `after` cursor (which wins).
    pub(crate) fn window(
        &mut self,
        limit: Option<usize>,
        offset: Option<usize>,
        after: Option<&str>,
    ) -> Result<(), PagingError> {
        if limit == Some(0) {
            return Err(PagingError::ZeroLimit);
        }
        (self.limit, self.offset) = (limit, offset);
        if let Some(after) = after {
            let cursor = AfterCursor::decode(after)?;
            (self.limit, self.offset) = (Some(cursor.limit), Some(cursor.offset));
        }
        Ok(())
    }

    /// The `order` parameters. A repeated field never changes the order (the
    /// first one decides) and each distinct one costs a key per entity:
    /// deduplicated and capped.
    pub(crate) fn order(&mut self, items: &[String]) -> Result<(), PagingError> {
        for item in items {
            let parsed = OrderField::parse_list(item)?;
            if self
                .order
                .iter()
                .any(|o| o.field.eq_ignore_ascii_case(&parsed.field))
            {
                continue;
            }
            if self.order.len() == MAX_FIELDS {
                return Err(PagingError::TooManyOrderFields);
            }
            self.order.push(parsed);
        }
        Ok(())
    }

    /// Neither filtered, ordered nor windowed: every entity, in key order,
    /// which can be streamed straight from the snapshot.
    pub(crate) fn is_everything(&self) -> bool {
        self.predicate.is_none()
            && self.order.is_empty()
            && self.limit.is_none()
            && self.offset.unwrap_or(0) == 0
    }

    /// One page, and the cursor to the next when there is one.
    pub(crate) fn run<'a>(
        &self,
        snapshot: &'a Snapshot,
        budget: &Budget,
    ) -> Result<ListPage<'a>, OverBudget> {
        if let Some(page) = self.run_indexed(snapshot, budget)? {
            return Ok(page);
        }
        let mut items = filtered(snapshot, self.predicate.as_ref(), budget)?;
        if !self.order.is_empty() {
            let mut keyed: Vec<(Vec<Option<String>>, Item<'_>)> = items
                .into_iter()
                .map(|e| {
                    let key = self.order.iter().map(|o| sort_value(e, &o.field));
                    (key.collect(), e)
                })
                .collect();
            keyed.sort_by(|(a, ea), (b, eb)| {
                self.order
                    .iter()
                    .enumerate()
                    .map(|(i, o)| compare_values(&a[i], &b[i], o.order))
                    .find(|o| o.is_ne())
                    .unwrap_or_else(|| ea.key.cmp(&eb.key))
            });
            items = keyed.into_iter().map(|(_, e)| e).collect();
            budget.check()?;
        }
        let total = items.len();
        let start = self.offset.unwrap_or(0).min(total);
        let end = self
            .limit
            .map_or(total, |l| start.saturating_add(l).min(total));
        let next = self
            .limit
            .filter(|_| end < total)
            .map(|limit| AfterCursor { limit, offset: end });
        items.truncate(end);
        items.drain(..start);
        Ok(ListPage { items, next })
    }
}

impl ListQuery {
    /// One page walked from the sorted index of its only order field
    /// (values in its direction, ties and entities without a value by key,
    /// those last); `None` when that field has no index.
    fn run_indexed<'a>(
        &self,
        snapshot: &'a Snapshot,
        budget: &Budget,
    ) -> Result<Option<ListPage<'a>>, OverBudget> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let [order] = self.order.as_slice() else {
            return Ok(None);
        };
        let field = order.field.to_lowercase();
        let Some(set) = snapshot.indexes().sorted(&field) else {
            return Ok(None);
        };
        let entities = &snapshot.entities;
        let valued: Box<dyn Iterator<Item = &'a SortEntry> + 'a> = match order.order {
            Direction::Asc => Box::new(set.iter()),
            // Values from the greatest down, each value's keys upwards.
            Direction::Desc => {
                let lowest = EntityKey::from_stored("");
                let mut below: Option<SortEntry> = None;
                let mut run: Box<dyn Iterator<Item = &'a SortEntry> + 'a> =
                    Box::new(std::iter::empty());
                Box::new(std::iter::from_fn(move || {
                    loop {
                        if let Some(entry) = run.next() {
                            return Some(entry);
                        }
                        let last = match &below {
                            None => set.iter().next_back(),
                            Some(first) => set
                                .range::<_, SortEntry>((Unbounded, Excluded(first)))
                                .next_back(),
                        }?;
                        let first = SortEntry::at(last.value(), lowest.clone());
                        let same = last.clone();
                        run = Box::new(
                            set.range::<_, SortEntry>((Included(&first), Unbounded))
                                .take_while(move |e| e.same_value(&same)),
                        );
                        below = Some(first);
                    }
                }))
            }
        };
        let without = snapshot.len().saturating_sub(set.len());
        let mut left = without;
        let missing = entities.values().map_while(|e| {
            if left == 0 {
                return None;
            }
            let none = e.search.values(&field).flatten().next().is_none();
            left -= usize::from(none);
            Some(none.then_some(e))
        });
        let steps = valued.map(|e| entities.get(e.key())).chain(missing);
        let (offset, limit) = (self.offset.unwrap_or(0), self.limit);
        let mut items = Vec::new();
        let mut seen = 0usize;
        let mut more = false;
        for step in steps {
            budget.check()?;
            let Some(e) = step else { continue };
            if self
                .predicate
                .as_ref()
                .is_some_and(|p| !p.matches(&e.search))
            {
                continue;
            }
            if limit.is_some_and(|l| items.len() == l) {
                more = true;
                break;
            }
            seen += 1;
            if seen > offset {
                items.push(e);
            }
        }
        let next = limit.filter(|_| more).map(|limit| AfterCursor {
            limit,
            offset: seen,
        });
        Ok(Some(ListPage { items, next }))
    }
}

/// A page of `GET /entities`.
#[derive(Debug)]
pub(crate) struct ListPage<'a> {
    pub items: Vec<Item<'a>>,
    pub next: Option<AfterCursor>,
}

// ---------------------------------------------------------------- by-query

/// `fullTextFilter` as clients send it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FullTextFilter {
    #[serde(default)]
    pub term: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

/// Everything that defines a by-query result set (not the page).
#[derive(Debug, Clone, Default)]
pub(crate) struct EntityQuery {
    /// `filter` parameters (GET).
    pub filter: Option<Vec<String>>,
    /// A JSON predicate (POST).
    pub query: Option<Value>,
    pub order: Option<OrderField>,
    pub full_text: FullTextFilter,
    pub include_total: bool,
}

/// `totalItems`: `include` (the default) or `exclude`; `what` names it in
/// the message (`parameter` or `value`).
pub(crate) fn parse_total_items(
    value: Option<&str>,
    what: &'static str,
) -> Result<bool, PagingError> {
    match value {
        None | Some("include") => Ok(true),
        Some("exclude") => Ok(false),
        Some(other) => Err(PagingError::TotalItems(what, other.to_owned())),
    }
}

/// Our `by-query` cursor. `query` is only set for queries that started as
/// a `POST` predicate: the JS client switches to `POST` when it sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Cursor {
    order_fields: Vec<OrderField>,
    is_previous: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    filter: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    full_text_filter: Option<FullTextFilter>,
    /// `[sort value, entity ref]`, or `[entity ref]` when unsorted.
    order_field_values: Vec<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_sort_field_values: Option<Vec<Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    total_items: Option<usize>,
}

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        BASE64.encode(serde_json::to_string(self).unwrap_or_default())
    }

    pub(crate) fn decode(text: &str) -> Result<Self, PagingError> {
        if text.is_empty() {
            return Err(PagingError::EmptyCursor);
        }
        let bytes = BASE64.decode(text).map_err(PagingError::CursorEncoding)?;
        serde_json::from_slice(&bytes).map_err(PagingError::CursorJson)
    }

    /// The result set this cursor pages through.
    fn query(&self) -> EntityQuery {
        EntityQuery {
            filter: self.filter.clone(),
            query: self.query.clone(),
            order: self.order_fields.first().cloned(),
            full_text: self.full_text_filter.clone().unwrap_or_default(),
            include_total: self.total_items.is_some(),
        }
    }
}

/// Where a by-query page starts.
#[derive(Debug, Clone)]
pub(crate) enum PageStart {
    /// A first request.
    Offset(EntityQuery, usize),
    /// A next or previous page.
    Cursor(Box<Cursor>),
}

/// A page of `by-query`.
#[derive(Debug)]
pub(crate) struct QueryPage<'a> {
    pub items: Vec<Item<'a>>,
    /// `0` when the query excluded the total.
    pub total_items: usize,
    pub page_info: PageInfo,
}

/// The cursors around a page, encoded.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PageInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_cursor: Option<String>,
}

impl EntityQuery {
    /// The `filter` parameters and the JSON predicate, ANDed.
    fn predicate(&self) -> Result<Option<Predicate>, PagingError> {
        let mut predicates = Vec::new();
        if let Some(filter) = &self.filter {
            predicates.extend(Predicate::from_filter_params(filter).map_err(PagingError::Filter)?);
        }
        if let Some(query) = &self.query {
            predicates.push(Predicate::from_json(query).map_err(PagingError::Query)?);
        }
        Ok(match predicates.len() {
            0 => None,
            1 => predicates.pop(),
            _ => Some(Predicate::All(predicates)),
        })
    }

    /// The full-text filter: by default over the order field, else the uid.
    fn full_text(&self) -> Result<Option<FullText>, PagingError> {
        let fields = self.full_text.fields.as_ref();
        if fields.is_some_and(|f| f.len() > MAX_FIELDS) {
            return Err(PagingError::TooManyFullTextFields);
        }
        let term = self.full_text.term.trim().to_lowercase();
        Ok((!term.is_empty()).then(|| {
            let default = || {
                let field = self.order.as_ref().map(|o| o.field.as_str());
                vec![field.unwrap_or("metadata.uid").to_owned()]
            };
            FullText {
                term,
                fields: fields
                    .cloned()
                    .unwrap_or_else(default)
                    .iter()
                    .map(|f| f.to_lowercase())
                    .collect(),
            }
        }))
    }

    /// The matching entities keyed `[sort value, ref]` (or `[ref]`), sorted.
    fn rows<'a>(
        &self,
        snapshot: &'a Snapshot,
        budget: &Budget,
    ) -> Result<Vec<Row<'a>>, PagingError> {
        let predicate = self.predicate()?;
        let full_text = self.full_text()?;
        let direction = self.direction();
        let mut rows: Vec<Row<'a>> = Vec::new();
        for e in filtered(snapshot, predicate.as_ref(), budget)? {
            if let Some(ft) = &full_text {
                budget.check()?;
                if !ft.matches(&e.search) {
                    continue;
                }
            }
            rows.push((row_key(e, self.order.as_ref()), e));
        }
        budget.check()?;
        rows.sort_by(|(a, _), (b, _)| compare_keys(a, b, direction));
        budget.check()?;
        Ok(rows)
    }

    fn direction(&self) -> Direction {
        self.order.as_ref().map_or(Direction::Asc, |o| o.order)
    }
}

type Row<'a> = (Vec<Option<String>>, Item<'a>);

/// An entity's place in a by-query result set: `[sort value, ref]`, or
/// `[ref]` when unsorted.
fn row_key(e: &PreparedEntity, order: Option<&OrderField>) -> Vec<Option<String>> {
    let mut key = Vec::with_capacity(2);
    if let Some(o) = order {
        key.push(sort_value(e, &o.field));
    }
    key.push(Some(e.entity_ref.to_lowercase()));
    key
}

fn compare_keys(a: &[Option<String>], b: &[Option<String>], direction: Direction) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| compare_values(x, y, direction))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// Which rows a page holds, and what its cursors carry along.
struct Window {
    rows: std::ops::Range<usize>,
    /// Counted on the first request (when asked for), then carried.
    total: Option<usize>,
    /// The first page's first key: no previous page before it.
    first_values: Option<Vec<Option<String>>>,
    is_previous: bool,
}

impl Window {
    /// The first page, from `offset`.
    fn first(rows: &[Row<'_>], query: &EntityQuery, offset: usize, limit: usize) -> Self {
        let from = offset.min(rows.len());
        Self {
            rows: from..from.saturating_add(limit).min(rows.len()),
            total: query.include_total.then_some(rows.len()),
            first_values: rows.first().map(|(k, _)| k.clone()),
            is_previous: false,
        }
    }

    /// The page after (or before) the cursor's key.
    fn around(rows: &[Row<'_>], cursor: &Cursor, direction: Direction, limit: usize) -> Self {
        let at = &cursor.order_field_values;
        let compare = |k: &[Option<String>]| compare_keys(k, at, direction);
        let page = if cursor.is_previous {
            let end = rows.partition_point(|(k, _)| compare(k) == Ordering::Less);
            end.saturating_sub(limit)..end
        } else {
            let from = rows.partition_point(|(k, _)| compare(k) != Ordering::Greater);
            from..from.saturating_add(limit).min(rows.len())
        };
        Self {
            rows: page,
            total: cursor.total_items,
            first_values: cursor.first_sort_field_values.clone(),
            is_previous: cursor.is_previous,
        }
    }
}

/// One page of a by-query request (`limit` defaults to
/// [`DEFAULT_QUERY_LIMIT`]), with cursors to the pages around it.
pub(crate) fn run_query<'a>(
    snapshot: &'a Snapshot,
    start: PageStart,
    limit: Option<usize>,
    budget: &Budget,
) -> Result<QueryPage<'a>, PagingError> {
    let limit = limit.unwrap_or(DEFAULT_QUERY_LIMIT);
    let (query, cursor) = match start {
        PageStart::Offset(query, offset) => (query, Err(offset)),
        PageStart::Cursor(cursor) => (cursor.query(), Ok(cursor)),
    };
    if let Some(page) = run_indexed(snapshot, &query, &cursor, limit, budget)? {
        return Ok(page);
    }
    run_scanned(snapshot, &query, cursor, limit, budget)
}

/// A page from a scan and a sort of the whole result set.
fn run_scanned<'a>(
    snapshot: &'a Snapshot,
    query: &EntityQuery,
    cursor: Result<Box<Cursor>, usize>,
    limit: usize,
    budget: &Budget,
) -> Result<QueryPage<'a>, PagingError> {
    let rows = query.rows(snapshot, budget)?;
    let window = match &cursor {
        Err(offset) => Window::first(&rows, query, *offset, limit),
        Ok(cursor) => Window::around(&rows, cursor, query.direction(), limit),
    };
    let items = &rows[window.rows.clone()];
    let mut page_info = PageInfo::default();
    if limit > 0 {
        let more = window.is_previous || window.rows.end < rows.len();
        let base = query.cursor(window.total, window.first_values.clone());
        if let Some((last, _)) = items.last().filter(|_| more) {
            page_info.next_cursor = Some(base.at(last, false).encode());
        }
        if let Some((first, _)) = items.first()
            && cursor.is_ok()
            && window.first_values.as_ref() != Some(first)
        {
            page_info.prev_cursor = Some(base.at(first, true).encode());
        }
    }
    Ok(QueryPage {
        items: items.iter().map(|(_, e)| *e).collect(),
        total_items: window.total.unwrap_or(0),
        page_info,
    })
}

impl EntityQuery {
    /// A cursor into this query's result set, carrying the total and the
    /// first page's first key.
    fn cursor(&self, total: Option<usize>, first_values: Option<Vec<Option<String>>>) -> Cursor {
        Cursor {
            order_fields: self.order.iter().cloned().collect(),
            is_previous: false,
            query: self.query.clone(),
            filter: self.filter.clone(),
            full_text_filter: Some(self.full_text.clone()),
            order_field_values: Vec::new(),
            first_sort_field_values: first_values,
            total_items: total,
        }
    }
}

impl Cursor {
    /// This cursor at `key`, paging forward or back from it.
    fn at(&self, key: &[Option<String>], is_previous: bool) -> Self {
        Self {
            order_field_values: key.to_vec(),
            is_previous,
            ..self.clone()
        }
    }
}

// ---------------------------------------------------------------- from the indexes

/// One step of an ordered walk: an entity of the order, or `None` for one
/// walked past that is not (so the caller checks its budget on every step).
type Walk<'a> = Box<dyn Iterator<Item = Option<Item<'a>>> + 'a>;

/// The entities in result order after `at` (from the start when `None`),
/// or `backward`, before `at`, nearest first. Sorted: the sorted index's
/// entities (values in `order`'s direction, refs too), then those without
/// a value (refs in the same direction), found by walking the snapshot and
/// never more of them than there are. `None` when `order`'s field has no
/// index or `at` does not fit the order.
fn walk<'a>(
    snapshot: &'a Snapshot,
    order: Option<&OrderField>,
    at: Option<&[Option<String>]>,
    backward: bool,
) -> Option<Walk<'a>> {
    use std::ops::Bound::{Excluded, Unbounded};
    let entities = &snapshot.entities;
    let Some(order) = order else {
        return Some(match (at, backward) {
            (None, false) => Box::new(entities.values().map(Some)),
            (Some([Some(r)]), false) => Box::new(
                entities
                    .range((Excluded(EntityKey::from_stored(r)), Unbounded))
                    .map(|(_, e)| Some(e)),
            ),
            (Some([Some(r)]), true) => Box::new(
                entities
                    .range((Unbounded, Excluded(EntityKey::from_stored(r))))
                    .rev()
                    .map(|(_, e)| Some(e)),
            ),
            _ => return None,
        });
    };
    let field = order.field.to_lowercase();
    let set = snapshot.indexes().sorted(&field)?;
    let without = snapshot.len().saturating_sub(set.len());
    let valued = move |entries: Box<dyn Iterator<Item = &'a SortEntry> + 'a>| -> Walk<'a> {
        Box::new(entries.map(move |e| entities.get(e.key())))
    };
    // Those without a value, from `range`; at most `without` of them.
    let missing = move |range: (Bound<EntityKey>, Bound<EntityKey>), rev: bool| -> Walk<'a> {
        let field = field.clone();
        let mut left = without;
        let all = entities.range(range).map(|(_, e)| e);
        let all: Box<dyn Iterator<Item = Item<'a>> + 'a> = if rev {
            Box::new(all.rev())
        } else {
            Box::new(all)
        };
        Box::new(all.map_while(move |e| {
            if left == 0 {
                return None;
            }
            let none = e.search.values(&field).flatten().next().is_none();
            left -= usize::from(none);
            Some(none.then_some(e))
        }))
    };
    let everything = (Unbounded, Unbounded);
    let asc = order.order == Direction::Asc;
    Some(match at {
        None if !backward => {
            if asc {
                Box::new(valued(Box::new(set.iter())).chain(missing(everything, false)))
            } else {
                Box::new(valued(Box::new(set.iter().rev())).chain(missing(everything, true)))
            }
        }
        Some([Some(v), Some(r)]) => {
            let at = SortEntry::at(v, EntityKey::from_stored(r));
            let after = (Excluded(at.clone()), Unbounded);
            let before = (Unbounded, Excluded(at));
            match (asc, backward) {
                (true, false) => {
                    Box::new(valued(Box::new(set.range(after))).chain(missing(everything, false)))
                }
                (true, true) => valued(Box::new(set.range(before).rev())),
                (false, false) => Box::new(
                    valued(Box::new(set.range(before).rev())).chain(missing(everything, true)),
                ),
                (false, true) => valued(Box::new(set.range(after))),
            }
        }
        Some([None, Some(r)]) => {
            let k = EntityKey::from_stored(r);
            let after = (Excluded(k.clone()), Unbounded);
            let before = (Unbounded, Excluded(k));
            match (asc, backward) {
                (true, false) => missing(after, false),
                (true, true) => {
                    Box::new(missing(before, true).chain(valued(Box::new(set.iter().rev()))))
                }
                (false, false) => missing(before, true),
                (false, true) => {
                    Box::new(missing(after, false).chain(valued(Box::new(set.iter()))))
                }
            }
        }
        _ => return None,
    })
}

/// How many entities the query matches, read off the facet counts when it
/// is everything or one equality on a faceted single-valued field.
fn count_fast(
    snapshot: &Snapshot,
    predicate: Option<&Predicate>,
    full_text: Option<&FullText>,
) -> Option<usize> {
    if full_text.is_some() {
        return None;
    }
    match predicate {
        None => Some(snapshot.len()),
        Some(Predicate::In { key, values }) => snapshot.indexes().facet(key)?.count_in(values),
        Some(_) => None,
    }
}

/// A page walked from the indexes: work in proportion to the entities
/// walked past, not to the catalog (a count that cannot be read off the
/// facets walks the rest). `None` when the query needs a scan and a sort.
fn run_indexed<'a>(
    snapshot: &'a Snapshot,
    query: &EntityQuery,
    cursor: &Result<Box<Cursor>, usize>,
    limit: usize,
    budget: &Budget,
) -> Result<Option<QueryPage<'a>>, PagingError> {
    let predicate = query.predicate()?;
    let full_text = query.full_text()?;
    let order = query.order.as_ref();
    let (at, backward) = match cursor {
        Err(_) => (None, false),
        Ok(c) => (Some(c.order_field_values.as_slice()), c.is_previous),
    };
    let Some(mut steps) = walk(snapshot, order, at, backward) else {
        return Ok(None);
    };
    let keep = |e: Item<'a>| {
        predicate.as_ref().is_none_or(|p| p.matches(&e.search))
            && full_text.as_ref().is_none_or(|f| f.matches(&e.search))
    };
    let mut next = || -> Result<Option<Item<'a>>, OverBudget> {
        for step in steps.by_ref() {
            budget.check()?;
            if let Some(e) = step
                && keep(e)
            {
                return Ok(Some(e));
            }
        }
        Ok(None)
    };
    let mut items = Vec::new();
    let (total, first_values, more) = match cursor {
        Err(offset) => {
            let mut first = None;
            let mut seen = 0usize;
            while items.len() < limit {
                let Some(e) = next()? else { break };
                if seen == 0 {
                    first = Some(row_key(e, order));
                }
                seen += 1;
                if seen > *offset {
                    items.push(e);
                }
            }
            let more = limit > 0 && items.len() == limit && next()?.is_some();
            let total = match query.include_total {
                false => None,
                true => match count_fast(snapshot, predicate.as_ref(), full_text.as_ref()) {
                    Some(total) => Some(total),
                    None => {
                        let mut total = seen + usize::from(more);
                        while next()?.is_some() {
                            total += 1;
                        }
                        Some(total)
                    }
                },
            };
            (total, first, more)
        }
        Ok(c) => {
            while items.len() < limit {
                let Some(e) = next()? else { break };
                items.push(e);
            }
            let more = if backward {
                items.reverse();
                true
            } else {
                limit > 0 && items.len() == limit && next()?.is_some()
            };
            (c.total_items, c.first_sort_field_values.clone(), more)
        }
    };
    let mut page_info = PageInfo::default();
    if limit > 0 {
        let base = query.cursor(total, first_values.clone());
        if let Some(last) = items.last().filter(|_| more) {
            page_info.next_cursor = Some(base.at(&row_key(last, order), false).encode());
        }
        if let Some(first) = items.first().map(|e| row_key(e, order))
            && cursor.is_ok()
            && first_values.as_ref() != Some(&first)
        {
            page_info.prev_cursor = Some(base.at(&first, true).encode());
        }
    }
    Ok(Some(QueryPage {
        items,
        total_items: total.unwrap_or(0),
        page_info,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Entity, UnitEntities};
    use serde_json::json;

    /// Components `c0`..`c{n-1}`, `spec.rank` counting down.
    fn catalog(n: usize) -> Catalog {
        let entities: Vec<Entity> = (0..n)
            .map(|i| {
                serde_json::from_value::<Entity>(json!({
                    "apiVersion": "backstage.io/v1alpha1",
                    "kind": "Component",
                    "metadata": {"name": format!("c{i}")},
                    "spec": {"rank": format!("{}", n - i), "owner": "team"},
                }))
                .unwrap()
            })
            .collect();
        let catalog = Catalog::new();
        catalog.prepare(
            "test",
            vec![UnitEntities {
                unit: "r".into(),
                entities: entities.into_iter().map(Into::into).collect(),
            }],
        );
        catalog.publish();
        catalog
    }

    fn names(items: &[Item<'_>]) -> Vec<String> {
        items.iter().map(|e| e.key.as_str().to_owned()).collect()
    }

    #[test]
    fn after_cursors_round_trip_and_reject_bad_numbers() {
        let cursor = AfterCursor {
            limit: 2,
            offset: 4,
        };
        assert_eq!(
            String::from_utf8(BASE64.decode(cursor.encode()).unwrap()).unwrap(),
            r#"{"limit":2,"offset":4}"#
        );
        assert_eq!(AfterCursor::decode(&cursor.encode()).unwrap(), cursor);
        let bad = |json: &str| {
            AfterCursor::decode(&BASE64.encode(json))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad(r#"{"limit":0,"offset":1}"#),
            "Malformed after cursor, limit was not an number"
        );
        assert_eq!(
            bad(r#"{"limit":1,"offset":-1}"#),
            "Malformed after cursor, offset was not a number"
        );
        assert_eq!(bad("nope"), "Malformed after cursor, could not be parsed");
        assert!(matches!(
            AfterCursor::decode(""),
            Err(PagingError::EmptyAfter)
        ));
    }

    #[test]
    fn list_pages_in_order_with_a_next_cursor() {
        let catalog = catalog(5);
        let snapshot = catalog.snapshot();
        let mut list = ListQuery::default();
        list.order(&["asc:spec.rank".to_owned(), "desc:SPEC.RANK".to_owned()])
            .unwrap();
        assert_eq!(list.order.len(), 1);
        list.window(Some(2), Some(1), None).unwrap();
        let page = list.run(&snapshot, &Budget::unlimited()).unwrap();
        assert_eq!(
            names(&page.items),
            ["component:default/c3", "component:default/c2"]
        );
        assert_eq!(
            page.next,
            Some(AfterCursor {
                limit: 2,
                offset: 3
            })
        );
        list.window(None, None, Some(&page.next.unwrap().encode()))
            .unwrap();
        let last = list.run(&snapshot, &Budget::unlimited()).unwrap();
        assert_eq!(
            names(&last.items),
            ["component:default/c1", "component:default/c0"]
        );
        assert_eq!(last.next, None);
        assert!(matches!(
            list.window(Some(0), None, None),
            Err(PagingError::ZeroLimit)
        ));
        assert_eq!(
            ListQuery::default()
                .order(&["up:x".to_owned()])
                .unwrap_err()
                .to_string(),
            "Invalid order parameter \"up:x\", expected \"<asc or desc>:<field name>\""
        );
    }

    #[test]
    fn query_cursors_walk_forward_and_back() {
        let catalog = catalog(5);
        let snapshot = catalog.snapshot();
        let query = EntityQuery {
            order: Some(OrderField::parse_query("metadata.name, desc").unwrap()),
            include_total: true,
            ..EntityQuery::default()
        };
        let first = run_query(
            &snapshot,
            PageStart::Offset(query, 0),
            Some(2),
            &Budget::unlimited(),
        )
        .unwrap();
        assert_eq!(
            names(&first.items),
            ["component:default/c4", "component:default/c3"]
        );
        assert_eq!(first.total_items, 5);
        assert_eq!(first.page_info.prev_cursor, None);
        let next = Cursor::decode(first.page_info.next_cursor.as_deref().unwrap()).unwrap();
        let second = run_query(
            &snapshot,
            PageStart::Cursor(Box::new(next)),
            Some(2),
            &Budget::unlimited(),
        )
        .unwrap();
        assert_eq!(
            names(&second.items),
            ["component:default/c2", "component:default/c1"]
        );
        assert_eq!(second.total_items, 5);
        let prev = Cursor::decode(second.page_info.prev_cursor.as_deref().unwrap()).unwrap();
        let back = run_query(
            &snapshot,
            PageStart::Cursor(Box::new(prev)),
            Some(2),
            &Budget::unlimited(),
        )
        .unwrap();
        assert_eq!(names(&back.items), names(&first.items));
        assert_eq!(back.page_info.prev_cursor, None);
        assert!(back.page_info.next_cursor.is_some());
    }

    /// `count` entities cycling through `kinds`, with names of mixed case,
    /// a lifecycle missing from every fourth, and a `spec.type` when
    /// `typed`: ties, gaps and case for the index-against-scan tests.
    fn mixed_catalog(count: usize, kinds: &[&str], typed: bool) -> Catalog {
        let entities: Vec<Entity> = (0..count)
            .map(|i| {
                let mut spec = json!({"owner": "team"});
                if typed {
                    spec["type"] = json!(format!("T{}", i % 3));
                }
                if i % 4 != 0 {
                    spec["lifecycle"] = json!(["prod", "Prod", "exp"][i % 3]);
                }
                serde_json::from_value::<Entity>(json!({
                    "apiVersion": "backstage.io/v1alpha1",
                    "kind": kinds[i % kinds.len()],
                    "metadata": {"name": format!("{}{i}", ["b", "A", "a"][i % 3])},
                    "spec": spec,
                }))
                .unwrap()
            })
            .collect();
        let catalog = Catalog::new();
        catalog.prepare(
            "test",
            vec![UnitEntities {
                unit: "r".into(),
                entities: entities.into_iter().map(Into::into).collect(),
            }],
        );
        catalog.publish();
        catalog
    }

    /// Every page, forward then back, is the same from the indexes as from
    /// a scan and a sort: values in both directions, missing values, ties,
    /// filters, mixed case.
    #[test]
    fn indexed_pages_match_scanned_pages_both_ways() {
        let catalog = mixed_catalog(23, &["Component", "API", "component", "Group"], true);
        let snapshot = catalog.snapshot();
        let budget = Budget::unlimited();
        let orders = [
            None,
            Some("metadata.name"),
            Some("metadata.name, desc"),
            Some("spec.lifecycle"),
            Some("spec.lifecycle,desc"),
            Some("kind,desc"),
            Some("metadata.title"),
        ];
        let filters = [None, Some("kind=component"), Some("spec.type=t1")];
        let page_of = |page: &QueryPage<'_>| {
            (
                names(&page.items),
                page.total_items,
                page.page_info.next_cursor.clone(),
                page.page_info.prev_cursor.clone(),
            )
        };
        for order in orders {
            for filter in filters {
                let query = EntityQuery {
                    order: order.map(|o| OrderField::parse_query(o).unwrap()),
                    filter: filter.map(|f| vec![f.to_owned()]),
                    include_total: true,
                    ..EntityQuery::default()
                };
                let case = format!("{order:?} {filter:?}");
                let mut start: Result<Box<Cursor>, usize> = Err(0);
                let mut pages = 0;
                let mut going_back = false;
                loop {
                    let query = match &start {
                        Err(_) => query.clone(),
                        Ok(c) => Cursor::query(c),
                    };
                    let indexed = run_indexed(&snapshot, &query, &start, 3, &budget)
                        .unwrap()
                        .expect("indexed");
                    let scanned =
                        run_scanned(&snapshot, &query, start.clone(), 3, &budget).unwrap();
                    assert_eq!(page_of(&indexed), page_of(&scanned), "{case} page {pages}");
                    pages += 1;
                    assert!(pages < 40, "{case}");
                    let next = if going_back {
                        scanned.page_info.prev_cursor
                    } else {
                        scanned.page_info.next_cursor.clone().or_else(|| {
                            going_back = true;
                            scanned.page_info.prev_cursor.clone()
                        })
                    };
                    match next {
                        Some(c) => start = Ok(Box::new(Cursor::decode(&c).unwrap())),
                        None => break,
                    }
                }
                assert!(pages > 2, "{case}: {pages}");
                // A first page from an offset.
                let indexed = run_indexed(&snapshot, &query, &Err(4), 3, &budget)
                    .unwrap()
                    .unwrap();
                let scanned = run_scanned(&snapshot, &query, Err(4), 3, &budget).unwrap();
                assert_eq!(page_of(&indexed), page_of(&scanned), "{case} offset");
            }
        }
        // An order field without an index is scanned.
        let query = EntityQuery {
            order: Some(OrderField::parse_query("spec.owner.team").unwrap()),
            ..EntityQuery::default()
        };
        assert!(
            run_indexed(&snapshot, &query, &Err(0), 3, &budget)
                .unwrap()
                .is_none()
        );
    }

    /// `GET /entities` pages ordered by an indexed field are the scan's.
    #[test]
    fn indexed_list_pages_match_scanned_ones() {
        let catalog = mixed_catalog(17, &["Component", "API", "component"], false);
        let snapshot = catalog.snapshot();
        let budget = Budget::unlimited();
        for order in [
            "asc:spec.lifecycle",
            "desc:spec.lifecycle",
            "desc:kind",
            "asc:metadata.name",
            "desc:metadata.title",
        ] {
            for filter in [None, Some("kind=component")] {
                for (limit, offset) in [
                    (None, None),
                    (Some(4), Some(0)),
                    (Some(4), Some(6)),
                    (Some(5), Some(15)),
                ] {
                    let mut list = ListQuery {
                        predicate: filter
                            .and_then(|f| Predicate::from_filter_params(&[f.to_owned()]).unwrap()),
                        ..ListQuery::default()
                    };
                    list.order(&[order.to_owned()]).unwrap();
                    list.window(limit, offset, None).unwrap();
                    let indexed = list.run_indexed(&snapshot, &budget).unwrap().unwrap();
                    let scanned = {
                        let mut unindexed = list.clone();
                        unindexed.order.push(OrderField {
                            field: "spec.none".into(),
                            order: Direction::Asc,
                        });
                        unindexed.run(&snapshot, &budget).unwrap()
                    };
                    let case = format!("{order} {filter:?} {limit:?} {offset:?}");
                    assert_eq!(names(&indexed.items), names(&scanned.items), "{case}");
                    assert_eq!(indexed.next, scanned.next, "{case}");
                }
            }
        }
    }

    #[test]
    fn query_filters_full_text_and_rejects_bad_input() {
        let catalog = catalog(12);
        let snapshot = catalog.snapshot();
        let query = EntityQuery {
            query: Some(json!({"spec.owner": "team"})),
            full_text: FullTextFilter {
                term: " C1 ".into(),
                fields: Some(vec!["metadata.name".into()]),
            },
            ..EntityQuery::default()
        };
        let page = run_query(
            &snapshot,
            PageStart::Offset(query, 0),
            None,
            &Budget::unlimited(),
        )
        .unwrap();
        assert_eq!(
            names(&page.items),
            [
                "component:default/c1",
                "component:default/c10",
                "component:default/c11"
            ]
        );
        assert_eq!(page.total_items, 0);
        assert_eq!(
            Cursor::decode("").unwrap_err().to_string(),
            "Cursor cannot be empty"
        );
        assert!(
            Cursor::decode("e30=")
                .unwrap_err()
                .to_string()
                .starts_with("Malformed cursor: missing field")
        );
        assert_eq!(
            parse_total_items(Some("all"), "value")
                .unwrap_err()
                .to_string(),
            "Invalid totalItems value \"all\", expected one of: include, exclude"
        );
        let bad = EntityQuery {
            query: Some(json!("kind")),
            ..EntityQuery::default()
        };
        let err = run_query(
            &snapshot,
            PageStart::Offset(bad, 0),
            None,
            &Budget::unlimited(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Invalid query: Invalid filter predicate")
        );
    }
}
