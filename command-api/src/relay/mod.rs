//! The outbox relay: every committed event reaches the JetStream stream `EVENTS`, in position
//! order, exactly once in the stream, however the relay, NATS or PostgreSQL fail.
//!
//! - **No skipped events**: the relay reads only up to a gap-safe high-water mark
//!   ([`eventstore::horizon`]), so an event whose transaction commits late is never passed over.
//! - **Order and no duplicates in the stream**: the broker checks each publish against the
//!   expected last stream sequence ([`publisher`]).
//! - **Crash and outage**: progress is the stream's tail, re-read after every failure; failures
//!   are retried with capped exponential backoff. `relay_progress` in PostgreSQL mirrors it for
//!   lag reports and as a fallback if the stream's tail was purged.
//! - **One relay at a time**: each command-api instance runs a relay; they elect a leader with a
//!   session advisory lock on a dedicated connection. Standbys take over when it drops.
//! - **Latency**: while it waits, woken by `NOTIFY events_appended` from the insert trigger;
//!   while it works, appends notify nobody (a NOTIFY serialises commits cluster-wide), and it
//!   looks at the horizon again before it waits. A poll is the fallback (a lost notification
//!   costs at most one poll interval).

mod publisher;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream;
use chrono::Utc;
use shared::nats::Prefix;
use sqlx::{Connection, PgConnection, PgPool, postgres::PgListener};
use tokio_util::sync::CancellationToken;

use eventstore::{horizon, read_range};
pub use horizon::Scope;
use publisher::Publisher;

/// Key of the advisory lock that elects the leading relay (any constant; "relay" in ASCII).
const LEADER_LOCK: i64 = 0x72_656c_6179;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub batch_size: i64,
    pub poll_interval: Duration,
    pub max_backoff: Duration,
    /// Whose in-flight transactions to wait for; `None` detects it from the role's privileges.
    pub wait_scope: Option<Scope>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
            wait_scope: None,
        }
    }
}

pub struct Relay {
    pool: PgPool,
    js: jetstream::Context,
    prefix: Prefix,
    config: RelayConfig,
}

impl Relay {
    pub fn new(pool: PgPool, js: jetstream::Context, prefix: Prefix, config: RelayConfig) -> Self {
        Self {
            pool,
            js,
            prefix,
            config,
        }
    }

