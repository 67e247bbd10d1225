//! `GET /api/catalog/changes`: the entity change feed, for a catalog that
//! follows this one. Without `after` it pages through the whole current
//! set (each entity at its latest change); with `after=<cursor>` it gives
//! what changed since, compacted to one entry per entity; `wait` long-polls
//! until something changes. A cursor older than the retained removals (or
//! from another database) is `410 Gone`: resynchronise from the start.

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::error::ApiError;
use super::params::Params;
use super::schema::{Changes, ERROR, ErrorBody};
use super::state::{ApiState, Req, raw_json};
use super::stream::{Closed, Sink, Streamed, evaluate_streamed, json_headers};
use crate::catalog::Snapshot;
use crate::catalog::changes::Entry;

const DEFAULT_LIMIT: usize = 500;
const MAX_LIMIT: usize = 10_000;
/// The longest a long-poll waits (`wait` is capped to it).
const MAX_WAIT: Duration = Duration::from_secs(30);

#[utoipa::path(get, path = "/api/catalog/changes",
    summary = "The entity change feed: without after, the full current set page by page; with after, what changed since (one entry per entity); wait long-polls",
    params(("after" = Option<String>, Query, description = "The cursor of an earlier answer"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "Items per page (default 500)"),
        ("wait" = Option<u32>, Query, minimum = 0, maximum = 30, description = "Seconds to wait for a change when there is none")),
    responses((status = 200, description = "Changes", body = Changes), (status = 400, description = ERROR, body = ErrorBody), (status = 410, description = ERROR, body = ErrorBody)))]
pub(super) async fn changes(
    State(state): State<ApiState>,
    req: Req,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &["after", "limit", "wait"])?;
    let after = match params.one("after") {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            req.input(format!(
                "Invalid after parameter \"{text}\": pass the cursor of an earlier answer, or leave it out to start from the full set"
            ))
        })?),
    };
    let limit = params
        .uint("limit")?
        .unwrap_or(DEFAULT_LIMIT)
        .clamp(1, MAX_LIMIT);
    let wait = params.uint("wait")?.map_or(Duration::ZERO, |s| {
        Duration::from_secs(s as u64).min(MAX_WAIT)
    });

    let mut published = state.catalog.subscribe();
    let mut snapshot = state.catalog.snapshot();
    if let Some(cursor) = after {
        check_cursor(&req, &snapshot, cursor)?;
        if snapshot.last_seq() <= cursor && !wait.is_zero() {
            let deadline = tokio::time::Instant::now() + wait;
            // Woken by every publication; a change made before subscribing
            // is already in the snapshot taken after it.
            while state.catalog.snapshot().last_seq() <= cursor {
                let woken = tokio::time::timeout_at(deadline, published.changed()).await;
                if !matches!(woken, Ok(Ok(()))) {
                    break;
                }
            }
            snapshot = state.catalog.snapshot();
            check_cursor(&req, &snapshot, cursor)?;
        }
    }
    let cursor = after.unwrap_or(0);
    if limit <= DEFAULT_LIMIT {
        let mut body = String::new();
        // Writing to a String cannot fail.
        let _ = page(&snapshot, cursor, limit, &mut body);
        return Ok(raw_json(body));
    }
    // A large page (up to 10,000 entities rendered) is rendered in turns
    // of the query pool and streamed, so clients paging the full set
    // cannot hold up the async workers (and with them the health checks)
    // nor make the daemon hold whole pages.
    evaluate_streamed(&state, &req, move |_| {
        Ok(Streamed {
            headers: json_headers(),
            body: Box::new(move |out| page(&snapshot, cursor, limit, out)),
        })
    })
    .await
}

/// A cursor from the future (another database) or from before the
/// retained removals cannot be followed.
fn check_cursor(req: &Req, snapshot: &Snapshot, cursor: u64) -> Result<(), ApiError> {
    let last = snapshot.last_seq();
    let horizon = snapshot.changes().horizon();
    if cursor > last {
        return Err(req.error(
            StatusCode::GONE,
            "GoneError",
            format!("cursor {cursor} is ahead of this catalog's last change ({last}): it comes from another database; resynchronise with GET /api/catalog/changes without after"),
        ));
    }
    if cursor < horizon {
        return Err(req.error(
            StatusCode::GONE,
            "GoneError",
            format!("cursor {cursor} is older than the retained changes (removals up to {horizon} were forgotten); resynchronise with GET /api/catalog/changes without after"),
        ));
    }
    Ok(())
}

/// `{items, cursor, hasMore}`: up to `limit` entries after `cursor`,
/// written to `out` as they are rendered. The next cursor is the last
/// entry's sequence number, or, when nothing is left, the snapshot's last
/// one (everything up to it has been seen).
fn page(snapshot: &Snapshot, cursor: u64, limit: usize, out: &mut dyn Sink) -> Result<(), Closed> {
    let mut entries = snapshot.changes().after(cursor).peekable();
    let mut written = 0;
    let mut next = cursor;
    out.write("{\"items\":[")?;
    while written < limit {
        let Some((seq, entry)) = entries.next() else {
            break;
        };
        let item = match entry {
            // The log and the entities are of one snapshot: always found.
            Entry::Upsert(key) => snapshot.get(key).map(|entity| {
                format!(
                    "{{\"sequence\":{seq},\"type\":\"upsert\",\"entityRef\":{},\"entity\":{}}}",
                    json!(entity.entity_ref),
                    entity.json
                )
            }),
            Entry::Removed(key) => Some(format!(
                "{{\"sequence\":{seq},\"type\":\"delete\",\"entityRef\":{}}}",
                json!(key.as_str())
            )),
        };
        if let Some(item) = item {
            if written > 0 {
                out.write(",")?;
            }
            out.write(&item)?;
            written += 1;
            next = seq;
        }
    }
    let has_more = entries.peek().is_some();
    if !has_more {
        next = next.max(snapshot.last_seq());
    }
    out.write(&format!("],\"cursor\":\"{next}\",\"hasMore\":{has_more}}}"))
}
