//! NATS names (streams and subjects, with `NATS_PREFIX`), the connection, and the stream
//! definitions from `nats/streams.json`, applied idempotently at start-up.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use serde::Deserialize;

/// Isolates environments (and tests) sharing one server: with prefix `p`, stream `EVENTS`
/// becomes `p_EVENTS` and subject `events.x` becomes `p.events.x`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefix(String);

impl Prefix {
    pub fn parse(value: &str) -> Result<Self, String> {
        let ok = value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(format!(
                "{value:?} may only hold letters, digits, '_' and '-'"
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn stream(&self, base: &str) -> String {
        if self.0.is_empty() {
            base.to_owned()
        } else {
            format!("{}_{base}", self.0)
        }
    }

    pub fn subject(&self, base: &str) -> String {
        if self.0.is_empty() {
            base.to_owned()
        } else {
            format!("{}.{base}", self.0)
        }
    }

    pub fn events_stream(&self) -> String {
        self.stream("EVENTS")
    }

    pub fn views_stream(&self) -> String {
        self.stream("VIEWS")
    }

    pub fn dlq_stream(&self) -> String {
        self.stream("DLQ")
    }

    /// `events.<aggregate_type>.<aggregate_id>.<EventType>`
    pub fn event_subject(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        event_type: &str,
    ) -> String {
        self.subject(&format!(
            "events.{aggregate_type}.{aggregate_id}.{event_type}"
        ))
    }

    /// `views.product.<sku>`
    pub fn view_subject(&self, sku: &str) -> String {
        self.subject(&format!("views.product.{sku}"))
    }

    /// `projection.applied`: the projector's applied position, each time its checkpoint
    /// moves (core NATS; the checkpoint in MongoDB stays the durable record).
    pub fn applied_subject(&self) -> String {
        self.subject("projection.applied")
    }

    /// `dlq.<consumer>.<original subject>`
    pub fn dlq_subject(&self, consumer: &str, original: &str) -> String {
        self.subject(&format!("dlq.{consumer}.{original}"))
    }
}

/// Header names on published events.
pub mod headers {
    pub const EVENT_TYPE: &str = "Event-Type";
    pub const EVENT_POSITION: &str = "Event-Position";
    pub const TRACEPARENT: &str = "traceparent";
    /// On a copy `camctl dlq requeue` sent back: the DLQ sequence it came from.
    pub const REQUEUED: &str = "Dlq-Requeued";
    /// On such a copy: the one consumer that should act on it (the one that parked it).
    pub const REQUEUED_FOR: &str = "Dlq-Requeued-For";

    /// Whether a consumer named `consumer` should skip `headers`' message: a requeued copy
    /// meant for another consumer (or, with `None`, for any durable consumer at all).
    pub fn requeued_for_another(
        headers: Option<&async_nats::HeaderMap>,
        consumer: Option<&str>,
    ) -> bool {
        let Some(headers) = headers else {
            return false;
        };
        if headers.get(REQUEUED).is_none() {
            return false;
        }
        match (headers.get(REQUEUED_FOR), consumer) {
            (Some(target), Some(consumer)) => target.as_str() != consumer,
            _ => true,
        }
    }
}

/// A message a consumer gives up on, for [`dead_letter`].
pub struct DeadLetter<'a> {
    pub consumer: &'a str,
    pub original_subject: &'a str,
    /// The original message's headers, if any.
    pub original: Option<&'a async_nats::HeaderMap>,
    pub payload: bytes::Bytes,
    pub error: &'a str,
    /// More headers, e.g. `Dlq-Recipient`.
    pub extra: &'a [(&'a str, &'a str)],
}

/// Parks a message in `DLQ`, as `dlq.<consumer>.<original subject>`, with the error, the
/// consumer and the original subject in headers (plus `extra`, and the event's own
/// `Event-Type`, `Event-Position` and `Nats-Msg-Id` when the original has them). Waits for
/// the stream to store it.
pub async fn dead_letter(
    js: &jetstream::Context,
    prefix: &Prefix,
    letter: DeadLetter<'_>,
) -> anyhow::Result<()> {
    let DeadLetter {
        consumer,
        original_subject,
        original,
        payload,
        error,
        extra,
    } = letter;
    tracing::error!(
        consumer,
        subject = original_subject,
        error,
        "giving up; parked in DLQ"
    );
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Dlq-Error", error.replace(['\r', '\n'], " ").as_str());
    headers.insert("Dlq-Consumer", consumer);
    headers.insert("Dlq-Original-Subject", original_subject);
    for (name, value) in extra {
        headers.insert(*name, *value);
    }
    if let Some(original) = original {
        // A requeued mail parked again keeps its one recipient.
        for name in [
            headers::EVENT_TYPE,
            headers::EVENT_POSITION,
            "Nats-Msg-Id",
            "Dlq-Recipient",
        ] {
            if let Some(value) = original.get(name) {
                headers.insert(name, value.as_str());
            }
        }
    }
    js.publish_with_headers(
        prefix.dlq_subject(consumer, original_subject),
        headers,
        payload,
    )
    .await?
    .await
    .context("publishing to DLQ")?;
    metrics::counter!("dlq_parked_total", "consumer" => consumer.to_owned()).increment(1);
    Ok(())
}

/// Connects without blocking start-up on the server: the client keeps retrying in the
/// background, and `/readyz` says whether it is connected.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<async_nats::Client> {
    options_for(url)?
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {}", crate::config::shown(url)))
}

/// Connect options carrying the user and password of `nats://user:password@host` (each
/// service has its own NATS user in the deployments). async-nats reads no credentials from
/// the URL itself (nats-io/nats.rs#1623), so they are taken out here, percent-decoded.
pub fn options_for(url: &str) -> anyhow::Result<async_nats::ConnectOptions> {
    let options = async_nats::ConnectOptions::new();
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(options);
    };
    if parsed.username().is_empty() {
        return Ok(options);
    }
    let decode = |part: &str| -> anyhow::Result<String> {
        Ok(
            url::form_urlencoded::parse(format!("x={}", part.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default(),
        )
    };
    let user = decode(parsed.username())?;
    let password = decode(parsed.password().unwrap_or_default())?;
    Ok(options.user_and_password(user, password))
}

pub fn is_connected(client: &async_nats::Client) -> Result<(), String> {
    match client.connection_state() {
        async_nats::connection::State::Connected => Ok(()),
        other => Err(format!("NATS is {other}")),
    }
}

#[derive(Debug, Deserialize)]
struct StreamFile {
    streams: Vec<StreamSpec>,
}

#[derive(Debug, Deserialize)]
struct StreamSpec {
    name: String,
    subjects: Vec<String>,
    description: String,
    max_age_secs: u64,
    duplicate_window_secs: u64,
}

const STREAMS_JSON: &str = include_str!("../../nats/streams.json");

/// The stream configurations from `nats/streams.json`, with `prefix` applied.
pub fn stream_configs(prefix: &Prefix) -> anyhow::Result<Vec<stream::Config>> {
    let file: StreamFile =
        serde_json::from_str(STREAMS_JSON).context("nats/streams.json does not parse")?;
    Ok(file
        .streams
        .into_iter()
        .map(|spec| stream::Config {
            name: prefix.stream(&spec.name),
            subjects: spec.subjects.iter().map(|s| prefix.subject(s)).collect(),
            description: Some(spec.description),
            max_age: Duration::from_secs(spec.max_age_secs),
            duplicate_window: Duration::from_secs(spec.duplicate_window_secs),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .collect())
}

/// Creates each stream that is missing, and updates one whose definition changed. Safe to run
/// from every service at every start. A stream that matches is left alone: updating a stream
/// is not free, and nats-server 2.9 can crash when an update races the stream's deletion.
pub async fn ensure_streams(js: &jetstream::Context, prefix: &Prefix) -> anyhow::Result<()> {
    for config in stream_configs(prefix)? {
        let name = config.name.clone();
        match js.get_stream(&name).await {
            Ok(stream) => {
                let current = &stream.cached_info().config;
                let same = current.subjects == config.subjects
                    && current.max_age == config.max_age
                    && current.duplicate_window == config.duplicate_window
                    && current.description == config.description;
                if !same {
                    js.update_stream(config)
                        .await
                        .with_context(|| format!("updating stream {name}"))?;
                }
            }
            // Created, never "created or updated": that sends an update first, and an update
            // racing the stream's deletion is what crashes nats-server 2.9.
            Err(_) => {
                if let Err(e) = js.create_stream(config).await {
                    // Another service may have created it meanwhile.
                    js.get_stream(&name)
                        .await
                        .with_context(|| format!("creating stream {name}: {e}"))?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_prefix_leaves_names_alone() {
        let p = Prefix::default();
        assert_eq!(p.events_stream(), "EVENTS");
        assert_eq!(
            p.event_subject("product", "abc", "ProductCreated"),
            "events.product.abc.ProductCreated"
        );
    }

    #[test]
    fn a_prefix_applies_to_streams_and_subjects() {
        let p = Prefix::parse("t1").unwrap();
        assert_eq!(p.events_stream(), "t1_EVENTS");
        assert_eq!(p.view_subject("s"), "t1.views.product.s");
        assert_eq!(
            p.dlq_subject("projector", "t1.events.x"),
            "t1.dlq.projector.t1.events.x"
        );
    }

    #[test]
    fn the_stream_file_defines_the_three_streams() {
        let configs = stream_configs(&Prefix::parse("x").unwrap()).unwrap();
        let names: Vec<_> = configs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["x_EVENTS", "x_VIEWS", "x_DLQ"]);
        assert_eq!(configs[0].subjects, ["x.events.>"]);
    }
}
