//! Writes that reach a follower, carried out by the leader: the follower
//! records the request in the database (method, path and query, the few
//! headers the leader's handlers read — never credentials: it checked them
//! itself — and body), the leader claims it, answers it as it would have
//! answered the caller, and records the answer, which the follower returns. So a registration through a
//! follower still answers with its entities, and a webhook is applied once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use sqlx::Row;
use sqlx::postgres::PgListener;
use sqlx::types::Json;
use tokio_util::sync::CancellationToken;

use super::Replica;
use crate::store::StoreError;

/// Wakes the leader when a follower records a request.
pub(crate) const REQUESTS_CHANNEL: &str = "bitbucket_catalogd_requests";
/// How long a recorded request may wait for a leader to claim it: a
/// hand-over takes at most this long.
pub(crate) const CLAIM_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a follower looks for the answer, and the leader for requests
/// it was not woken for.
const ANSWER_POLL: Duration = Duration::from_millis(50);
const CLAIM_POLL: Duration = Duration::from_secs(1);
/// The only headers recorded for the leader: what its handlers read (the
/// body's type for the JSON extractors, and a Bitbucket webhook's event key
/// and signature, see [`crate::webhooks`]). An allow-list, so a proxy's or
/// client's credential header never lands in the table.
/// The caller's token is recorded only as its digest
/// (`x-catalogd-token-sha256`, which the leader checks).
const FORWARDED_HEADERS: [&str; 5] = [
    "content-type",
    "accept",
    "x-event-key",
    "x-hub-signature",
    "x-catalogd-token-sha256",
];
/// What may wait for the leader at once, from all followers: a flood is
/// refused at the follower (503) instead of filling the database.
pub(crate) const MAX_QUEUED_REQUESTS: i64 = 128;
pub(crate) const MAX_QUEUED_BYTES: i64 = 32 * 1024 * 1024;
/// Serialises recordings, for the bound ("bbcdqueu").
const QUEUE_LOCK: i64 = 0x6262_6364_7175_6575;

/// A write as the follower received it.
#[derive(Debug, Clone)]
pub(crate) struct ForwardedRequest {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Only [`FORWARDED_HEADERS`] are recorded.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The leader's answer.
#[derive(Debug, Clone)]
pub(crate) struct ForwardedAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What became of a forwarded write.
#[derive(Debug)]
pub(crate) enum Forwarding {
    Answered(ForwardedAnswer),
    /// Too many requests wait already ([`MAX_QUEUED_REQUESTS`],
    /// [`MAX_QUEUED_BYTES`]): nothing was recorded.
    Full,
    /// No leader took it in time: nothing was done.
    Unclaimed,
    /// The leader that took it stopped leading, or did not answer in time:
    /// it may or may not have been carried out.
    Abandoned,
}

/// How the leader answers a forwarded request (its own router).
pub(crate) type Answerer =
    Arc<dyn Fn(ForwardedRequest) -> BoxFuture<'static, ForwardedAnswer> + Send + Sync>;

impl Replica {
    /// Records `request` for the leader and waits for its answer, at most
    /// [`CLAIM_TIMEOUT`] for a leader to take it and `timeout` in all.
    pub(crate) async fn forward(
        &self,
        request: &ForwardedRequest,
        timeout: Duration,
    ) -> Result<Forwarding, StoreError> {
        let pool = self.store.pool();
        let Some(id) = self.record(request).await? else {
            return Ok(Forwarding::Full);
        };
        let started = Instant::now();
        loop {
            tokio::time::sleep(ANSWER_POLL).await;
            let row = sqlx::query(
                "SELECT claimed_at IS NOT NULL AS claimed, status, response_headers, response_body,
                    claimed_by IS DISTINCT FROM (SELECT identity FROM replica_leader) AS orphaned
                 FROM replica_requests WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&pool)
            .await?;
            let Some(row) = row else {
                return Ok(Forwarding::Abandoned);
            };
            if let Some(status) = row.try_get::<Option<i32>, _>("status")? {
                sqlx::query("DELETE FROM replica_requests WHERE id = $1")
                    .bind(id)
                    .execute(&pool)
                    .await?;
                return Ok(Forwarding::Answered(ForwardedAnswer {
                    status: u16::try_from(status).unwrap_or(500),
                    headers: row.try_get::<Json<_>, _>("response_headers")?.0,
                    body: row.try_get("response_body")?,
                }));
            }
            let claimed: bool = row.try_get("claimed")?;
            let orphaned: bool = row.try_get("orphaned")?;
            let waited = started.elapsed();
            let outcome = if !claimed && waited > CLAIM_TIMEOUT {
                Forwarding::Unclaimed
            } else if (claimed && orphaned) || waited > timeout {
                Forwarding::Abandoned
            } else {
                continue;
            };
            // No one waits for it any more. An unclaimed request is only
            // dropped if no leader claimed it meanwhile (then it is answered).
            let unclaimed_only = matches!(outcome, Forwarding::Unclaimed);
            let dropped = sqlx::query(
                "DELETE FROM replica_requests WHERE id = $1 AND (NOT $2 OR claimed_at IS NULL)",
            )
            .bind(id)
            .bind(unclaimed_only)
            .execute(&pool)
            .await?;
            if dropped.rows_affected() == 0 && unclaimed_only {
                continue;
            }
            return Ok(outcome);
        }
    }

