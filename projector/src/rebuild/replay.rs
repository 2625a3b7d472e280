//! Reading the event store and applying it to a set of read model collections, with the
//! projector's own batch code, while keeping the lock alive and reporting progress.

use anyhow::Context as _;
use eventstore::horizon::{self, Scope};
use shared::EventEnvelope;
use sqlx::PgPool;

use super::{Progress, lock::Lock};
use crate::projections::{self, Outcome, Store};

/// Events read and applied at a time.
const CHUNK: i64 = 1000;

/// The reason given for an event still "not yet" after its retries: it follows one that
/// could not be applied.
pub(super) const NOT_YET: &str = "an earlier version of this aggregate could not be applied";

/// The event store as one rebuild reads it: what it has applied, in the phase in hand, is
/// counted and reported; every chunk shows the lock holder is alive.
pub(super) struct Events<'a> {
    pool: &'a PgPool,
    scope: Scope,
    lock: &'a Lock,
    progress: &'a mut dyn Progress,
    /// Applied in the phase in hand.
    done: u64,
}

impl<'a> Events<'a> {
    pub(super) async fn new(
        pool: &'a PgPool,
        lock: &'a Lock,
        progress: &'a mut dyn Progress,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            pool,
            scope: Scope::detect(pool).await?,
            lock,
            progress,
            done: 0,
        })
    }

    /// A new phase of `total` events.
    pub(super) fn start(&mut self, phase: &str, total: u64) {
        self.done = 0;
        self.progress.start(phase, "events", total);
    }

    /// Ends the phase; the events applied in it.
    pub(super) fn finish(&mut self) -> u64 {
        self.progress.finish();
        self.done
    }

    /// The settled horizon above `after`: no position at or below it can still appear.
    pub(super) async fn horizon(&self, after: i64) -> anyhow::Result<i64> {
        // A long transaction elsewhere holds the horizon back: show we are alive meanwhile.
        horizon::settled(self.pool, self.scope, after, async || {
            self.lock.heartbeat().await
        })
        .await
    }

    /// The events in `(after, through]`.
    pub(super) async fn count_between(&self, after: i64, through: i64) -> anyhow::Result<u64> {
        let filter = eventstore::EventFilter {
            through: Some(through),
            ..Default::default()
        };
        let n = eventstore::count_all(self.pool, after, &filter)
            .await
            .context("counting events")?;
        Ok(n.unsigned_abs())
    }

    /// The phase grows by the events in `(after, through]`, still to be applied.
    pub(super) async fn expect(&mut self, after: i64, through: i64) -> anyhow::Result<()> {
        let more = self.count_between(after, through).await?;
        self.progress.extend_to(self.done + more);
        Ok(())
    }

    /// Applies every event up to `through` to the empty `store`, an aggregate at a time (each
    /// document is folded completely and written once; products come before the reviews
    /// whose statistics they carry).
    pub(super) async fn build(
        &mut self,
        store: &Store,
        through: i64,
        failed: &mut Vec<(i64, String)>,
    ) -> anyhow::Result<()> {
        let mut after: Option<eventstore::AggregateKey> = None;
        loop {
            let chunk = eventstore::read_by_aggregate(self.pool, after.as_ref(), through, CHUNK)
                .await
                .context("reading the event store")?;
            let Some(last) = chunk.last() else {
                return Ok(());
            };
            after = Some(eventstore::AggregateKey {
                aggregate_type: last.aggregate_type.clone(),
                aggregate_id: last.aggregate_id,
                aggregate_version: last.aggregate_version,
            });
            self.apply(store, &chunk, failed).await?;
        }
    }

    /// Applies the events in `(after, through]` to `store`, in position order; returns the
    /// last position read.
    pub(super) async fn replay(
        &mut self,
        store: &Store,
        mut after: i64,
        through: i64,
        failed: &mut Vec<(i64, String)>,
    ) -> anyhow::Result<i64> {
        while after < through {
            let chunk = eventstore::read_range(self.pool, after, through, CHUNK)
                .await
                .context("reading the event store")?;
            let Some(last) = chunk.last().map(|e| e.position) else {
                return Ok(through);
            };
            self.apply(store, &chunk, failed).await?;
            after = last;
        }
        Ok(after.max(through))
    }

    async fn apply(
        &mut self,
        store: &Store,
        chunk: &[EventEnvelope],
        failed: &mut Vec<(i64, String)>,
    ) -> anyhow::Result<()> {
        apply(store, chunk, failed).await?;
        self.done += chunk.len() as u64;
        self.progress.advance(chunk.len() as u64);
        self.lock.heartbeat().await
    }
}

async fn apply(
    store: &Store,
    chunk: &[EventEnvelope],
    failed: &mut Vec<(i64, String)>,
) -> anyhow::Result<()> {
    let mut pending: Vec<EventEnvelope> = chunk.to_vec();
    // "Not yet" here means a projector wrote an aggregate's document into the shadow at the
    // same moment (it writes every batch there too): folding again on what is there now
    // applies the rest. What is still "not yet" after that follows an event that failed.
    for round in 0..3 {
        let outcomes = projections::apply_batch(store, &pending)
            .await
            .context("writing the read models")?;
        let mut again = Vec::new();
        for (envelope, outcome) in pending.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Done => {}
                Outcome::NotYet if round < 2 => again.push(envelope),
                Outcome::NotYet => failed.push((envelope.position, NOT_YET.into())),
                Outcome::Failed(e) => failed.push((envelope.position, format!("{e:#}"))),
            }
        }
        if again.is_empty() {
            break;
        }
        pending = again;
    }
    Ok(())
}