    /// Runs until `shutdown`; as leader it then publishes what is settled by then (what the
    /// requests finished before shutdown appended) before it returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let backoff = shared::service::Backoff {
            first: self.config.poll_interval.min(Duration::from_millis(100)),
            max: self.config.max_backoff,
        };
        shared::service::keep_running_with("outbox relay", &shutdown, backoff, || async {
            let outcome = self.lead(&shutdown).await;
            if outcome.is_err() {
                metrics::counter!("relay_failures_total").increment(1);
                // Keep the lag figures moving while NATS or the database is away.
                if let Ok(position) = self.stored_progress().await {
                    let _ = self.report_lag(position).await;
                }
            }
            outcome
        })
        .await;
    }

    /// Becomes leader, then publishes until shutdown (`Ok`) or a failure (`Err`).
    async fn lead(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let Some(mut leader_conn) = self.become_leader(shutdown).await? else {
            return Ok(());
        };
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .context("LISTEN")?;
        listener
            .listen("events_appended")
            .await
            .context("LISTEN events_appended")?;

        shared::nats::ensure_streams(&self.js, &self.prefix).await?;
        let stored = self.stored_progress().await?;
        let mut publisher = Publisher::resync(self.js.clone(), self.prefix.clone(), stored).await?;
        // Everything up to `cursor` is in the stream or a hole that will never fill.
        let mut cursor = publisher.last_position();
        let scope = match self.config.wait_scope {
            Some(scope) => scope,
            None => Scope::detect(&self.pool).await?,
        };
        tracing::info!(position = cursor, ?scope, "outbox relay leading");

        // The highest horizon proven settled; a backlog below it is drained without waiting
        // for in-flight writers again.
        let mut settled = cursor;
        let batch_size = self.config.batch_size.max(1);
        let mut last_purge = Instant::now();
        // Once shutdown began: whether a horizon has been taken since (it holds everything the
        // finished requests appended).
        let mut final_horizon = false;
        // Whether appends wake us (`relay_wake.idle`); a previous leader may have left either.
        let mut idle = false;
        loop {
            let stopping = shutdown.is_cancelled();
            if settled <= cursor || (stopping && !final_horizon) {
                let patience = Duration::from_secs(1);
                if let Some(h) = horizon::safe_horizon(&self.pool, scope, cursor, patience).await? {
                    settled = settled.max(h);
                }
                final_horizon |= stopping;
            }
            let mut caught_up = true;
            if settled > cursor {
                let batch = read_range(&self.pool, cursor, settled, batch_size).await?;
                let full = i64::try_from(batch.len()).unwrap_or(i64::MAX) >= batch_size;
                let published = publisher.publish(&batch).await;
                let acked = batch
                    .iter()
                    .filter(|e| e.position <= publisher.last_position())
                    .count();
                self.report_progress(publisher.last_position(), acked)
                    .await?;
                published?;
                cursor = match batch.last() {
                    Some(last) if full => last.position,
                    _ => settled,
                };
                caught_up = !full;
            }
            if last_purge.elapsed() > Duration::from_secs(3600) {
                last_purge = Instant::now();
                let mut conn = self.pool.acquire().await?;
                eventstore::idempotency::purge_expired(&mut conn).await?;
            }
            self.report_lag(cursor).await?;
            if final_horizon && caught_up && settled <= cursor {
                // Drained: everything settled when shutdown began is published.
                return Ok(());
            }
            if caught_up && !shutdown.is_cancelled() {
                if !idle {
                    // From now on appends wake us. Look at the horizon once more before
                    // waiting: a writer that saw us busy already holds its xid, and the
                    // horizon waits for it (migrations/0004_relay_wake.sql).
                    eventstore::status::announce_idle(&mut leader_conn, true)
                        .await
                        .context("the leader lock connection is gone")?;
                    idle = true;
                    continue;
                }
                tokio::select! {
                    // Look at the horizon once more, publish what it holds, then stop.
                    _ = shutdown.cancelled() => {}
                    notification = listener.recv() => {
                        notification.context("LISTEN")?;
                        // One look serves every append that notified so far.
                        while listener.next_buffered().is_some() {}
                        // Busy: appends stop notifying until we wait again.
                        eventstore::status::announce_idle(&mut leader_conn, false)
                            .await
                            .context("the leader lock connection is gone")?;
                        idle = false;
                    }
                    _ = tokio::time::sleep(self.config.poll_interval) => {
                        sqlx::query("SELECT 1").execute(&mut leader_conn).await
                            .context("the leader lock connection is gone")?;
                    }
                }
            }
        }
    }

    /// Takes the leader lock on a connection of its own (closing it releases the lock), or
    /// waits as a standby. `None` on shutdown.
    async fn become_leader(
        &self,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<PgConnection>> {
        let options = self.pool.connect_options();
        let mut conn = PgConnection::connect_with(&options)
            .await
            .context("leader connection")?;
        loop {
            let leading: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(LEADER_LOCK)
                .fetch_one(&mut conn)
                .await?;
            if leading {
                return Ok(Some(conn));
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn stored_progress(&self) -> anyhow::Result<i64> {
        Ok(eventstore::status::published_position(&self.pool).await?)
    }

    async fn report_progress(&self, position: i64, published: usize) -> anyhow::Result<()> {
        metrics::counter!("relay_events_published_total").increment(published as u64);
        metrics::gauge!("relay_published_position").set(position as f64);
        eventstore::status::record_published(&self.pool, position).await?;
        Ok(())
    }

    /// Lag in events (positions handed out but not yet published) and in seconds (age of the
    /// oldest unpublished event).
    async fn report_lag(&self, cursor: i64) -> anyhow::Result<()> {
        let (last, oldest) = eventstore::status::lag(&self.pool, cursor).await?;
        let seconds = oldest.map_or(0.0, |t| {
            (Utc::now() - t).num_milliseconds().max(0) as f64 / 1e3
        });
        metrics::gauge!("relay_lag_events").set((last - cursor).max(0) as f64);
        metrics::gauge!("relay_lag_seconds").set(seconds);
        Ok(())
    }
}