    /// Records `request` (only [`FORWARDED_HEADERS`]) and wakes the leader;
    /// returns its row, or `None` when the queue is full.
    async fn record(&self, request: &ForwardedRequest) -> Result<Option<i64>, StoreError> {
        // `http` gives header names in lower case.
        let recorded: Vec<_> = (request.headers.iter())
            .filter(|(name, _)| FORWARDED_HEADERS.contains(&name.as_str()))
            .collect();
        let mut tx = self.store.pool().begin().await?;
        // One recording at a time across followers (until commit), so the
        // count each one reads includes every other's row: an exact bound.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(QUEUE_LOCK)
            .execute(&mut *tx)
            .await?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO replica_requests (method, uri, headers, body, forwarded_by)
             SELECT $1, $2, $3, $4, $5
             FROM (SELECT count(*) AS n, coalesce(sum(octet_length(body)), 0) AS bytes
                   FROM replica_requests) queued
             WHERE queued.n < $6 AND queued.bytes + octet_length($4) <= $7
             RETURNING id",
        )
        .bind(&request.method)
        .bind(&request.uri)
        .bind(Json(recorded))
        .bind(&request.body)
        .bind(&self.identity)
        .bind(MAX_QUEUED_REQUESTS)
        .bind(MAX_QUEUED_BYTES)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            tracing::warn!(
                max_requests = MAX_QUEUED_REQUESTS,
                max_bytes = MAX_QUEUED_BYTES,
                "too many writes wait for the leader; refusing this one"
            );
            return Ok(None);
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(REQUESTS_CHANNEL)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// While this replica leads, claims recorded requests one by one and
    /// answers each with `answer`, concurrently.
    pub(crate) fn answer_forwarded(
        self: &Arc<Self>,
        answer: Answerer,
        shutdown: CancellationToken,
    ) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let pool = this.store.pool();
            let mut listener = None;
            let mut ticks = tokio::time::interval(CLAIM_POLL);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = async {
                        match listener.as_mut() {
                            Some(l) => { let _ = PgListener::try_recv(l).await; }
                            None => std::future::pending::<()>().await,
                        }
                    } => {}
                    () = shutdown.cancelled() => return,
                }
                if !this.is_leader() {
                    continue;
                }
                if listener.is_none() {
                    listener = match PgListener::connect_with(&pool).await {
                        Ok(mut l) => l.listen(REQUESTS_CHANNEL).await.is_ok().then_some(l),
                        Err(_) => None,
                    };
                }
                if let Err(err) = this.claim_all(&answer).await {
                    tracing::warn!(error = %err, "cannot read the requests followers forwarded; retrying");
                }
            }
        });
    }

    async fn claim_all(&self, answer: &Answerer) -> Result<(), StoreError> {
        let pool = self.store.pool();
        // Left behind by a follower that died waiting: no one waits longer
        // than the answer timeout (twice it, for replicas configured apart).
        let abandoned_after = 2.0 * self.answer_timeout().max(CLAIM_TIMEOUT).as_secs_f64();
        sqlx::query(
            "DELETE FROM replica_requests WHERE created_at < now() - $1::float8 * interval '1 second'",
        )
        .bind(abandoned_after)
        .execute(&pool)
        .await?;
        loop {
            let row = sqlx::query(
                "UPDATE replica_requests SET claimed_by = $1, claimed_at = now()
                 WHERE id = (SELECT id FROM replica_requests WHERE claimed_at IS NULL
                             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING id, method, uri, headers, body",
            )
            .bind(&self.identity)
            .fetch_optional(&pool)
            .await?;
            let Some(row) = row else { return Ok(()) };
            let id: i64 = row.try_get("id")?;
            let request = ForwardedRequest {
                method: row.try_get("method")?,
                uri: row.try_get("uri")?,
                headers: row.try_get::<Json<_>, _>("headers")?.0,
                body: row.try_get("body")?,
            };
            let answer = Arc::clone(answer);
            let pool = pool.clone();
            tokio::spawn(async move {
                let reply = answer(request).await;
                let stored = sqlx::query(
                    "UPDATE replica_requests SET status = $2, response_headers = $3, response_body = $4
                     WHERE id = $1",
                )
                .bind(id)
                .bind(i32::from(reply.status))
                .bind(Json(reply.headers))
                .bind(reply.body)
                .execute(&pool)
                .await;
                if let Err(err) = stored {
                    tracing::error!(error = %err, "cannot record the answer to a forwarded request");
                }
            });
        }
    }
}
