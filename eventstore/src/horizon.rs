//! The gap-safe high-water mark: the highest position below which no event can still appear.
//!
//! Positions come from a sequence, so transactions commit out of position order: a writer can
//! take position 10, stall, and commit after another writer's 11. A relay that published 11
//! and moved on would never publish 10. The relay therefore only reads up to a horizon `L`
//! established like this:
//!
//! 1. read `L`, the sequence's last value;
//! 2. then take a fresh transaction id `B` (`pg_current_xact_id()` in a statement of its own,
//!    which commits at once): ids are handed out in increasing order, so every id assigned
//!    before this moment is below `B`;
//! 3. wait until no transaction with an id up to `B` is still running
//!    (`pg_snapshot_xmin(pg_current_snapshot()) > B`).
//!
//! Why that suffices: the insert trigger forces every writer to take its transaction id
//! *before* its position (see the migration). A transaction holding a position `p <= L` took
//! it before step 1, so it took its id before step 2, so its id is below `B`; after step 3 it
//! has committed or rolled back. Every position up to `L` is therefore settled: visible for
//! good, or a hole that will never fill. Writers are never serialised; the relay only waits
//! for the transactions already in flight, usually not at all.
//!
//! Step 2 must be a real transaction id. `pg_snapshot_xmax` looks like "the next id" but is
//! *latest completed + 1*: a running transaction with a higher id is simply not in the
//! snapshot, so waiting on it lets exactly the late committer through. The torture test in
//! `tests/` caught that. Each round that finds new positions consumes one transaction id;
//! an idle relay consumes none.
//!
//! Step 3 only needs the writers of *this* database. Transaction ids are server-wide, so when
//! the relay may see other sessions' transaction ids (`pg_read_all_stats`, or a superuser) it
//! waits only for running transactions whose backend is in this database (the snapshot's
//! running ids joined with `pg_stat_activity.backend_xid`); a long write in another database of
//! the same server then costs it nothing. Without that privilege it waits for the whole server
//! ([`Scope::Server`]); `relay_lag_seconds` shows such delays.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Whose in-flight transactions the relay waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only this database's (needs to see other sessions' `backend_xid`).
    Database,
    /// Every database's on the server.
    Server,
}

impl Scope {
    /// `Database` when the relay's role may read other sessions' transaction ids.
    pub async fn detect(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let can_see: bool = sqlx::query_scalar(
            "SELECT rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER')
             FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(pool)
        .await?;
        Ok(if can_see {
            Scope::Database
        } else {
            Scope::Server
        })
    }

    /// True when no transaction with an id up to `barrier` is running (in scope).
    async fn settled(self, conn: &mut PgConnection, barrier: i64) -> Result<bool, sqlx::Error> {
        match self {
            Scope::Server => {
                let oldest_running: i64 = sqlx::query_scalar(
                    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                )
                .fetch_one(conn)
                .await?;
                Ok(oldest_running > barrier)
            }
            // Every transaction with an id up to the (finished) barrier is below the
            // snapshot's xmax, so if it still runs it is in the snapshot's running list.
            Scope::Database => {
                sqlx::query_scalar(
                    "SELECT NOT EXISTS (
                     SELECT 1 FROM pg_snapshot_xip(pg_current_snapshot()) AS running(xid)
                     JOIN pg_stat_activity AS a ON a.backend_xid = running.xid::xid
                     WHERE running.xid <= $1::text::xid8 AND a.datname = current_database())",
                )
                .bind(barrier.to_string())
                .fetch_one(conn)
                .await
            }
        }
    }
}

