//! Parking in `DLQ`: an event that failed too often (whole), or one recipient's mail of an
//! event that their mailbox refused for good (with the recipient in a header, so that
//! `camctl dlq requeue` retries that recipient alone once the cause is fixed).

use async_nats::jetstream;
use shared::{EventEnvelope, nats::Prefix};

use super::CONSUMER;

/// The header naming the one recipient a parked mail was for.
const RECIPIENT: &str = "Dlq-Recipient";

#[derive(Clone)]
pub struct Park {
    js: jetstream::Context,
    prefix: Prefix,
}

impl Park {
    pub fn new(js: jetstream::Context, prefix: Prefix) -> Self {
        Self { js, prefix }
    }

    /// Parks an event as it was delivered, for every recipient not yet in the outbox.
    pub async fn event(&self, message: &jetstream::Message, error: &str) -> anyhow::Result<()> {
        shared::nats::dead_letter(
            &self.js,
            &self.prefix,
            shared::nats::DeadLetter {
                consumer: CONSUMER,
                original_subject: &message.subject,
                original: message.headers.as_ref(),
                payload: message.payload.clone(),
                error,
                extra: &[],
            },
        )
        .await
    }

    /// Parks `recipient`'s mail of `envelope`.
    pub async fn mail(
        &self,
        envelope: &EventEnvelope,
        recipient: &str,
        error: &str,
    ) -> anyhow::Result<()> {
        let original = self.prefix.event_subject(
            &envelope.aggregate_type,
            &envelope.aggregate_id.to_string(),
            &envelope.event_type,
        );
        shared::nats::dead_letter(
            &self.js,
            &self.prefix,
            shared::nats::DeadLetter {
                consumer: CONSUMER,
                original_subject: &original,
                original: None,
                payload: serde_json::to_vec(envelope)?.into(),
                error,
                extra: &[(RECIPIENT, recipient)],
            },
        )
        .await
    }
}

/// The one recipient a copy that `camctl dlq requeue` sent back is for; `None` for an event
/// delivered as published, or a whole event requeued (which carries no recipient).
pub fn requeued_for(message: &jetstream::Message) -> Option<String> {
    message
        .headers
        .as_ref()
        .filter(|h| h.get(shared::nats::headers::REQUEUED).is_some())
        .and_then(|h| h.get(RECIPIENT))
        .map(|r| r.as_str().to_owned())
}
