//! Several daemons on one PostgreSQL database: exactly one leads (holds a
//! session advisory lock on a connection of its own) and does everything
//! that talks to Bitbucket; the others follow the change sequence into
//! memory and serve reads, handing their writes to the leader through the
//! database ([`requests`]).
//!
//! - The lock is held as long as the leader's session lives: `kill -9`
//!   closes the socket and PostgreSQL releases it at once; a leader cut
//!   off from the database loses it when the server's keepalive (set on
//!   the lock session) gives up, within [`LOCK_SESSION_TIMEOUT`]. The
//!   leader checks its session every second and stops when it is gone.
//! - A leader that hangs or is frozen (`SIGSTOP`) keeps its session, so
//!   it also holds a lease it renews every second over that session
//!   ([`LEADER_LEASE`]). A follower that finds the lease expired ends the
//!   frozen leader's sessions and takes the lock; the frozen one, resumed,
//!   is fenced (the leader record and its expired lease refuse its
//!   writes) and stops when it sees its lease lapsed.
//! - A follower wakes on `NOTIFY` and reads everything after its sequence
//!   number, and polls every second besides, so a missed notification
//!   only delays.

mod feed;
pub(crate) mod requests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio_util::sync::CancellationToken;

use crate::catalog::{Catalog, Followed};
use crate::scheduler::{Applier, Scheduler};
use crate::store::postgres::{CHANGES_CHANNEL, LEADER_LEASE};
use crate::store::{PostgresStore, StoreError};

/// The advisory lock key the leader holds ("bbcdlead").
const LEADER_LOCK: i64 = 0x6262_6364_6c65_6164;
/// How often a follower tries the lock and polls for changes.
const FOLLOW_TICK: Duration = Duration::from_secs(1);
/// A follower that has not read the database for this long is not ready:
/// it cannot tell whether what it serves is current.
const STALE_AFTER: Duration = Duration::from_secs(10);
/// Catch-ups between two reads of the leader's run reports.
const RUNS_EVERY: u64 = 5;
/// How often the leader checks that its lock session is alive, and how
/// long a check may take.
const LEADER_CHECK: Duration = Duration::from_secs(1);
const LEADER_CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the server keeps a silent lock session (TCP keepalive and
/// user timeout on the server's side of the lock session).
pub(crate) const LOCK_SESSION_TIMEOUT: Duration = Duration::from_secs(6);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    Leader,
    Follower,
}

/// What the status endpoint shows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplicaStatus {
    pub identity: String,
    pub role: Role,
    /// The identity of the leader, as it recorded itself.
    pub leader: Option<String>,
    /// Changes stored but not yet served here (0 on the leader).
    pub lag_changes: u64,
    /// Seconds since this follower last read the database (0 on the leader).
    pub lag_seconds: f64,
    /// Whether this replica has caught up since it started.
    pub caught_up: bool,
}

/// This daemon's place among the replicas.
#[derive(Debug)]
pub(crate) struct Replica {
    identity: String,
    store: PostgresStore,
    options: PgConnectOptions,
    leading: AtomicBool,
    leader: RwLock<Option<String>>,
    caught_up: AtomicBool,
    lag_changes: AtomicU64,
    last_read: parking_lot::Mutex<Instant>,
    /// Catch-ups so far (runs are read again every [`RUNS_EVERY`]).
    reads: AtomicU64,
    /// Cancelled when a leader loses its lock: it must stop.
    lost: CancellationToken,
    /// Cancelled on shutdown: the lease is released.
    released: CancellationToken,
    /// How long a follower waits for the leader to answer a write.
    answer_timeout: Duration,
}

/// Proof that this replica holds the leader lock and renews its lease.
#[derive(Debug)]
pub(crate) struct LeaderLock(());

/// What a follower needs to take over.
pub(crate) struct Promotion {
    pub catalog: Arc<Catalog>,
    pub applier: Arc<Applier>,
    pub scheduler: Arc<Scheduler>,
    pub locations: Arc<crate::locations::Locations>,
}

