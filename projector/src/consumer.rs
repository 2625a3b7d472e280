//! The projector's durable pull consumer on `EVENTS`.
//!
//! Each event is applied to the read models and acknowledged only after MongoDB took it (ack
//! after the effect is durable). Projections are idempotent and version-guarded: a redelivered
//! event changes nothing, and an event that arrives before its predecessor (several projector
//! instances share the consumer) is answered "not yet" and redelivered shortly, so each
//! aggregate's events apply in version order.
//!
//! Failures are told apart. MongoDB being away is not the event's fault: the batch is retried
//! in place (backing off to 5 s, the messages kept with progress acknowledgements so their
//! delivery count does not grow) for as long as it takes, never dead-lettered. An event that fails for its own
//! sake (it does not decode, a projection rejects it) goes to `DLQ` after [`MAX_ATTEMPTS`]; an
//! event whose predecessor has not arrived waits up to [`MAX_WAITS`] redeliveries (minutes)
//! before it is parked, so a short outage never starts a cascade of dead letters.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use async_nats::jetstream::{self, AckKind, consumer::pull};

use mongodb::Database;
use shared::{EventEnvelope, nats::Prefix};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::projections::{self, Outcome};

/// The durable consumer's default name (`PROJECTOR_CONSUMER`).
pub const CONSUMER: &str = "projector";
pub const MAX_ATTEMPTS: i64 = 10;
pub const MAX_WAITS: i64 = 200;
/// Events applied together, at most.
pub const MAX_BATCH: usize = 500;

pub struct Projector {
    pub js: jetstream::Context,
    pub prefix: Prefix,
    pub db: Database,
    /// The durable consumer's name; one per read-model database.
    pub consumer: String,
    /// Told after each acknowledgement, so the checkpoint follows at once.
    pub acked: Arc<Notify>,
    /// Cancelled when the service stops (a batch retrying through a store outage gives up).
    pub stopping: CancellationToken,
    pub rebuild: RebuildWatch,
}

/// Where batches go, looked up at most once a second: the collections the catalog names and,
/// while a rebuild is building, the other copy of each (its new collections before the switch,
/// the replaced ones for a few seconds after it, while readers move over).
pub struct RebuildWatch {
    db: Database,
    seen: std::sync::Mutex<Option<(std::time::Instant, Targets)>>,
}

/// Where one batch is written.
#[derive(Clone)]
pub struct Targets {
    /// What the catalog names: the outcomes that count.
    pub live: projections::Store,
    /// The rebuild's other copy, and whether it is the rebuild's new one (not switched in yet).
    pub also: Option<(projections::Store, bool)>,
}

/// How long a projector may go on without noticing a rebuild's phase change; rebuilds wait
/// longer than this (plus a batch) before relying on it.
pub const REBUILD_WATCH_TTL: Duration = Duration::from_secs(1);

impl RebuildWatch {
    pub fn new(db: Database) -> Self {
        Self {
            db,
            seen: std::sync::Mutex::new(None),
        }
    }

