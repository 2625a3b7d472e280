//! Dead letters: what the consumers gave up on, parked in `DLQ` as
//! `dlq.<consumer>.<original subject>` with the reason in `Dlq-Error`.
//!
//! Requeueing publishes a letter's payload back to its original subject, with the original
//! `Event-Type`/`Event-Position` headers and `Dlq-Requeued: <DLQ sequence>`, then deletes it
//! from `DLQ`. Every consumer is idempotent (version guards, per-recipient send records,
//! per-message tally sequence), so the consumers that had already handled it skip it, and the
//! one that parked it applies it. The copy's `Nats-Msg-Id` is derived from the DLQ sequence, so
//! requeueing the same letter twice (a crash between publish and delete) stores it once.
//!
//! The commands: `dlq list` ([`list`]) and `dlq requeue` ([`requeue`]).

pub mod list;
pub mod requeue;

use anyhow::Context as _;
use async_nats::jetstream::{
    self,
    stream::{RawMessageErrorKind, Stream},
};
use serde::Serialize;
use shared::nats::{
    Prefix,
    headers::{REQUEUED, REQUEUED_FOR},
};

#[derive(Debug, Clone, Serialize)]
pub struct Letter {
    pub sequence: u64,
    pub parked_at: String,
    pub consumer: String,
    pub original_subject: String,
    pub error: String,
    pub event_type: Option<String>,
    pub event_position: Option<i64>,
    pub recipient: Option<String>,
    #[serde(skip)]
    pub message: Option<async_nats::jetstream::message::StreamMessage>,
}

async fn dlq(js: &jetstream::Context, prefix: &Prefix) -> anyhow::Result<Stream> {
    js.get_stream(prefix.dlq_stream())
        .await
        .with_context(|| format!("finding the {} stream", prefix.dlq_stream()))
}

/// Every parked letter, oldest first, optionally of one consumer only.
pub async fn parked(
    js: &jetstream::Context,
    prefix: &Prefix,
    consumer: Option<&str>,
) -> anyhow::Result<Vec<Letter>> {
    let mut stream = dlq(js, prefix).await?;
    let state = stream.info().await?.state.clone();
    let mut letters = Vec::new();
    if state.messages == 0 {
        return Ok(letters);
    }
    for sequence in state.first_sequence..=state.last_sequence {
        let message = match stream.get_raw_message(sequence).await {
            Ok(message) => message,
            // Deleted (requeued) letters leave holes.
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading DLQ message {sequence}")),
        };
        let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
        let letter = Letter {
            sequence,
            parked_at: message
                .time
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            consumer: header("Dlq-Consumer").unwrap_or_default(),
            original_subject: header("Dlq-Original-Subject").unwrap_or_default(),
            error: header("Dlq-Error").unwrap_or_default(),
            event_type: header(shared::nats::headers::EVENT_TYPE),
            event_position: header(shared::nats::headers::EVENT_POSITION)
                .and_then(|p| p.parse().ok()),
            recipient: header("Dlq-Recipient"),
            message: Some(message),
        };
        if consumer.is_none_or(|c| c == letter.consumer) {
            letters.push(letter);
        }
    }
    Ok(letters)
}

/// Sends `letter` back to its original subject and removes it from `DLQ`.
pub async fn send_back(
    js: &jetstream::Context,
    prefix: &Prefix,
    letter: &Letter,
) -> anyhow::Result<()> {
    let message = letter
        .message
        .as_ref()
        .context("the letter's message was not read")?;
    anyhow::ensure!(
        !letter.original_subject.is_empty(),
        "DLQ message {} names no original subject",
        letter.sequence
    );
    let mut headers = async_nats::HeaderMap::new();
    for name in [
        shared::nats::headers::EVENT_TYPE,
        shared::nats::headers::EVENT_POSITION,
        shared::nats::headers::TRACEPARENT,
        // A parked mail names its one recipient: only that one is retried.
        "Dlq-Recipient",
    ] {
        if let Some(value) = message.headers.get(name) {
            headers.insert(name, value.as_str());
        }
    }
    let original_id = message
        .headers
        .get("Nats-Msg-Id")
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default();
    let sequence = letter.sequence.to_string();
    headers.insert(REQUEUED, sequence.as_str());
    // Only the consumer that parked it acts on the copy; the others skip it.
    headers.insert(REQUEUED_FOR, letter.consumer.as_str());
    headers.insert(
        "Nats-Msg-Id",
        format!("{original_id}:requeued:{}:{sequence}", prefix.dlq_stream()).as_str(),
    );
    js.publish_with_headers(
        letter.original_subject.clone(),
        headers,
        message.payload.clone(),
    )
    .await?
    .await
    .with_context(|| format!("publishing to {}", letter.original_subject))?;
    dlq(js, prefix)
        .await?
        .delete_message(letter.sequence)
        .await
        .with_context(|| {
            format!(
                "published again, but not removed from DLQ (message {}); requeueing it again \
                 within two minutes stores it once",
                letter.sequence
            )
        })?;
    Ok(())
}