impl Replica {
    /// Joins the replicas on `store` as `identity`; leads at once if no one
    /// does. Returns the replica and, when leading, its lock session.
    pub(crate) async fn join(
        identity: String,
        store: PostgresStore,
        options: PgConnectOptions,
        answer_timeout: Duration,
    ) -> Result<(Arc<Self>, Option<LeaderLock>), StoreError> {
        // Only the recorded leader writes, whatever a bug might attempt.
        store.fence_as(&identity);
        let replica = Arc::new(Self {
            identity,
            store,
            options,
            leading: AtomicBool::new(false),
            leader: RwLock::new(None),
            caught_up: AtomicBool::new(false),
            lag_changes: AtomicU64::new(0),
            last_read: parking_lot::Mutex::new(Instant::now()),
            reads: AtomicU64::new(0),
            lost: CancellationToken::new(),
            released: CancellationToken::new(),
            answer_timeout,
        });
        let mut session = replica.lock_session().await?;
        let lock = if replica.try_lock(&mut session).await? {
            // Renewed from now on: what follows may take longer than a lease.
            let lock = replica.hold_lease(session).await?;
            replica.became_leader().await?;
            Some(lock)
        } else {
            let _ = session.close().await;
            replica.read_leader().await;
            None
        };
        Ok((replica, lock))
    }

    /// How long a follower waits for the leader to answer a write.
    pub(crate) fn answer_timeout(&self) -> Duration {
        self.answer_timeout
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }

    /// Ready: the leader always; a follower once it has caught up, as long
    /// as it keeps reading the database (within [`STALE_AFTER`]).
    pub(crate) fn is_ready(&self) -> bool {
        self.is_leader()
            || (self.caught_up.load(Ordering::Acquire)
                && self.last_read.lock().elapsed() < STALE_AFTER)
    }

    /// Cancelled when this leader lost its lock.
    pub(crate) fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    pub(crate) fn status(&self) -> ReplicaStatus {
        let leading = self.is_leader();
        ReplicaStatus {
            identity: self.identity.clone(),
            role: if leading {
                Role::Leader
            } else {
                Role::Follower
            },
            leader: self.leader.read().clone(),
            lag_changes: if leading {
                0
            } else {
                self.lag_changes.load(Ordering::Acquire)
            },
            lag_seconds: if leading {
                0.0
            } else {
                self.last_read.lock().elapsed().as_secs_f64()
            },
            caught_up: self.is_ready(),
        }
    }

    /// Records the role and lag as metrics.
    pub(crate) fn record_metrics(&self) {
        let status = self.status();
        crate::metrics::record_replica(
            status.role == Role::Leader,
            status.lag_changes,
            status.lag_seconds,
        );
    }

