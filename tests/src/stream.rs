//! Reading what actually arrived on a JetStream stream, in stream order.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use shared::EventEnvelope;

/// Reads the stream from its start until `count` messages arrived or `within` passed, with a
/// fresh ordered consumer (what an analyst replaying the stream would see; it detects and
/// repairs gaps in delivery itself).
pub async fn read_events(
    js: &jetstream::Context,
    stream: &str,
    count: usize,
    within: Duration,
) -> Vec<EventEnvelope> {
    let mut messages = from_the_start(js, stream).await;
    let mut events = Vec::with_capacity(count);
    let deadline = tokio::time::Instant::now() + within;
    while events.len() < count {
        let next = tokio::time::timeout_at(deadline, messages.next()).await;
        let Ok(Some(Ok(message))) = next else { break };
        events.push(serde_json::from_slice(&message.payload).expect("an envelope"));
    }
    events
}

/// The first `count` messages of a stream as (subject, payload), in stream order.
pub async fn read_subjects(
    js: &jetstream::Context,
    stream: &str,
    count: usize,
) -> Vec<(String, bytes::Bytes)> {
    let mut messages = from_the_start(js, stream).await;
    let mut read = Vec::with_capacity(count);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while read.len() < count {
        let next = tokio::time::timeout_at(deadline, messages.next()).await;
        let Ok(Some(Ok(message))) = next else { break };
        read.push((message.subject.to_string(), message.payload.clone()));
    }
    read
}

/// The stream's messages from its start, through a fresh ordered consumer.
async fn from_the_start(js: &jetstream::Context, stream: &str) -> consumer::pull::Ordered {
    let stream = js.get_stream(stream).await.expect("the stream exists");
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap();
    consumer.messages().await.unwrap()
}

/// How many messages the stream holds now.
pub async fn message_count(js: &jetstream::Context, stream: &str) -> u64 {
    match js.get_stream(stream).await {
        Ok(mut stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Waits until the stream holds at least `count` messages; returns how many it holds.
pub async fn wait_for_count(
    js: &jetstream::Context,
    stream: &str,
    count: u64,
    within: Duration,
) -> u64 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = message_count(js, stream).await;
        if now >= count || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
