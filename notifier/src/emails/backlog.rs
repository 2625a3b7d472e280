//! The mail consumer's backlog: events on `EVENTS` it has not finished (not yet delivered to
//! it, or being handled) and how long the oldest has waited since it was published. The
//! notifier's `/metrics` and `camctl notifier status` show it.

use std::time::Duration;

use async_nats::jetstream;
use shared::nats::Prefix;
use tokio_util::sync::CancellationToken;

use super::CONSUMER;

/// How often the mail backlog is measured.
const BACKLOG_EVERY: Duration = Duration::from_secs(2);

/// Keeps `notifier_mail_backlog_events` and `notifier_mail_backlog_age_seconds` current, until
/// `shutdown`.
pub async fn watch(js: jetstream::Context, prefix: Prefix, shutdown: CancellationToken) {
    loop {
        match backlog(&js, &prefix).await {
            Ok((events, age)) => {
                metrics::gauge!("notifier_mail_backlog_events").set(events as f64);
                metrics::gauge!("notifier_mail_backlog_age_seconds").set(age.as_secs_f64());
            }
            Err(e) => tracing::debug!(error = format!("{e:#}"), "measuring the mail backlog"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(BACKLOG_EVERY) => {}
        }
    }
}

/// Events the mail consumer has not finished, and how long the oldest has waited.
pub async fn backlog(js: &jetstream::Context, prefix: &Prefix) -> anyhow::Result<(u64, Duration)> {
    let stream = js.get_stream(prefix.events_stream()).await?;
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .get_consumer(CONSUMER)
        .await
        .map_err(|e| anyhow::anyhow!("the mail consumer: {e}"))?;
    let info = consumer.info().await?;
    let events = info.num_pending + info.num_ack_pending as u64;
    if events == 0 {
        return Ok((0, Duration::ZERO));
    }
    let oldest = stream
        .get_raw_message(info.ack_floor.stream_sequence + 1)
        .await?;
    let waited = time::OffsetDateTime::now_utc() - oldest.time;
    Ok((events, waited.try_into().unwrap_or(Duration::ZERO)))
}