    /// Where batches go now; an error (the store is away) is not remembered: the batch fails
    /// and is retried, so no batch skips a rebuild's copy unknowingly.
    pub async fn targets(&self) -> anyhow::Result<Targets> {
        let cached = self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // While a rebuild builds, every batch looks afresh: a batch after its switch must
        // count its outcomes in the switched-in copy.
        if let Some((at, targets)) = cached {
            if at.elapsed() < REBUILD_WATCH_TTL && targets.also.is_none() {
                return Ok(targets);
            }
        }
        let live = projections::Store::current(self.db.clone()).await?;
        // A rebuild silent for a minute is dead: its copies are not written any more.
        let alive_since = mongodb::bson::DateTime::from_millis(
            mongodb::bson::DateTime::now().timestamp_millis()
                - shared::read_model::REBUILD_STALE_SECS * 1000,
        );
        let lock = self
            .db
            .collection::<mongodb::bson::Document>(shared::read_model::REBUILDS)
            .find_one(mongodb::bson::doc! {
                "_id": shared::read_model::REBUILD_LOCK_ID,
                "phase": shared::read_model::REBUILD_BUILDING,
                "alive_at": { "$gt": alive_since },
            })
            .await?;
        let also = lock.and_then(|lock| {
            let names = |field| {
                lock.get_document(field)
                    .ok()
                    .map(shared::read_model::Collections::from_document)
            };
            let (previous, new) = (names("previous")?, names("shadow")?);
            // Per collection: the new copy until it is switched in, the replaced one after.
            let mut other = shared::read_model::Collections::default();
            let mut switched = false;
            for base in shared::read_model::REBUILT {
                let in_place = live.names().name(base) == new.name(base);
                switched |= in_place;
                let name = if in_place {
                    previous.name(base)
                } else {
                    new.name(base)
                };
                other = other.with(base, name);
            }
            Some((projections::Store::new(self.db.clone(), other), !switched))
        });
        let targets = Targets { live, also };
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), targets.clone()));
        Ok(targets)
    }

    /// Calls off the rebuild in progress: it stops before switching anything in.
    async fn abandon(&self, why: &str) -> anyhow::Result<()> {
        tracing::error!(
            error = why,
            "cannot write a rebuild's shadow models; abandoning it"
        );
        self.db
            .collection::<mongodb::bson::Document>(shared::read_model::REBUILDS)
            .update_one(
                mongodb::bson::doc! {
                    "_id": shared::read_model::REBUILD_LOCK_ID,
                    "phase": shared::read_model::REBUILD_BUILDING,
                },
                mongodb::bson::doc! { "$set": {
                    "phase": shared::read_model::REBUILD_ABANDONED, "abandoned_because": why,
                } },
            )
            .await?;
        // Looked up afresh before the next batch.
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }
}

impl Projector {
    /// Consumes until `shutdown`, reconnecting with backoff on failures.
    pub async fn run(self, shutdown: CancellationToken) {
        shared::service::keep_running("projector consumer", &shutdown, || self.consume(&shutdown))
            .await;
    }