/// Returns the horizon, or `None` if in-flight transactions did not finish within `patience`
/// (the caller tries again on its next round). When nothing was handed out past `after`, the
/// horizon is returned at once without waiting.
pub async fn safe_horizon(
    pool: &PgPool,
    scope: Scope,
    after: i64,
    patience: Duration,
) -> Result<Option<i64>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    // Separate autocommit statements: each is its own transaction, in this order.
    let horizon: i64 = sqlx::query_scalar(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_position_seq",
    )
    .fetch_one(&mut *conn)
    .await?;
    if horizon <= after {
        return Ok(Some(horizon));
    }
    let barrier: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(&mut *conn)
        .await?;
    let deadline = tokio::time::Instant::now() + patience;
    let mut pause = Duration::from_micros(500);
    loop {
        if scope.settled(&mut conn, barrier).await? {
            return Ok(Some(horizon));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The horizon above `after`, waiting as long as writers stay in flight; `waiting` runs after
/// each second spent waiting (to say so, or to show a lock holder is alive).
pub async fn settled(
    pool: &PgPool,
    scope: Scope,
    after: i64,
    mut waiting: impl AsyncFnMut() -> anyhow::Result<()>,
) -> anyhow::Result<i64> {
    loop {
        if let Some(horizon) = safe_horizon(pool, scope, after, Duration::from_secs(1)).await? {
            return Ok(horizon);
        }
        waiting().await?;
    }
}

/// The settled horizon kept current in the background, for live tails: recomputed whenever
/// the store announces new events (`NOTIFY events_appended`, sent while the relay is idle, and
/// `events_published`, sent by the relay per published batch), and at least every second.
#[derive(Clone)]
pub struct Follower {
    pool: PgPool,
    scope: Scope,
    receiver: watch::Receiver<i64>,
}

impl Follower {
    /// Starts following; it stops when `shutdown` is cancelled.
    pub async fn spawn(pool: PgPool, shutdown: CancellationToken) -> Result<Self, sqlx::Error> {
        let scope = Scope::detect(&pool).await?;
        let (sender, receiver) = watch::channel(0);
        let follower = Self {
            pool,
            scope,
            receiver,
        };
        let background = follower.clone();
        tokio::spawn(async move { background.follow(sender, shutdown).await });
        Ok(follower)
    }

    /// The horizon now, computed afresh (a page or an export starts from it). If writers in
    /// flight do not finish within a second, the last horizon the follower proved settled is
    /// used: a little older, never unsafe.
    pub async fn now(&self) -> Result<i64, sqlx::Error> {
        let current = *self.receiver.borrow();
        let settled = safe_horizon(&self.pool, self.scope, current, Duration::from_secs(1)).await?;
        Ok(settled.unwrap_or(current).max(current))
    }

    /// Every horizon the follower proves settled, as it moves.
    pub fn watch(&self) -> watch::Receiver<i64> {
        self.receiver.clone()
    }

    async fn follow(self, sender: watch::Sender<i64>, shutdown: CancellationToken) {
        let mut listener = None;
        loop {
            if listener.is_none() {
                match sqlx::postgres::PgListener::connect_with(&self.pool).await {
                    Ok(mut l) => {
                        match l.listen_all(["events_appended", "events_published"]).await {
                            Ok(()) => listener = Some(l),
                            Err(e) => tracing::warn!(error = %e, "horizon follower cannot listen"),
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "horizon follower cannot listen"),
                }
            }
            let current = *sender.borrow();
            let mut again = Duration::from_secs(1);
            match safe_horizon(&self.pool, self.scope, current, again).await {
                Ok(Some(horizon)) if horizon > current => {
                    sender.send_replace(horizon);
                }
                Ok(Some(_)) => {}
                // Writers still in flight: look again shortly.
                Ok(None) => again = Duration::from_millis(10),
                Err(e) => {
                    tracing::warn!(error = %e, "horizon not updated");
                    listener = None;
                }
            }
            let notified = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.map(drop),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(again) => {}
                received = notified => match received {
                    // One look serves every notification received so far.
                    Ok(()) => while listener.as_mut().and_then(|l| l.next_buffered()).is_some() {},
                    Err(_) => listener = None,
                },
            }
        }
    }
}
