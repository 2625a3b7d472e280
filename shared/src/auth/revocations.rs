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
    /// How long a revocation matters: the access-token lifetime (plus leeway).
    lookback: Duration,
}

impl Revocations {
    pub fn new(access_token_ttl: Duration) -> Self {
        Self {
            revoked: Arc::default(),
            caught_up: Arc::default(),
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

    fn revoke(&self, session_id: Uuid) {
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
                tokio::select! {
                    _ = shutdown.cancelled() => Ok(()),
                    outcome = this.follow(&js, &prefix) => match outcome {
                        Ok(()) => Err(anyhow::anyhow!("the EVENTS subscription ended")),
                        failed => failed,
                    },
                }
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
            }
        }
        Ok(())
    }
}
