//! The mail consumer (`notifier`, a durable consumer on `EVENTS`, one event at a time): keeps
//! the admin directory and the product names from the events, and writes each product change
//! to the outbox, one entry per recipient, before it acknowledges the event. A failing write
//! is retried with backoff; after [`MAX_ATTEMPTS`] the event is parked in `DLQ` and the others
//! flow.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use shared::{EventEnvelope, events::ProductEvent};
use tokio_util::sync::CancellationToken;

use super::{
    CONSUMER, Emails, MAX_ATTEMPTS,
    admins::Directory,
    content::Change,
    outbox::{self, Entry},
    parking,
    products::ProductNames,
};

impl Emails {
    pub(super) async fn consume(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        shared::nats::ensure_streams(&self.js, &self.prefix).await?;
        let stream = self.js.get_stream(self.prefix.events_stream()).await?;
        let consumer = stream
            .get_or_create_consumer(
                CONSUMER,
                pull::Config {
                    durable_name: Some(CONSUMER.to_owned()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(10),
                    // One at a time: the directory must be current for each product event.
                    max_ack_pending: 1,
                    ..Default::default()
                },
            )
            .await
            .context("creating the notifier consumer")?;
        let mut messages = consumer.messages().await?;
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                next = messages.next() => match next {
                    Some(message) => message?,
                    None => anyhow::bail!("the consumer's message stream ended"),
                },
            };
            let answer = self.handle(&message).await;
            if !self.ack_delay.is_zero() {
                tokio::time::sleep(self.ack_delay).await;
            }
            message
                .ack_with(answer)
                .await
                .map_err(|e| anyhow::anyhow!("acknowledging: {e}"))?;
        }
    }

    /// Takes in one event; the answer to give it: done, again after a delay, or parked.
    async fn handle(&self, message: &jetstream::Message) -> AckKind {
        if shared::nats::headers::requeued_for_another(message.headers.as_ref(), Some(CONSUMER)) {
            return AckKind::Ack;
        }
        let attempts = message.info().map(|i| i.delivered).unwrap_or(1);
        let outcome = match serde_json::from_slice::<EventEnvelope>(&message.payload) {
            Ok(envelope) => self.apply(&envelope, message).await,
            Err(e) => Err(anyhow::anyhow!("not an event envelope: {e}")),
        };
        match outcome {
            Ok(()) => AckKind::Ack,
            Err(e) if attempts < MAX_ATTEMPTS => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    attempts,
                    "an admin email failed; will retry"
                );
                metrics::counter!("notifier_mail_failures_total").increment(1);
                let delay = Duration::from_millis(500 * 2_u64.pow(attempts.clamp(1, 7) as u32 - 1));
                AckKind::Nak(Some(delay.min(Duration::from_secs(60))))
            }
            Err(e) => match self.parking().event(message, &format!("{e:#}")).await {
                Ok(()) => AckKind::Term,
                Err(dlq) => {
                    tracing::error!(error = format!("{dlq:#}"), "parking failed; retrying later");
                    AckKind::Nak(Some(Duration::from_secs(30)))
                }
            },
        }
    }

    async fn apply(
        &self,
        envelope: &EventEnvelope,
        message: &jetstream::Message,
    ) -> anyhow::Result<()> {
        match envelope.aggregate_type.as_str() {
            "user" => Directory::of(&self.db).follow(envelope).await,
            "product" => self.enqueue_product_change(envelope, message).await,
            _ => Ok(()),
        }
    }

    /// Writes the change to the outbox for every admin but the one who made it.
    async fn enqueue_product_change(
        &self,
        envelope: &EventEnvelope,
        message: &jetstream::Message,
    ) -> anyhow::Result<()> {
        let sku = envelope.aggregate_id.to_string();
        let event = envelope.decode::<ProductEvent>()?;
        let name = ProductNames::of(&self.db).after(&sku, &event).await?;

        let directory = Directory::of(&self.db);
        let actor_id = envelope.actor.as_ref().map(|a| a.user_id.to_string());
        let admins = directory.admin_ids().await?;
        let actor = match &actor_id {
            Some(id) => directory.user(id).await?,
            None => None,
        };
        let change = Change::of(envelope, &event, &name, actor.as_ref());
        // A copy `camctl dlq requeue` sent back retries the one recipient it was parked for
        // (after the cause was fixed); every other recipient was handled already.
        // (A whole event parked after failing too often carries no recipient: its copy is
        // handled like a redelivery, adding whoever has no entry yet.)
        let requeued_for = parking::requeued_for(message);
        if let Some(recipient) = &requeued_for {
            outbox::reopen(&self.db, &Entry::id_for(envelope, recipient)).await?;
        }
        let event_json = serde_json::to_string(envelope)?;
        let entries: Vec<Entry> = admins
            .iter()
            .filter(|recipient| Some(recipient.as_str()) != actor_id.as_deref())
            .filter(|recipient| requeued_for.as_ref().is_none_or(|r| r == *recipient))
            .map(|recipient| Entry::pending(envelope, &event_json, &change, recipient))
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        outbox::add(&self.db, &entries).await?;
        self.wake.notify_one();
        Ok(())
    }
}
