//! `camctl events tail`: events as they are published on NATS, until interrupted or
//! `--count` of them.

use std::io::Write as _;

use anyhow::Context as _;
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use futures::StreamExt as _;
use shared::EventEnvelope;

use super::{write_event, write_table_header};
use crate::{
    cli::{Cli, Format, TailArgs},
    cmd::Done,
};

pub async fn run(cli: &Cli, args: &TailArgs) -> anyhow::Result<Done> {
    let (js, prefix) = cli.jetstream().await?;
    let base = args
        .filter
        .strip_prefix(&format!("{}.", prefix.as_str()))
        .filter(|_| !prefix.is_empty())
        .unwrap_or(&args.filter);
    if !(base == "events.>" || base.starts_with("events.")) {
        eprintln!(
            "error: --filter must be a subject within events.> (got {:?})",
            args.filter
        );
        return Ok(Done::Usage);
    }
    let stream = js
        .get_stream(prefix.events_stream())
        .await
        .with_context(|| format!("finding the {} stream", prefix.events_stream()))?;
    let deliver_policy = match args.since {
        Some(since) => DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(
                since.timestamp_nanos_opt().unwrap_or(0),
            ))?,
        },
        None => DeliverPolicy::New,
    };
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: prefix.subject(base),
            deliver_policy,
            ..Default::default()
        })
        .await
        .context("creating the tail's consumer")?;
    let mut messages = consumer.messages().await?;
    let mut out = std::io::stdout().lock();
    if matches!(args.format, Format::Table) {
        write_table_header(&mut out)?;
        out.flush()?;
    }
    let mut seen = 0;
    loop {
        if args.count.is_some_and(|n| seen >= n) {
            return Ok(Done::Ok);
        }
        let message = tokio::select! {
            message = messages.next() => message,
            _ = tokio::signal::ctrl_c() => return Ok(Done::Ok),
        };
        let Some(message) = message else {
            anyhow::bail!("the subscription ended");
        };
        let message = message.map_err(|e| anyhow::anyhow!("reading events: {e}"))?;
        // A copy `dlq requeue` sent back for one consumer is not a new event.
        if shared::nats::headers::requeued_for_another(message.headers.as_ref(), None) {
            continue;
        }
        match serde_json::from_slice::<EventEnvelope>(&message.payload) {
            Ok(event) => write_event(&mut out, &event, args.format)?,
            Err(e) => eprintln!(
                "skipping a message on {} that is not an event: {e}",
                message.subject
            ),
        }
        out.flush()?;
        seen += 1;
    }
}
