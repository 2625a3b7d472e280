//! The feed's subscription to `EVENTS`: one epoch at a time, each an ordered consumer started
//! just past the stream's tip, ended by any failure and followed by a new one after a backoff.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull::OrderedConfig};
use futures::StreamExt as _;
use shared::nats::{Prefix, headers};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Feed;

impl Feed {
    pub(super) async fn follow(
        &self,
        js: jetstream::Context,
        prefix: Prefix,
        shutdown: CancellationToken,
    ) {
        let next_epoch = AtomicU64::new(1);
        shared::service::keep_running("the change feed", &shutdown, || async {
            let epoch = next_epoch.fetch_add(1, Ordering::SeqCst);
            let outcome = self.subscribe(&js, &prefix, epoch, &shutdown).await;
            self.end_epoch();
            if outcome.is_err() {
                metrics::counter!("query_feed_restarts_total").increment(1);
            }
            outcome
        })
        .await;
    }

    pub(super) fn end_epoch(&self) {
        self.state.live.store(false, Ordering::SeqCst);
        *self.state.epoch.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// One epoch: from the stream's tip, until a failure (`Err`) or shutdown (`Ok`).
    async fn subscribe(
        &self,
        js: &jetstream::Context,
        prefix: &Prefix,
        epoch: u64,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut stream = js
            .get_stream(prefix.events_stream())
            .await
            .context("finding the events stream")?;
        let last = stream.info().await?.state.last_sequence;
        let tip = tip_position(&stream, last).await?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: prefix.subject("events.>"),
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: last + 1,
                },
                ..Default::default()
            })
            .await
            .context("creating the change feed's consumer")?;
        let mut messages = consumer.messages().await?;
        let state = &self.state;
        state.frontier.fetch_max(tip, Ordering::SeqCst);
        *state.epoch.write().unwrap_or_else(|e| e.into_inner()) = Some((epoch, tip));
        state.live.store(true, Ordering::SeqCst);
        tracing::info!(epoch, tip, "following changes");
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                message = messages.next() => message,
            };
            let message = message
                .context("the change feed ended")?
                .map_err(|e| anyhow::anyhow!("reading the change feed: {e}"))?;
            let position = header_position(message.headers.as_ref())
                .with_context(|| format!("{} carries no Event-Position", message.subject))?;
            let Some((aggregate_type, id)) = aggregate_of(&message.subject) else {
                anyhow::bail!("{} is not an event subject", message.subject);
            };
            // A copy requeued from `DLQ` changes the read model now, though its position is
            // old (the checkpoint went past it when it was parked): count it as a change just
            // past everything seen, which no answer kept so far reflects.
            let requeued = message.headers.as_ref().is_some_and(|h| {
                h.get(headers::REQUEUED).is_some() || h.get(headers::REQUEUED_FOR).is_some()
            });
            if requeued {
                let now = self.state.frontier.load(Ordering::SeqCst) + 1;
                self.record(aggregate_type, id, now, true);
            } else {
                self.changed(aggregate_type, id, position);
            }
        }
    }
}

/// The position of the newest original event on the stream (copies requeued from `DLQ`
/// carry an older one), 0 for an empty stream.
async fn tip_position(stream: &jetstream::stream::Stream, last: u64) -> anyhow::Result<i64> {
    let mut sequence = last;
    while sequence > 0 && last - sequence < 1000 {
        let message = match stream.get_raw_message(sequence).await {
            Ok(message) => message,
            // Deleted by retention or by hand: look further back. Anything else (a timeout)
            // fails the epoch: a start taken too low would let an unseen event through.
            Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => {
                sequence -= 1;
                continue;
            }
            Err(e) => return Err(anyhow::anyhow!("reading the stream's last event: {e}")),
        };
        let requeued = message
            .headers
            .get(headers::REQUEUED_FOR)
            .or_else(|| message.headers.get(headers::REQUEUED))
            .is_some();
        if !requeued {
            return header_position(Some(&message.headers))
                .context("the stream's last event carries no Event-Position");
        }
        sequence -= 1;
    }
    anyhow::ensure!(
        sequence == 0,
        "no original event among the stream's last 1000"
    );
    Ok(0)
}

fn header_position(headers: Option<&async_nats::HeaderMap>) -> Option<i64> {
    headers?.get(headers::EVENT_POSITION)?.as_str().parse().ok()
}

/// `…events.<aggregate_type>.<aggregate_id>.<EventType>` → type and id.
fn aggregate_of(subject: &str) -> Option<(&str, Option<Uuid>)> {
    let mut parts = subject.rsplit('.');
    let _event_type = parts.next()?;
    let id = parts.next()?;
    let aggregate_type = parts.next()?;
    (parts.next()? == "events").then(|| (aggregate_type, Uuid::parse_str(id).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_the_aggregate_with_or_without_a_prefix() {
        let id = Uuid::now_v7();
        assert_eq!(
            aggregate_of(&format!("events.product.{id}.ProductUpdated")),
            Some(("product", Some(id)))
        );
        assert_eq!(
            aggregate_of(&format!("t1.events.review.{id}.ReviewPublished")),
            Some(("review", Some(id)))
        );
        assert_eq!(aggregate_of("views.product.x"), None);
    }
}
