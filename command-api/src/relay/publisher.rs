//! Publishing to the `EVENTS` stream with the broker enforcing the order.
//!
//! Every publish carries `Nats-Expected-Last-Sequence`: the stream sequence the relay believes
//! is last. JetStream stores the message only if that holds, so a retry after a lost ack, a
//! second relay that wrongly believes it leads, or a pipelined message after a failed one can
//! never reorder or duplicate the stream. On any failure the publisher re-reads the stream's
//! tail (the last message's `Event-Position` header) and continues after it: the stream itself
//! is the relay's progress. `Nats-Msg-Id` = event id adds the broker's own dedupe on top.

use anyhow::Context as _;
use async_nats::jetstream::{self, context::Publish, stream::RawMessageErrorKind};
use shared::{EventEnvelope, nats::Prefix, nats::headers};

pub struct Publisher {
    js: jetstream::Context,
    prefix: Prefix,
    last_sequence: u64,
    last_position: i64,
}

/// How far back to look for the relay's own last message when something else published into
/// the stream after it.
const RESYNC_SCAN: u64 = 1000;

/// The position of the newest message in the stream that the relay published (it carries
/// `Event-Position`), scanning back past messages others put there. `None` when the stream is
/// empty: the relay then starts from the beginning of the store.
async fn last_relayed_position(
    stream: &jetstream::stream::Stream,
    last_sequence: u64,
) -> anyhow::Result<Option<i64>> {
    if last_sequence == 0 {
        return Ok(Some(0));
    }
    let oldest = last_sequence.saturating_sub(RESYNC_SCAN).max(1);
    for sequence in (oldest..=last_sequence).rev() {
        match stream.get_raw_message(sequence).await {
            Ok(message) => {
                let position = message
                    .headers
                    .get(headers::EVENT_POSITION)
                    .and_then(|v| v.as_str().parse().ok());
                if position.is_some() {
                    return Ok(position);
                }
            }
            // Deleted or purged: look further back. Any other failure (a timeout, a leader
            // election) must not be mistaken for "not ours", or events would be sent twice.
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => {}
            Err(e) => return Err(anyhow::Error::from(e).context("reading the stream's tail")),
        }
    }
    Ok(None)
}

impl Publisher {
    /// Reads where the stream ends. `fallback` (the relay's stored progress) is used when no
    /// message of the relay's can be found at the tail (purged, or buried under foreign ones).
    pub async fn resync(
        js: jetstream::Context,
        prefix: Prefix,
        fallback: i64,
    ) -> anyhow::Result<Self> {
        let name = prefix.events_stream();
        let mut stream = js
            .get_stream(&name)
            .await
            .with_context(|| format!("stream {name}"))?;
        let last_sequence = stream
            .info()
            .await
            .context("stream info")?
            .state
            .last_sequence;
        let last_position = last_relayed_position(&stream, last_sequence)
            .await?
            .unwrap_or(fallback);
        Ok(Self {
            js,
            prefix,
            last_sequence,
            last_position,
        })
    }

    /// The position of the last event known to be in the stream.
    pub fn last_position(&self) -> i64 {
        self.last_position
    }

    /// Publishes `events` (in position order) pipelined, then awaits every ack in order.
    /// On error, the events acknowledged before it are in the stream and `last_position` says
    /// how far; the caller resyncs before trying again.
    pub async fn publish(&mut self, events: &[EventEnvelope]) -> anyhow::Result<()> {
        let mut acks = Vec::with_capacity(events.len());
        for (offset, event) in (0u64..).zip(events) {
            let subject = self.prefix.event_subject(
                &event.aggregate_type,
                &event.aggregate_id.to_string(),
                &event.event_type,
            );
            let payload = serde_json::to_vec(event).context("serialising an envelope")?;
            let publish = Publish::build()
                .payload(payload.into())
                .message_id(event.event_id.to_string())
                .header(headers::EVENT_TYPE, event.event_type.as_str())
                .header(headers::EVENT_POSITION, event.position.to_string().as_str())
                .expected_last_sequence(self.last_sequence + offset);
            let ack = self.js.send_publish(subject, publish).await;
            acks.push((event.position, ack.context("sending a publish")?));
        }
        for (position, ack) in acks {
            let ack = ack
                .await
                .with_context(|| format!("publish ack for position {position}"))?;
            // A duplicate means our view of the stream is stale: stop and resync.
            anyhow::ensure!(
                !ack.duplicate,
                "position {position} was in the stream already"
            );
            self.last_sequence = ack.sequence;
            self.last_position = position;
        }
        Ok(())
    }
}
