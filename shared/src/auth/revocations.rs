//! Ended sessions, as the services other than command-api learn of them: a follower reads
//! `SessionRevoked` events from the `EVENTS` stream (an ordered consumer, starting one token
//! lifetime back, since older sessions' access tokens have expired anyway) and remembers each
//! session id for that long. A logout reaches it within the relay's latency, milliseconds.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{EventEnvelope, nats::Prefix};

#[derive(Clone)]
pub struct Revocations {
    revoked: Arc<RwLock<HashMap<Uuid, Instant>>>,
    caught_up: Arc<AtomicBool>,
    following: Arc<AtomicBool>,
    /// How long a revocation matters: the access-token lifetime (plus leeway).
    lookback: Duration,
}

impl Revocations {
    pub fn new(access_token_ttl: Duration) -> Self {
        Self {
            revoked: Arc::default(),
            caught_up: Arc::default(),
            following: Arc::default(),
            lookback: access_token_ttl + Duration::from_secs(60),
        }
    }

    pub fn is_revoked(&self, session_id: Uuid) -> bool {
        self.revoked
            .read()
            .map(|r| r.contains_key(&session_id))
            .unwrap_or(true)
    }

    /// True once the revocations of the last token lifetime have been read (for `/readyz`).
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Relaxed)
    }

    /// True while the follower reads the stream and has read all of it that there was when it
    /// (re)subscribed: false before, and from a failure until it is back. A service that can
    /// check sessions elsewhere does so while this is false.
    pub fn is_current(&self) -> bool {
        self.following.load(Ordering::Relaxed)
    }

    /// Remembers that `session_id` ended (from the stream, or from the command that ended it
    /// in this process, so that its next request is refused without waiting for the stream).
    pub fn revoke(&self, session_id: Uuid) {
        if let Ok(mut revoked) = self.revoked.write() {
            let now = Instant::now();
            revoked.retain(|_, at| now.duration_since(*at) < self.lookback);
            revoked.insert(session_id, now);
        }
    }

    /// Follows the stream until `shutdown`, reconnecting with backoff on any failure.
    pub fn spawn_follower(
        &self,
        js: jetstream::Context,
        prefix: Prefix,
        shutdown: CancellationToken,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            crate::service::keep_running("following session revocations", &shutdown, || async {
                let outcome = tokio::select! {
                    _ = shutdown.cancelled() => Ok(()),
                    outcome = this.follow(&js, &prefix) => match outcome {
                        Ok(()) => Err(anyhow::anyhow!("the EVENTS subscription ended")),
                        failed => failed,
                    },
                };
                // Until it has read the stream again, what it knows may be behind.
                this.following.store(false, Ordering::Relaxed);
                outcome
            })
            .await;
        });
    }

    async fn follow(&self, js: &jetstream::Context, prefix: &Prefix) -> anyhow::Result<()> {
        crate::nats::ensure_streams(js, prefix).await?;
        let stream = js.get_stream(prefix.events_stream()).await?;
        let start_time = time::OffsetDateTime::now_utc() - self.lookback;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: prefix.subject("events.user.*.SessionRevoked"),
                deliver_policy: consumer::DeliverPolicy::ByStartTime { start_time },
                ..Default::default()
            })
            .await?;
        if consumer.cached_info().num_pending == 0 {
            self.caught_up.store(true, Ordering::Relaxed);
            self.following.store(true, Ordering::Relaxed);
        }
        let mut messages = consumer.messages().await?;
        while let Some(message) = messages.next().await {
            let message = message?;
            // Something unreadable on the subject must not stop the revocations after it.
            match serde_json::from_slice::<EventEnvelope>(&message.payload) {
                Ok(envelope) => {
                    let session = envelope.data["session_id"]
                        .as_str()
                        .and_then(|s| Uuid::parse_str(s).ok());
                    if let Some(session_id) = session {
                        self.revoke(session_id);
                    }
                }
                Err(e) => {
                    tracing::warn!(subject = %message.subject, error = %e, "skipping an unreadable revocation")
                }
            }
            if message.info().is_ok_and(|info| info.pending == 0) {
                self.caught_up.store(true, Ordering::Relaxed);
                self.following.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// The sessions a response's command ended, as a response extension: the service that ended
/// them refuses their tokens from its next request on (see [`Revocations::revoke`]).
#[derive(Debug, Clone, Default)]
pub struct EndedSessions(pub Vec<Uuid>);
