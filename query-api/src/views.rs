//! Anonymous product views, published to `VIEWS` off the request path. A detail GET hands the
//! SKU to a bounded queue and answers at once; a background task publishes in rounds (at most
//! one per 100 ms unless a batch is waiting), one message per product carrying its count, awaits
//! the acknowledgements together, and republishes what failed under the same `Nats-Msg-Id`,
//! so a NATS outage delays views instead of losing or doubling them. At most
//! `QUERY_VIEWS_BUFFER` views wait in memory (queued and in the batch being published); when
//! that is full (NATS away or slow for long under heavy traffic) new views are dropped and
//! counted in `query_views_dropped_total`: reads never wait for the broker, and memory stays
//! bounded.

use std::time::Duration;

use async_nats::{HeaderMap, jetstream};
use chrono::Utc;
use shared::{nats::Prefix, views::ProductViewed};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Views waiting to be published, at most (`QUERY_VIEWS_BUFFER`'s default).
pub const BUFFER: usize = 100_000;
/// Views published per batch, at most.
const BATCH: usize = 500;
/// How long shutdown waits for the queue to drain.
const DRAIN: Duration = Duration::from_secs(5);
/// Publishing rounds start at most this often while views trickle in (a full batch goes at
/// once): the views of a round are one message per product, so a popular product costs the
/// broker a message per round, not one per reader.
const ROUND_EVERY: Duration = Duration::from_millis(100);
/// How long one publishing round may take.
const ROUND: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct ViewRecorder {
    queue: mpsc::Sender<Uuid>,
}

impl ViewRecorder {
    /// Starts the publisher, holding at most `buffer` views unpublished; it drains the queue
    /// when `shutdown` is cancelled.
    pub fn spawn(
        js: jetstream::Context,
        prefix: Prefix,
        buffer: usize,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        // A batch and the queue behind it share the buffer.
        let batch = BATCH.min(buffer / 2).max(1);
        let (queue, receiver) = mpsc::channel(buffer.saturating_sub(batch).max(1));
        let publisher = Publisher {
            js,
            prefix,
            batch,
            pending: Vec::new(),
        };
        let task = tokio::spawn(publisher.run(receiver, shutdown));
        (Self { queue }, task)
    }

    /// Counts one anonymous view of `sku`, without waiting.
    pub fn record(&self, sku: Uuid) {
        if self.queue.try_send(sku).is_ok() {
            metrics::counter!("query_views_recorded_total").increment(1);
        } else {
            metrics::counter!("query_views_dropped_total").increment(1);
        }
    }
}

/// The views in `skus` (taken from the queue now), one message per product.
fn gathered(skus: &mut Vec<Uuid>) -> Vec<ProductViewed> {
    let now = Utc::now();
    let mut counts: std::collections::HashMap<Uuid, u32> = std::collections::HashMap::new();
    for sku in skus.drain(..) {
        *counts.entry(sku).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(sku, count)| ProductViewed {
            view_id: Uuid::now_v7(),
            sku,
            viewed_at: now,
            count,
        })
        .collect()
}

struct Publisher {
    js: jetstream::Context,
    prefix: Prefix,
    /// Views published per round, at most.
    batch: usize,
    /// Messages made of views taken from the queue, not yet acknowledged by JetStream (each
    /// goes again under its own id until it is).
    pending: Vec<ProductViewed>,
}

impl Publisher {
    async fn run(mut self, mut queue: mpsc::Receiver<Uuid>, shutdown: CancellationToken) {
        let mut streams_ready = false;
        let mut backoff = Duration::from_millis(100);
        let mut skus = Vec::with_capacity(self.batch);
        loop {
            let round = tokio::time::Instant::now();
            let held = self.held();
            if held < self.batch {
                let room = self.batch - held;
                if self.pending.is_empty() {
                    tokio::select! {
                        n = queue.recv_many(&mut skus, room) => if n == 0 { break },
                        _ = shutdown.cancelled() => break,
                    }
                } else {
                    while skus.len() < room {
                        match queue.try_recv() {
                            Ok(sku) => skus.push(sku),
                            Err(_) => break,
                        }
                    }
                }
                self.pending.extend(gathered(&mut skus));
            }
            if !streams_ready {
                streams_ready = shared::nats::ensure_streams(&self.js, &self.prefix)
                    .await
                    .is_ok();
            }
            if streams_ready && self.publish().await {
                backoff = Duration::from_millis(100);
                // One round per ROUND_EVERY unless a batch is waiting: views that arrive
                // meanwhile go out together, one message per product.
                if queue.len() < self.batch {
                    tokio::select! {
                        _ = tokio::time::sleep_until(round + ROUND_EVERY) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => break,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        self.drain(queue).await;
    }

    /// Views taken from the queue and not yet acknowledged.
    fn held(&self) -> usize {
        self.pending.iter().map(|v| v.count as usize).sum()
    }

    /// Publishes the pending views; true when every one was acknowledged. Bounded in time:
    /// what is not acknowledged by then stays pending and goes again under the same id.
    async fn publish(&mut self) -> bool {
        match tokio::time::timeout(ROUND, self.publish_round()).await {
            Ok(ok) => ok,
            Err(_) => {
                tracing::warn!(
                    views = self.pending.len(),
                    "publishing views timed out; retrying"
                );
                false
            }
        }
    }

    async fn publish_round(&mut self) -> bool {
        let mut acks = Vec::with_capacity(self.pending.len());
        for view in &self.pending {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", view.view_id.to_string().as_str());
            let payload = serde_json::to_vec(view).unwrap_or_default();
            let subject = self.prefix.view_subject(&view.sku.to_string());
            match self
                .js
                .publish_with_headers(subject, headers, payload.into())
                .await
            {
                Ok(ack) => acks.push(ack),
                Err(_) => break, // NATS is away: the rest wait for the next round
            }
        }
        // The acknowledgements, awaited together.
        let acked: Vec<bool> =
            futures::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future))
                .await
                .into_iter()
                .map(|ack| ack.is_ok())
                .collect();
        let mut failed = Vec::new();
        let mut published = 0_u64;
        for (index, view) in self.pending.drain(..).enumerate() {
            if acked.get(index).copied().unwrap_or(false) {
                published += u64::from(view.count);
            } else {
                failed.push(view);
            }
        }
        metrics::counter!("query_views_published_total").increment(published);
        metrics::counter!("query_views_messages_total").increment(acked.len() as u64);
        let ok = failed.is_empty();
        if !ok {
            let views: u32 = failed.iter().map(|v| v.count).sum();
            tracing::warn!(views, "publishing views failed; retrying");
        }
        self.pending = failed;
        ok
    }

    /// On shutdown: publishes what is queued, for a bounded time.
    async fn drain(mut self, mut queue: mpsc::Receiver<Uuid>) {
        queue.close();
        let mut skus = Vec::new();
        while let Ok(sku) = queue.try_recv() {
            skus.push(sku);
        }
        self.pending.extend(gathered(&mut skus));
        let deadline = tokio::time::Instant::now() + DRAIN;
        let _ = tokio::time::timeout_at(deadline, async {
            while !self.pending.is_empty() {
                let _ = shared::nats::ensure_streams(&self.js, &self.prefix).await;
                if !self.publish_round().await {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        })
        .await;
        if !self.pending.is_empty() {
            let lost = self.held();
            tracing::error!(views = lost, "views not published at shutdown");
            metrics::counter!("query_views_dropped_total").increment(lost as u64);
        }
    }
}
