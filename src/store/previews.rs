//! Open pull requests' previews in the store, so a restart keeps them and
//! every replica serves the leader's. The store keeps them as text (the
//! preview as served, and the status page's summary of it): what a preview
//! holds is the checks' business, not the store's.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::StoreError;
use super::sql::{Dialect, SqlStore};

/// Which pull request a preview is of: project and repository as compared
/// (lowercase).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PreviewId {
    pub provider: String,
    pub project: String,
    pub repository: String,
    pub pull_request: u64,
}

/// One stored preview.
#[derive(Debug, Clone)]
pub struct StoredPreview {
    pub id: PreviewId,
    pub checked_at: DateTime<Utc>,
    /// What the status page lists (JSON).
    pub summary: String,
    /// The preview as served (JSON).
    pub body: String,
}

/// One change to the stored previews.
#[derive(Debug, Clone)]
pub enum PreviewWrite {
    Save(StoredPreview),
    Delete(PreviewId),
}

/// The open previews, as the leader writes them and every replica reads them.
pub trait PreviewStore: Send + Sync {
    /// Every stored preview (the leader's start-up), oldest first.
    fn previews(&self) -> BoxFuture<'_, Result<Vec<StoredPreview>, StoreError>>;

    /// One preview's body (a follower serving it).
    fn preview<'a>(
        &'a self,
        id: &'a PreviewId,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;

    /// How many are stored and the summaries of the newest `limit` (a
    /// follower's status page).
    fn preview_summaries(
        &self,
        limit: usize,
    ) -> BoxFuture<'_, Result<(usize, Vec<String>), StoreError>>;

    /// Applies `writes` in order, in one transaction (leader only).
    fn write_previews<'a>(
        &'a self,
        writes: &'a [PreviewWrite],
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

impl<D: Dialect> PreviewStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    <D::Db as Database>::Arguments: IntoArguments<D::Db>,
    for<'r> &'r str: Encode<'r, D::Db> + Decode<'r, D::Db> + Type<D::Db>,
    for<'r> String: Decode<'r, D::Db> + Type<D::Db>,
    for<'r> i64: Encode<'r, D::Db> + Decode<'r, D::Db> + Type<D::Db>,
    &'static str: ColumnIndex<<D::Db as Database>::Row>,
{
    fn previews(&self) -> BoxFuture<'_, Result<Vec<StoredPreview>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT provider, project, repository, pull_request, checked_at_ms, summary, body
                 FROM pull_request_previews ORDER BY checked_at_ms",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let checked_at: i64 = row.try_get("checked_at_ms")?;
                    Ok(StoredPreview {
                        id: PreviewId {
                            provider: row.try_get("provider")?,
                            project: row.try_get("project")?,
                            repository: row.try_get("repository")?,
                            pull_request: from_param(row.try_get("pull_request")?),
                        },
                        checked_at: DateTime::from_timestamp_millis(checked_at).unwrap_or_default(),
                        summary: row.try_get("summary")?,
                        body: row.try_get("body")?,
                    })
                })
                .collect()
        })
    }

    fn preview<'a>(
        &'a self,
        id: &'a PreviewId,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT body FROM pull_request_previews
                 WHERE provider = $1 AND project = $2 AND repository = $3 AND pull_request = $4",
            )
            .bind(id.provider.as_str())
            .bind(id.project.as_str())
            .bind(id.repository.as_str())
            .bind(to_param(id.pull_request))
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.map(|row| row.try_get("body")).transpose()?)
        })
    }

    fn preview_summaries(
        &self,
        limit: usize,
    ) -> BoxFuture<'_, Result<(usize, Vec<String>), StoreError>> {
        Box::pin(async move {
            let count = sqlx::query("SELECT COUNT(*) AS open FROM pull_request_previews")
                .fetch_one(&self.pool)
                .await?;
            let count: i64 = count.try_get("open")?;
            let rows = sqlx::query(
                "SELECT summary FROM pull_request_previews ORDER BY checked_at_ms DESC LIMIT $1",
            )
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
            let summaries = rows
                .iter()
                .map(|row| row.try_get("summary"))
                .collect::<Result<Vec<String>, _>>()?;
            Ok((usize::try_from(count).unwrap_or(0), summaries))
        })
    }

    fn write_previews<'a>(
        &'a self,
        writes: &'a [PreviewWrite],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut tx = self.dialect.begin_write(&self.pool).await?;
            for write in writes {
                match write {
                    PreviewWrite::Save(preview) => {
                        sqlx::query(
                            "INSERT INTO pull_request_previews
                               (provider, project, repository, pull_request, checked_at_ms, summary, body)
                             VALUES ($1, $2, $3, $4, $5, $6, $7)
                             ON CONFLICT (provider, project, repository, pull_request) DO UPDATE SET
                               checked_at_ms = excluded.checked_at_ms, summary = excluded.summary, body = excluded.body",
                        )
                        .bind(preview.id.provider.as_str())
                        .bind(preview.id.project.as_str())
                        .bind(preview.id.repository.as_str())
                        .bind(to_param(preview.id.pull_request))
                        .bind(preview.checked_at.timestamp_millis())
                        .bind(preview.summary.as_str())
                        .bind(preview.body.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                    PreviewWrite::Delete(id) => {
                        sqlx::query(
                            "DELETE FROM pull_request_previews
                             WHERE provider = $1 AND project = $2 AND repository = $3 AND pull_request = $4",
                        )
                        .bind(id.provider.as_str())
                        .bind(id.project.as_str())
                        .bind(id.repository.as_str())
                        .bind(to_param(id.pull_request))
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

/// A pull request's id as bound (ids past `i64::MAX` do not occur).
fn to_param(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

fn from_param(id: i64) -> u64 {
    u64::try_from(id).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn stored(pull_request: u64, at_ms: i64) -> StoredPreview {
        StoredPreview {
            id: PreviewId {
                provider: "p".into(),
                project: "prj".into(),
                repository: "svc".into(),
                pull_request,
            },
            checked_at: DateTime::from_timestamp_millis(at_ms).unwrap(),
            summary: format!("{{\"pullRequest\":{pull_request}}}"),
            body: format!("{{\"pullRequest\":{pull_request},\"at\":{at_ms}}}"),
        }
    }

    #[tokio::test]
    async fn previews_are_saved_replaced_and_deleted_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("catalog.db"))
            .await
            .unwrap();
        let (one, two) = (stored(1, 1_000), stored(2, 2_000));
        let newer_one = stored(1, 3_000);
        store
            .write_previews(&[
                PreviewWrite::Save(one.clone()),
                PreviewWrite::Save(two.clone()),
                PreviewWrite::Save(newer_one.clone()),
            ])
            .await
            .unwrap();
        let all = store.previews().await.unwrap();
        let bodies: Vec<&str> = all.iter().map(|p| p.body.as_str()).collect();
        assert_eq!(bodies, [two.body.as_str(), newer_one.body.as_str()]);
        assert_eq!(all[1].checked_at, newer_one.checked_at);
        assert_eq!(
            store.preview(&one.id).await.unwrap().as_deref(),
            Some(newer_one.body.as_str())
        );
        let (count, summaries) = store.preview_summaries(1).await.unwrap();
        assert_eq!((count, summaries), (2, vec![newer_one.summary.clone()]));
        store
            .write_previews(&[PreviewWrite::Delete(one.id.clone())])
            .await
            .unwrap();
        assert_eq!(store.preview(&one.id).await.unwrap(), None);
        assert_eq!(store.previews().await.unwrap().len(), 1);
    }
}