    async fn consume(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        shared::nats::ensure_streams(&self.js, &self.prefix).await?;
        projections::ensure_indexes(&projections::Store::current(self.db.clone()).await?).await?;
        let stream = self.js.get_stream(self.prefix.events_stream()).await?;
        let consumer = stream
            .get_or_create_consumer(
                &self.consumer,
                pull::Config {
                    durable_name: Some(self.consumer.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 1000,
                    ..Default::default()
                },
            )
            .await
            .context("creating the projector consumer")?;
        let mut messages = consumer.messages().await?;
        // Whatever else has arrived joins the batch; nothing waits for more.
        while let Some(batch) =
            shared::consumer::next_batch(&mut messages, MAX_BATCH, shutdown, "the consumer").await?
        {
            self.handle(batch).await?;
        }
        Ok(())
    }

    /// Applies a batch and answers each message: ack what is done, redeliver what must wait or
    /// failed, park what failed too often.
    async fn handle(&self, batch: Vec<jetstream::Message>) -> anyhow::Result<()> {
        let mut readable = Vec::with_capacity(batch.len());
        let mut envelopes = Vec::with_capacity(batch.len());
        for message in batch {
            if shared::nats::headers::requeued_for_another(
                message.headers.as_ref(),
                Some(&self.consumer),
            ) {
                acknowledge(&message, AckKind::Ack).await?;
                continue;
            }
            match serde_json::from_slice::<EventEnvelope>(&message.payload) {
                Ok(envelope) => {
                    envelopes.push(envelope);
                    readable.push(message);
                }
                Err(e) => {
                    // No retry can make it readable.
                    self.dead_letter(&message, &format!("not an event envelope: {e}"))
                        .await?;
                    acknowledge(&message, AckKind::Term).await?;
                }
            }
        }
        metrics::histogram!("projector_batch_size").record(envelopes.len() as f64);
        // The read store being away is not the events' fault: retry the batch in place for as
        // long as it takes, keeping the messages ours (a redelivery would count against their
        // retry budget), never parking them.
        let mut wait = Duration::from_millis(500);
        let outcomes = loop {
            let applied = async {
                let targets = self.rebuild.targets().await?;
                // While a rebuild builds, its other copy gets every batch too (first, so an
                // event acknowledged here is in both). Outcomes there do not matter: the
                // rebuild replays what is not in place.
                if let Some((other, unswitched)) = &targets.also {
                    if let Err(e) = projections::apply_batch(other, &envelopes).await {
                        if *unswitched {
                            // The live models come first: the rebuild is called off instead
                            // (it must not switch in copies that lack this batch).
                            self.rebuild.abandon(&format!("{e:#}")).await?;
                        } else {
                            // The replaced copy, kept current only while readers move over.
                            tracing::warn!(
                                error = format!("{e:#}"),
                                "cannot write a replaced read model"
                            );
                        }
                    }
                }
                projections::apply_batch(&targets.live, &envelopes).await
            };
            match applied.await {
                Ok(outcomes) => break outcomes,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "the read store failed; retrying the batch"
                    );
                    for message in &readable {
                        acknowledge(message, AckKind::Progress).await?;
                    }
                    if self.stopping.is_cancelled() {
                        for message in &readable {
                            acknowledge(message, AckKind::Nak(None)).await?;
                        }
                        return Ok(());
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.stopping.cancelled() => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        };
        // The batch's last acknowledgement waits for the broker's confirmation: acknowledgements
        // are taken in order, so when the checkpoint task is nudged the ack floor has moved
        // (it would otherwise see them in flight and look again only 25 ms later).
        let last_done = outcomes
            .iter()
            .rposition(|outcome| matches!(outcome, Outcome::Done));
        let mut applied = 0;
        for (n, ((message, envelope), outcome)) in
            readable.iter().zip(&envelopes).zip(outcomes).enumerate()
        {
            let attempts = message.info().map(|i| i.delivered).unwrap_or(1);
            let answer = match outcome {
                Outcome::Done => {
                    applied += 1;
                    metrics::gauge!("projector_applied_position").set(envelope.position as f64);
                    metrics::gauge!("projector_model_position", "model" => projections::model_of(&envelope.aggregate_type))
                        .set(envelope.position as f64);
                    AckKind::Ack
                }
                Outcome::NotYet if attempts < MAX_WAITS => AckKind::Nak(Some(
                    Duration::from_millis((50 * attempts.unsigned_abs()).min(2000)),
                )),
                Outcome::NotYet => {
                    self.dead_letter(
                        message,
                        "an earlier version of this aggregate never arrived",
                    )
                    .await?;
                    AckKind::Term
                }
                Outcome::Failed(e) if attempts < MAX_ATTEMPTS => {
                    tracing::warn!(error = format!("{e:#}"), attempts, subject = %message.subject, "projecting an event failed; will retry");
                    AckKind::Nak(Some(Duration::from_millis(
                        200 * attempts.unsigned_abs().min(25),
                    )))
                }
                Outcome::Failed(e) => {
                    self.dead_letter(message, &format!("{e:#}")).await?;
                    AckKind::Term
                }
            };
            if Some(n) == last_done {
                message
                    .double_ack()
                    .await
                    .map_err(|e| anyhow::anyhow!("acknowledging: {e}"))?;
            } else {
                acknowledge(message, answer).await?;
            }
        }
        metrics::counter!("projector_events_applied_total").increment(applied);
        self.acked.notify_one();
        Ok(())
    }

    /// Parks a message in `DLQ` (awaiting the publish ack) with the error in a header.
    async fn dead_letter(&self, message: &jetstream::Message, error: &str) -> anyhow::Result<()> {
        shared::nats::dead_letter(
            &self.js,
            &self.prefix,
            shared::nats::DeadLetter {
                consumer: &self.consumer,
                original_subject: &message.subject,
                original: message.headers.as_ref(),
                payload: message.payload.clone(),
                error,
                extra: &[],
            },
        )
        .await
    }
}

async fn acknowledge(message: &jetstream::Message, kind: AckKind) -> anyhow::Result<()> {
    message
        .ack_with(kind)
        .await
        .map_err(|e| anyhow::anyhow!("acknowledging: {e}"))
}
