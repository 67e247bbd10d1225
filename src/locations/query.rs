//! `POST /locations/by-query`: Backstage's body (`limit`, `query`, or the
//! `cursor` of an earlier page) over the listed locations, in id order.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::Location;
use crate::catalog::paging::PageInfo;
use crate::catalog::query::{Predicate, QueryError};
use crate::catalog::search::SearchRows;

/// Backstage's default page size for locations.
const DEFAULT_LOCATION_LIMIT: i64 = 1000;

/// Why a location query was rejected (a 400 `InputError`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum LocationQueryError {
    #[error("Cursor cannot be empty")]
    EmptyCursor,
    #[error("Malformed cursor, unknown encoding")]
    CursorEncoding(#[source] base64::DecodeError),
    #[error("Malformed cursor: {0}")]
    CursorJson(#[source] serde_json::Error),
    #[error("Malformed cursor: limit must be >= 1")]
    CursorLimit,
    #[error("Limit must be a positive integer >= 1")]
    Limit,
    #[error("Query must be an object")]
    QueryNotObject,
    #[error("Invalid query: {0}")]
    Query(#[source] QueryError),
}

/// The request body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LocationQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub query: Option<Value>,
}

/// What a location cursor holds, as Backstage encodes it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LocationCursor {
    limit: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query: Option<Value>,
}

impl LocationCursor {
    fn decode(text: &str) -> Result<Self, LocationQueryError> {
        if text.is_empty() {
            return Err(LocationQueryError::EmptyCursor);
        }
        let bytes = BASE64
            .decode(text)
            .map_err(LocationQueryError::CursorEncoding)?;
        let cursor: Self =
            serde_json::from_slice(&bytes).map_err(LocationQueryError::CursorJson)?;
        if cursor.limit < 1 {
            return Err(LocationQueryError::CursorLimit);
        }
        Ok(cursor)
    }

    fn encode(&self) -> String {
        BASE64.encode(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// A page of locations: `{items, totalItems, pageInfo}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LocationPage {
    pub items: Vec<Location>,
    pub total_items: usize,
    pub page_info: PageInfo,
}

impl LocationQuery {
    fn cursor(&self) -> Result<LocationCursor, LocationQueryError> {
        if let Some(text) = &self.cursor {
            return LocationCursor::decode(text);
        }
        let limit = self.limit.unwrap_or(DEFAULT_LOCATION_LIMIT);
        if limit < 1 {
            return Err(LocationQueryError::Limit);
        }
        Ok(LocationCursor {
            limit,
            after_id: None,
            query: self.query.clone(),
        })
    }

    /// The page of `all` this query asks for.
    pub(crate) fn page(&self, mut all: Vec<Location>) -> Result<LocationPage, LocationQueryError> {
        let cursor = self.cursor()?;
        let predicate = match &cursor.query {
            None => None,
            Some(query) if !query.is_object() => return Err(LocationQueryError::QueryNotObject),
            Some(query) => Some(Predicate::from_json(query).map_err(LocationQueryError::Query)?),
        };
        all.retain(|l| {
            predicate.as_ref().is_none_or(|p| {
                let json = serde_json::to_value(l).unwrap_or_default();
                p.matches(&SearchRows::build(&json))
            })
        });
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let total = all.len();
        let start = cursor
            .after_id
            .as_deref()
            .map_or(0, |after| all.partition_point(|l| l.id.as_str() <= after));
        let limit = usize::try_from(cursor.limit).unwrap_or(usize::MAX);
        let end = start.saturating_add(limit).min(total);
        all.truncate(end);
        all.drain(..start);
        let mut page_info = PageInfo::default();
        if end < total
            && let Some(last) = all.last()
        {
            let next = LocationCursor {
                limit: cursor.limit,
                after_id: Some(last.id.clone()),
                query: cursor.query.clone(),
            };
            page_info.next_cursor = Some(next.encode());
        }
        Ok(LocationPage {
            items: all,
            total_items: total,
            page_info,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locations::model::Origin;
    use serde_json::json;

    /// The page as the API answers it.
    fn page(query: LocationQuery, all: Vec<Location>) -> Value {
        serde_json::to_value(query.page(all).unwrap()).unwrap()
    }

    #[test]
    fn location_pages_follow_their_cursor_and_keep_the_query() {
        let all: Vec<Location> = (0..5)
            .map(|i| {
                let target = format!("https://h/projects/P/repos/r{i}/browse/c.yaml");
                Location::url(&target, Origin::Registered)
            })
            .collect();
        let query = json!({"target": {"$hasPrefix": "https://h/projects/P/repos/r"}});
        let first = page(
            LocationQuery {
                limit: Some(2),
                cursor: None,
                query: Some(query),
            },
            all.clone(),
        );
        assert_eq!(first["totalItems"], 5);
        let mut seen: Vec<String> = first["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect();
        let mut cursor = first["pageInfo"]["nextCursor"].as_str().map(str::to_owned);
        while let Some(next) = cursor {
            let page = page(
                LocationQuery {
                    cursor: Some(next),
                    ..LocationQuery::default()
                },
                all.clone(),
            );
            seen.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l["id"].as_str().unwrap().to_owned()),
            );
            cursor = page["pageInfo"]["nextCursor"].as_str().map(str::to_owned);
        }
        let mut ids: Vec<String> = all.iter().map(|l| l.id.clone()).collect();
        ids.sort();
        assert_eq!(seen, ids);

        let none = page(
            LocationQuery {
                query: Some(json!({"type": "file"})),
                ..LocationQuery::default()
            },
            all.clone(),
        );
        assert_eq!(none["totalItems"], 0);
        assert_eq!(none["pageInfo"], json!({}));
        for bad in [
            LocationQuery {
                limit: Some(0),
                ..LocationQuery::default()
            },
            LocationQuery {
                cursor: Some(String::new()),
                ..LocationQuery::default()
            },
            LocationQuery {
                cursor: Some("%%%".into()),
                ..LocationQuery::default()
            },
            LocationQuery {
                query: Some(json!([1])),
                ..LocationQuery::default()
            },
        ] {
            assert!(bad.page(all.clone()).is_err(), "{bad:?}");
        }
    }
}
