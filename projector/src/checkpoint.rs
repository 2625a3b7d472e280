//! The applied position, as a low-water mark: the position of the consumer's ack floor, the
//! last stream message at or below which everything is acknowledged. JetStream keeps the ack
//! floor across every instance sharing the consumer, so the mark is right with several
//! projectors and with events parked in `DLQ` (terminated counts as done). Readers compare it
//! with `X-Min-Position` for read-your-writes; `/metrics` shows it with the lag.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use async_nats::jetstream::{
    self,
    consumer::{PullConsumer, pull},
    stream::Stream,
};
use mongodb::{Database, bson::doc};
use shared::{nats::Prefix, read_model};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub struct Checkpointer {
    pub js: jetstream::Context,
    /// Announces each recorded position on [`Prefix::applied_subject`].
    pub nats: async_nats::Client,
    pub prefix: Prefix,
    pub db: Database,
    pub consumer: String,
    /// Woken after each acknowledgement.
    pub nudge: Arc<Notify>,
}

#[derive(Default)]
struct Seen {
    floor: u64,
    position: i64,
}

impl Checkpointer {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut seen = Seen::default();
        let mut wait = Duration::from_secs(1);
        let mut handles = None;
        let mut depths = DlqDepths::default();
        // The series exists from the start; measured within a few seconds.
        metrics::gauge!("dlq_depth", "consumer" => self.consumer.clone()).set(0.0);
        let mut last_depth = tokio::time::Instant::now() - DLQ_DEPTH_EVERY;
        loop {
            if last_depth.elapsed() >= DLQ_DEPTH_EVERY {
                last_depth = tokio::time::Instant::now();
                if let Err(e) = depths.measure(&self.js, &self.prefix, &self.consumer).await {
                    tracing::debug!(error = format!("{e:#}"), "DLQ depth not measured");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.nudge.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            wait = match self.tick(&mut handles, &mut seen).await {
                // Acknowledgements are in flight: look again soon.
                Ok(in_flight) if in_flight > 0 => Duration::from_millis(25),
                Ok(_) => Duration::from_secs(1),
                Err(e) => {
                    // The stream or consumer may have been recreated: look them up again.
                    handles = None;
                    tracing::debug!(error = format!("{e:#}"), "checkpoint not updated");
                    Duration::from_secs(1)
                }
            };
        }
    }

    /// Records the ack floor's position if it moved; returns the messages delivered but not
    /// yet acknowledged.
    async fn tick(
        &self,
        handles: &mut Option<(Stream, PullConsumer)>,
        seen: &mut Seen,
    ) -> anyhow::Result<usize> {
        if handles.is_none() {
            let stream = self.js.get_stream(self.prefix.events_stream()).await?;
            let consumer = stream
                .get_consumer::<pull::Config>(&self.consumer)
                .await
                .map_err(|e| anyhow::anyhow!("finding the consumer: {e}"))?;
            *handles = Some((stream, consumer));
        }
        let Some((stream, consumer)) = handles.as_mut() else {
            return Ok(0);
        };
        let info = consumer.info().await?.clone();
        let floor = info.ack_floor.stream_sequence;
        if floor > seen.floor {
            // A message that is not an event (it was parked) moves the floor, not the position.
            let position = position_of(stream, floor).await?.unwrap_or(seen.position);
            self.db
                .collection::<mongodb::bson::Document>(read_model::CHECKPOINTS)
                .update_one(
                    doc! { "_id": read_model::CHECKPOINT_ID },
                    doc! { "$max": { "position": position, "stream_sequence": floor as i64 } },
                )
                .upsert(true)
                .await
                .context("recording the checkpoint")?;
            *seen = Seen { floor, position };
            // Readers waiting for a position learn it now instead of at their next poll; a
            // lost announcement only costs them that poll.
            let announced = self
                .nats
                .publish(self.prefix.applied_subject(), position.to_string().into())
                .await;
            if let Err(e) = announced {
                tracing::debug!(error = %e, "applied position not announced");
            }
        }
        let behind = info.num_pending + info.num_ack_pending as u64;
        let lag_seconds = if behind > 0 {
            stream
                .get_raw_message(floor + 1)
                .await
                .map(|m| {
                    (time::OffsetDateTime::now_utc() - m.time)
                        .as_seconds_f64()
                        .max(0.0)
                })
                .unwrap_or(0.0)
        } else {
            0.0
        };
        metrics::gauge!("nats_consumer_pending", "consumer" => self.consumer.clone())
            .set(info.num_pending as f64);
        metrics::gauge!("nats_consumer_ack_pending", "consumer" => self.consumer.clone())
            .set(info.num_ack_pending as f64);
        metrics::gauge!("projector_position").set(seen.position as f64);
        metrics::gauge!("projector_lag_events").set(behind as f64);
        metrics::gauge!("projector_lag_seconds").set(lag_seconds);
        Ok(info.num_ack_pending)
    }
}

const DLQ_DEPTH_EVERY: Duration = Duration::from_secs(5);

/// `dlq_depth{consumer}`: messages parked in `DLQ` per consumer, for every consumer (the
/// notifier's too), measured from the stream's per-subject counts.
#[derive(Default)]
struct DlqDepths {
    seen: std::collections::BTreeSet<String>,
}

impl DlqDepths {
    async fn measure(
        &mut self,
        js: &jetstream::Context,
        prefix: &Prefix,
        own: &str,
    ) -> anyhow::Result<()> {
        use futures::TryStreamExt as _;

        let stream = js.get_stream(prefix.dlq_stream()).await?;
        let base = prefix.subject("dlq.");
        let mut depths: std::collections::BTreeMap<String, u64> =
            [(own.to_owned(), 0)].into_iter().collect();
        let mut subjects = stream.info_with_subjects(prefix.subject("dlq.>")).await?;
        while let Some((subject, count)) = subjects.try_next().await? {
            let consumer = subject
                .strip_prefix(&base)
                .and_then(|rest| rest.split('.').next())
                .unwrap_or("unknown");
            *depths.entry(consumer.to_owned()).or_insert(0) += count as u64;
        }
        for gone in self.seen.iter().filter(|c| !depths.contains_key(*c)) {
            metrics::gauge!("dlq_depth", "consumer" => gone.clone()).set(0.0);
        }
        for (consumer, depth) in &depths {
            metrics::gauge!("dlq_depth", "consumer" => consumer.clone()).set(*depth as f64);
        }
        self.seen = depths.into_keys().collect();
        Ok(())
    }
}

/// The event position a stream message carries in its `Event-Position` header.
async fn position_of(stream: &Stream, sequence: u64) -> anyhow::Result<Option<i64>> {
    let message = stream
        .get_raw_message(sequence)
        .await
        .with_context(|| format!("reading stream message {sequence}"))?;
    Ok(message
        .headers
        .get(shared::nats::headers::EVENT_POSITION)
        .and_then(|v| v.as_str().parse().ok()))
}
