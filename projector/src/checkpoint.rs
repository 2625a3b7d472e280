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
        loop {
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
        metrics::gauge!("projector_position").set(seen.position as f64);
        metrics::gauge!("projector_lag_events").set(behind as f64);
        metrics::gauge!("projector_lag_seconds").set(lag_seconds);
        Ok(info.num_ack_pending)
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