    /// A connection of its own for the lock, which the server drops soon
    /// after the network to this daemon goes silent.
    async fn lock_session(&self) -> Result<PgConnection, StoreError> {
        let mut session = self
            .options
            .clone()
            .application_name(&format!(
                "bitbucket-catalogd leader lock ({})",
                self.identity
            ))
            .connect()
            .await
            .map_err(|source| StoreError::Connect {
                target: self.store.database().to_owned(),
                source,
            })?;
        let idle = LOCK_SESSION_TIMEOUT.as_secs() / 3;
        for setting in [
            format!("SET tcp_keepalives_idle = {idle}"),
            "SET tcp_keepalives_interval = 1".to_owned(),
            "SET tcp_keepalives_count = 3".to_owned(),
            format!(
                "SET tcp_user_timeout = {}",
                LOCK_SESSION_TIMEOUT.as_millis()
            ),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(setting))
                .execute(&mut session)
                .await?;
        }
        Ok(session)
    }

    async fn try_lock(&self, session: &mut PgConnection) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK)
            .fetch_one(session)
            .await?)
    }

    /// Takes the lease over `session` (which holds the lock) and renews it
    /// every second until shutdown; a renewal that fails or comes too late
    /// (this process was frozen) stops this replica: another one leads.
    async fn hold_lease(
        self: &Arc<Self>,
        mut session: PgConnection,
    ) -> Result<LeaderLock, StoreError> {
        sqlx::query(
            "INSERT INTO replica_lease (only_row, identity) VALUES (TRUE, $1)
             ON CONFLICT (only_row) DO UPDATE SET identity = excluded.identity, renewed_at = now()",
        )
        .bind(&self.identity)
        .execute(&mut session)
        .await?;
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut renewed = Instant::now();
            let mut ticks = tokio::time::interval(LEADER_CHECK);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = this.released.cancelled() => {
                        // A clean stop: the next replica need not wait out the lease.
                        let _ = sqlx::query("DELETE FROM replica_lease WHERE identity = $1")
                            .bind(&this.identity)
                            .execute(&mut session)
                            .await;
                        let _ = session.close().await;
                        return;
                    }
                }
                let lapsed = renewed.elapsed() >= LEADER_LEASE;
                let held = !lapsed && this.renew(&mut session).await;
                if held {
                    renewed = Instant::now();
                    continue;
                }
                tracing::error!(
                    identity = this.identity,
                    lapsed,
                    "lost the leader lock or its lease (connection gone, or this process hung); stopping so another replica leads"
                );
                this.leading.store(false, Ordering::Release);
                this.lost.cancel();
                let _ = session.close().await;
                return;
            }
        });
        Ok(LeaderLock(()))
    }

    /// Renews the lease; false when it is gone or the renewal failed.
    async fn renew(&self, session: &mut PgConnection) -> bool {
        let renewal =
            sqlx::query("UPDATE replica_lease SET renewed_at = now() WHERE identity = $1")
                .bind(&self.identity)
                .execute(session);
        matches!(
            tokio::time::timeout(LEADER_CHECK_TIMEOUT, renewal).await,
            Ok(Ok(done)) if done.rows_affected() == 1
        )
    }

    async fn became_leader(&self) -> Result<(), StoreError> {
        self.record_leadership().await?;
        self.start_leading();
        Ok(())
    }

    /// Fences the last leader out: after this it can store nothing. A write
    /// it had in progress holds the record until the server ends that
    /// session (`idle_in_transaction_session_timeout`), so this retries.
    async fn record_leadership(&self) -> Result<(), StoreError> {
        const ATTEMPTS: u32 = 6;
        let mut attempt = 1;
        loop {
            match self.store.record_leader(&self.identity).await {
                Ok(()) => return Ok(()),
                Err(err) if attempt < ATTEMPTS => {
                    tracing::warn!(error = %err, attempt, "cannot record this replica as leader yet; retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// From now on writes are carried out here and reads say so.
    fn start_leading(&self) {
        *self.leader.write() = Some(self.identity.clone());
        self.leading.store(true, Ordering::Release);
        crate::metrics::record_leader_change();
        tracing::info!(identity = self.identity, "this replica leads");
    }

    async fn read_leader(&self) {
        match self.store.leader().await {
            Ok(leader) => *self.leader.write() = leader,
            Err(err) => tracing::warn!(error = %err, "cannot read which replica leads"),
        }
    }

    /// Releases the lease on `shutdown` (the lock session goes with it).
    pub(crate) fn keep_leading(self: &Arc<Self>, _lock: LeaderLock, shutdown: CancellationToken) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            shutdown.cancelled().await;
            this.released.cancel();
        });
    }

    /// Follows the leader's changes into `promotion.catalog` until this
    /// replica takes the lock, then leads.
    pub(crate) fn follow(self: &Arc<Self>, promotion: Promotion, shutdown: CancellationToken) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut listener = this.listen_for_changes().await;
            let mut session: Option<PgConnection> = None;
            let mut ticks = tokio::time::interval(FOLLOW_TICK);
            loop {
                let mut notified = None;
                tokio::select! {
                    _ = ticks.tick() => {}
                    note = async {
                        match listener.as_mut() {
                            Some(l) => l.try_recv().await,
                            None => std::future::pending().await,
                        }
                    } => {
                        if let Ok(Some(note)) = note {
                            notified = note.payload().parse::<u64>().ok();
                        }
                    }
                    () = shutdown.cancelled() => return,
                }
                if let Some(seq) = notified {
                    let served = promotion.catalog.snapshot().last_seq();
                    this.lag_changes
                        .store(seq.saturating_sub(served), Ordering::Release);
                }
                // Failing, the lock is still tried: the leader may be gone
                // with whatever keeps this replica from reading.
                let caught_up = this.catch_up(&promotion).await;
                if let Err(err) = &caught_up {
                    tracing::warn!(error = %err, "cannot read the leader's changes; retrying (not ready meanwhile)");
                }
                // The lock is tried on the tick only, not on every change.
                if notified.is_some() && caught_up.is_ok() {
                    continue;
                }
                if !this.try_take_lock(&mut session).await {
                    continue;
                }
                let Some(conn) = session.take() else { return };
                this.take_over(conn, &promotion, shutdown).await;
                return;
            }
        });
    }

    /// The change notifications of the leader; `None` (polling only) when
    /// the database will not deliver them.
    async fn listen_for_changes(&self) -> Option<PgListener> {
        let listening = async {
            let mut listener = PgListener::connect_with(&self.store.pool()).await?;
            listener.listen(CHANGES_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match listening.await {
            Ok(listener) => Some(listener),
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for changes; polling only");
                None
            }
        }
    }

    /// Tries the leader lock on `session` (opened when missing), ending a
    /// leader whose lease expired first; `true` once this replica holds it.
    async fn try_take_lock(&self, session: &mut Option<PgConnection>) -> bool {
        if session.is_none() {
            *session = self.lock_session().await.ok();
        }
        let Some(conn) = session.as_mut() else {
            return false;
        };
        let mut locked = self.try_lock(conn).await;
        if matches!(locked, Ok(false)) {
            match self
                .store
                .end_expired_leader(LEADER_LOCK, LEADER_LEASE)
                .await
            {
                Ok(true) => locked = self.try_lock(conn).await,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "cannot check the leader's lease; retrying")
                }
            }
        }
        match locked {
            Ok(true) => true,
            Ok(false) => {
                self.read_leader().await;
                false
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot try the leader lock; retrying");
                *session = None;
                false
            }
        }
    }

    /// Leads from `conn`, the session holding the lock; when that fails
    /// this replica stops, so another one leads.
    async fn take_over(
        self: &Arc<Self>,
        conn: PgConnection,
        promotion: &Promotion,
        shutdown: CancellationToken,
    ) {
        let promoted = match self.hold_lease(conn).await {
            Ok(lock) => self.promote(promotion).await.map(|()| lock),
            Err(err) => Err(err),
        };
        match promoted {
            Ok(lock) => self.keep_leading(lock, shutdown),
            // Stopping anyway: the lock goes with the session.
            Err(_) if shutdown.is_cancelled() => {}
            Err(err) => {
                tracing::error!(error = %err, "cannot take over as leader; stopping so another replica leads");
                self.lost.cancel();
            }
        }
    }

    /// Serves every change stored after what is served here.
    async fn catch_up(&self, promotion: &Promotion) -> Result<(), StoreError> {
        let catalog = &promotion.catalog;
        let served = catalog.snapshot().last_seq();
        let mut read = self.store.changes_after(served).await?;
        if read.horizon > served && served > 0 {
            // Removals this replica missed were dropped: read everything
            // and drop what is no longer stored.
            read = self.store.changes_after(0).await?;
            let stored: std::collections::HashSet<_> =
                self.store.entity_keys().await?.into_iter().collect();
            // Numbered at the horizon: a feed cursor from before it resyncs.
            let horizon = read.horizon;
            let gone: Vec<Followed> = catalog
                .keys()
                .into_iter()
                .filter(|k| !stored.contains(k))
                .map(|key| Followed::Remove { key, seq: horizon })
                .collect();
            read.changes.splice(0..0, gone);
        }
        let count = read.changes.len();
        catalog.follow(read.changes, read.last_seq, read.horizon);
        if count > 0 {
            promotion.locations.follow_registered().await?;
        }
        // The leader's runs, for this replica's provider status: with its
        // changes, and every few seconds for runs that changed nothing.
        let reads = self.reads.fetch_add(1, Ordering::AcqRel);
        if count == 0 && reads % RUNS_EVERY != 0 {
            self.mark_read();
            return Ok(());
        }
        for (source, run) in self.store.runs().await? {
            if let Some(runner) = promotion.scheduler.runner(&source) {
                runner.restore_report(run);
            }
        }
        // The leader's open pull-request previews, for the status page.
        promotion.applier.previews().follow().await?;
        self.mark_read();
        Ok(())
    }

    fn mark_read(&self) {
        *self.last_read.lock() = Instant::now();
        self.lag_changes.store(0, Ordering::Release);
        self.caught_up.store(true, Ordering::Release);
    }

    /// Takes over: serves everything the last leader stored, builds the
    /// relation index, and starts the schedules (whose runs continue from
    /// the stored repository state).
    async fn promote(&self, promotion: &Promotion) -> Result<(), StoreError> {
        let started = Instant::now();
        // Recorded first: the last leader can write nothing after this, so
        // the catch-up that follows reads everything it wrote. Writes are
        // taken on only once this replica serves all of it.
        self.record_leadership().await?;
        self.catch_up(promotion).await?;
        // Refs the last leader withheld stay their units' here too.
        promotion
            .catalog
            .restore_withheld(self.store.withheld().await?);
        promotion.locations.follow_registered().await?;
        promotion.applier.settle();
        promotion.applier.previews().load().await;
        self.start_leading();
        promotion.scheduler.lead();
        tracing::info!(
            identity = self.identity,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "took over as leader"
        );
        Ok(())
    }
}

/// `HOSTNAME` (the pod's name on Kubernetes), the process id and the port.
pub(crate) fn identity(port: u16) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    format!("{host}:{port}/{}", std::process::id())
}
