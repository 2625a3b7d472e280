//! What query-api knows of changes: the `EVENTS` stream, followed from its tip with an ordered
//! consumer, so that answers kept in memory ([`crate::fresh`]) are served only while nothing
//! they depend on has changed.
//!
//! The relay publishes events in position order, so once the feed has seen position `S`
//! (its *frontier*) it has seen every event at or below it that was published after it
//! subscribed. Each subscription is an *epoch*: it starts at the position of the stream's
//! last event `L`, and only answers read at a projection position of at least `L` can be
//! proven current by it. Anything unusual (the consumer fails, NATS goes away, a message
//! without a position) ends the epoch; answers of an old epoch are never served as fresh.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull::OrderedConfig};
use futures::StreamExt as _;
use shared::nats::{Prefix, headers};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a per-aggregate change is remembered. Answers of a changed aggregate are dropped
/// when the change arrives; the memory only closes the race with a read in flight (at most
/// the store's read timeout), so minutes are ample.
const REMEMBER_CHANGES: Duration = Duration::from_secs(300);
const MAX_CHANGES: u64 = 200_000;

/// What an answer depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depends {
    /// One product's document (and the review statistics it carries).
    Product(Uuid),
    /// Every product (a list page).
    Products,
    /// Reviews and the authors' names shown on them.
    Reviews,
}

/// Where an answer was read: the feed's epoch and the projection position at the time.
#[derive(Debug, Clone, Copy)]
pub struct ReadAt {
    pub epoch: u64,
    pub position: i64,
}

#[derive(Clone)]
pub struct Feed {
    state: Arc<State>,
}

struct State {
    /// The current epoch and the position it started at; `None` while not subscribed.
    epoch: RwLock<Option<(u64, i64)>>,
    frontier: AtomicI64,
    /// Recent change positions per aggregate type: an answer over a whole model is exact for a
    /// reader at position `r` when no change came between its read and `r`.
    products: Changes,
    reviews: Changes,
    users: Changes,
    changed: moka::sync::Cache<Uuid, i64>,
    /// The latest change position among the per-aggregate records that were forgotten
    /// (expired or evicted): an aggregate with no record may have changed up to here.
    forgotten: Arc<AtomicI64>,
    /// Told when an aggregate changes, so its answers can be dropped at once.
    on_change: tokio::sync::broadcast::Sender<Uuid>,
    live: AtomicBool,
}

impl Feed {
    /// Follows `EVENTS` until `shutdown`, resubscribing (a new epoch) after any failure.
    pub fn spawn(js: jetstream::Context, prefix: Prefix, shutdown: CancellationToken) -> Self {
        let feed = Self::new();
        let follower = feed.clone();
        tokio::spawn(async move { follower.follow(js, prefix, shutdown).await });
        feed
    }

    fn new() -> Self {
        let forgotten = Arc::new(AtomicI64::new(0));
        let watermark = forgotten.clone();
        Self {
            state: Arc::new(State {
                epoch: RwLock::new(None),
                frontier: AtomicI64::new(0),
                products: Changes::default(),
                reviews: Changes::default(),
                users: Changes::default(),
                changed: moka::sync::Cache::builder()
                    .max_capacity(MAX_CHANGES)
                    .time_to_live(REMEMBER_CHANGES)
                    .eviction_listener(move |_, position: i64, cause| {
                        // Replaced records were superseded by a later change; any other
                        // removal forgets one.
                        if cause != moka::notification::RemovalCause::Replaced {
                            watermark.fetch_max(position, Ordering::SeqCst);
                        }
                    })
                    .build(),
                forgotten,
                on_change: tokio::sync::broadcast::channel(1024).0,
                live: AtomicBool::new(false),
            }),
        }
    }

    /// Aggregates as they change (a receiver that lags only misses drops, not correctness:
    /// answers are checked against the feed when served).
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Uuid> {
        self.state.on_change.subscribe()
    }

    /// The epoch now, to tag an answer about to be read at projection position `position`.
    pub fn read_at(&self, position: i64) -> Option<ReadAt> {
        let epoch = *self.state.epoch.read().unwrap_or_else(|e| e.into_inner());
        epoch.map(|(epoch, _)| ReadAt { epoch, position })
    }

    /// Whether an answer read at `read` and depending on `depends` is still exact for a
    /// reader told the read models are at `reported`.
    pub fn current(&self, read: ReadAt, depends: Depends, reported: i64) -> bool {
        let Some((epoch, start)) = *self.state.epoch.read().unwrap_or_else(|e| e.into_inner())
        else {
            return false;
        };
        let state = &self.state;
        // Every event up to `reported` must have been seen by this epoch, and the answer
        // read after the epoch began: then no event it depends on is unknown.
        if read.epoch != epoch
            || read.position < start
            || state.frontier.load(Ordering::SeqCst) < reported
        {
            return false;
        }
        let unchanged = |changes: &Changes| !changes.between(read.position, reported);
        match depends {
            Depends::Product(sku) => {
                let changed = state
                    .changed
                    .get(&sku)
                    .unwrap_or_else(|| state.forgotten.load(Ordering::SeqCst));
                unchanged(&state.reviews) && changed <= read.position
            }
            Depends::Products => unchanged(&state.products) && unchanged(&state.reviews),
            Depends::Reviews => unchanged(&state.reviews) && unchanged(&state.users),
        }
    }

    /// Whether the feed is subscribed now (`/metrics`, tests).
    pub fn is_live(&self) -> bool {
        self.state.live.load(Ordering::SeqCst)
    }

    async fn follow(&self, js: jetstream::Context, prefix: Prefix, shutdown: CancellationToken) {
        let mut next_epoch = 1;
        let mut backoff = Duration::from_millis(200);
        loop {
            let outcome = self.subscribe(&js, &prefix, next_epoch, &shutdown).await;
            self.end_epoch();
            match outcome {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "the change feed stopped; resubscribing"
                    );
                    metrics::counter!("query_feed_restarts_total").increment(1);
                }
            }
            next_epoch += 1;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn end_epoch(&self) {
        self.state.live.store(false, Ordering::SeqCst);
        *self.state.epoch.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// One epoch: from the stream's tip, until a failure (`Err`) or shutdown (`Ok`).
    async fn subscribe(
        &self,
        js: &jetstream::Context,
        prefix: &Prefix,
        epoch: u64,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut stream = js
            .get_stream(prefix.events_stream())
            .await
            .context("finding the events stream")?;
        let last = stream.info().await?.state.last_sequence;
        let tip = tip_position(&stream, last).await?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: prefix.subject("events.>"),
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: last + 1,
                },
                ..Default::default()
            })
            .await
            .context("creating the change feed's consumer")?;
        let mut messages = consumer.messages().await?;
        let state = &self.state;
        state.frontier.fetch_max(tip, Ordering::SeqCst);
        *state.epoch.write().unwrap_or_else(|e| e.into_inner()) = Some((epoch, tip));
        state.live.store(true, Ordering::SeqCst);
        tracing::info!(epoch, tip, "following changes");
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                message = messages.next() => message,
            };
            let message = message
                .context("the change feed ended")?
                .map_err(|e| anyhow::anyhow!("reading the change feed: {e}"))?;
            let position = header_position(message.headers.as_ref())
                .with_context(|| format!("{} carries no Event-Position", message.subject))?;
            let Some((aggregate_type, id)) = aggregate_of(&message.subject) else {
                anyhow::bail!("{} is not an event subject", message.subject);
            };
            // A copy requeued from `DLQ` changes the read model now, though its position is
            // old (the checkpoint went past it when it was parked): count it as a change just
            // past everything seen, which no answer kept so far reflects.
            let requeued = message.headers.as_ref().is_some_and(|h| {
                h.get(headers::REQUEUED).is_some() || h.get(headers::REQUEUED_FOR).is_some()
            });
            if requeued {
                let now = self.state.frontier.load(Ordering::SeqCst) + 1;
                self.record(aggregate_type, id, now, true);
            } else {
                self.changed(aggregate_type, id, position);
            }
        }
    }

    /// Records one event: what it changed, then the frontier (in that order, so a reader who
    /// sees the frontier sees the change).
    fn changed(&self, aggregate_type: &str, id: Option<Uuid>, position: i64) {
        self.record(aggregate_type, id, position, false);
        self.state.frontier.fetch_max(position, Ordering::SeqCst);
        metrics::gauge!("query_feed_position").set(position as f64);
    }

    /// What an event changed (not the frontier). A requeued copy changes the read models at
    /// once, whatever position a reader is told: every answer read before it is stale.
    fn record(&self, aggregate_type: &str, id: Option<Uuid>, position: i64, requeued: bool) {
        let state = &self.state;
        let changes = match aggregate_type {
            "product" => Some(&state.products),
            "review" => Some(&state.reviews),
            "user" => Some(&state.users),
            _ => None,
        };
        match changes {
            Some(changes) if requeued => changes.stale_before(position),
            Some(changes) => changes.record(position),
            None => {}
        }
        if let Some(id) = id {
            let before = state.changed.get(&id).unwrap_or(0);
            state.changed.insert(id, before.max(position));
            let _ = state.on_change.send(id);
        }
    }
}

/// Change positions of one aggregate type, the latest [`RECENT_CHANGES`] of them, and the
/// highest one forgotten.
#[derive(Default)]
struct Changes {
    recent: std::sync::Mutex<std::collections::VecDeque<i64>>,
    forgotten: AtomicI64,
}

/// Change positions remembered per aggregate type.
const RECENT_CHANGES: usize = 4096;

impl Changes {
    fn record(&self, position: i64) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        // The relay publishes in position order and requeued copies are recorded past the
        // frontier, so positions arrive rising; keep the deque sorted whatever comes.
        let at = recent.partition_point(|p| *p <= position);
        recent.insert(at, position);
        if recent.len() > RECENT_CHANGES {
            if let Some(oldest) = recent.pop_front() {
                self.forgotten.fetch_max(oldest, Ordering::SeqCst);
            }
        }
    }

    /// Every answer read before `position` counts as changed, whatever its reader was told.
    fn stale_before(&self, position: i64) {
        self.forgotten.fetch_max(position, Ordering::SeqCst);
    }

    /// Whether a change may have come after `after` and at or before `until`.
    fn between(&self, after: i64, until: i64) -> bool {
        if self.forgotten.load(Ordering::SeqCst) > after {
            return true;
        }
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let first_after = recent.partition_point(|p| *p <= after);
        recent.get(first_after).is_some_and(|p| *p <= until)
    }
}

/// The position of the newest original event on the stream (copies requeued from `DLQ`
/// carry an older one), 0 for an empty stream.
async fn tip_position(stream: &jetstream::stream::Stream, last: u64) -> anyhow::Result<i64> {
    let mut sequence = last;
    while sequence > 0 && last - sequence < 1000 {
        let message = match stream.get_raw_message(sequence).await {
            Ok(message) => message,
            // Deleted by retention or by hand: look further back. Anything else (a timeout)
            // fails the epoch: a start taken too low would let an unseen event through.
            Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => {
                sequence -= 1;
                continue;
            }
            Err(e) => return Err(anyhow::anyhow!("reading the stream's last event: {e}")),
        };
        let requeued = message
            .headers
            .get(headers::REQUEUED_FOR)
            .or_else(|| message.headers.get(headers::REQUEUED))
            .is_some();
        if !requeued {
            return header_position(Some(&message.headers))
                .context("the stream's last event carries no Event-Position");
        }
        sequence -= 1;
    }
    anyhow::ensure!(
        sequence == 0,
        "no original event among the stream's last 1000"
    );
    Ok(0)
}

fn header_position(headers: Option<&async_nats::HeaderMap>) -> Option<i64> {
    headers?.get(headers::EVENT_POSITION)?.as_str().parse().ok()
}

/// `…events.<aggregate_type>.<aggregate_id>.<EventType>` → type and id.
fn aggregate_of(subject: &str) -> Option<(&str, Option<Uuid>)> {
    let mut parts = subject.rsplit('.');
    let _event_type = parts.next()?;
    let id = parts.next()?;
    let aggregate_type = parts.next()?;
    (parts.next()? == "events").then(|| (aggregate_type, Uuid::parse_str(id).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_feed(start: i64) -> Feed {
        let feed = Feed::new();
        *feed.state.epoch.write().unwrap() = Some((1, start));
        feed.state.frontier.store(start, Ordering::SeqCst);
        feed
    }

    #[test]
    fn subjects_name_the_aggregate_with_or_without_a_prefix() {
        let id = Uuid::now_v7();
        assert_eq!(
            aggregate_of(&format!("events.product.{id}.ProductUpdated")),
            Some(("product", Some(id)))
        );
        assert_eq!(
            aggregate_of(&format!("t1.events.review.{id}.ReviewPublished")),
            Some(("review", Some(id)))
        );
        assert_eq!(aggregate_of("views.product.x"), None);
    }

    #[test]
    fn an_answer_is_current_until_something_it_depends_on_changes() {
        let feed = live_feed(10);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        feed.changed("other", None, 12);
        let read = feed.read_at(12).unwrap();
        assert!(feed.current(read, Depends::Product(a), 12));
        // The reader is told of position 13, which the feed has not seen: not provable.
        assert!(!feed.current(read, Depends::Product(a), 13));
        feed.changed("product", Some(b), 13);
        assert!(
            feed.current(read, Depends::Product(a), 13),
            "another product"
        );
        assert!(!feed.current(read, Depends::Products, 13), "every list");
        feed.changed("product", Some(a), 14);
        assert!(!feed.current(read, Depends::Product(a), 14));
        assert!(feed.current(read, Depends::Reviews, 14));
        feed.changed("user", Some(b), 15);
        assert!(!feed.current(read, Depends::Reviews, 15), "author names");
    }

    #[test]
    fn a_list_read_before_a_change_is_current_for_readers_told_a_position_before_it() {
        let feed = live_feed(10);
        let read = feed.read_at(12).unwrap();
        feed.changed("product", Some(Uuid::now_v7()), 14);
        feed.changed("other", None, 16);
        assert!(
            feed.current(read, Depends::Products, 13),
            "14 is not theirs yet"
        );
        assert!(!feed.current(read, Depends::Products, 14));
        assert!(!feed.current(read, Depends::Products, 16));
        let later = feed.read_at(14).unwrap();
        assert!(feed.current(later, Depends::Products, 16));
    }

    #[test]
    fn forgotten_change_positions_make_older_list_reads_unprovable() {
        let changes = Changes::default();
        for position in 1..=(RECENT_CHANGES as i64 + 10) {
            changes.record(position * 2);
        }
        assert!(changes.between(5, 7), "forgotten");
        let last = RECENT_CHANGES as i64 * 2 + 20;
        assert!(!changes.between(last, last + 5));
        assert!(changes.between(last - 3, last));
    }

    #[test]
    fn a_forgotten_change_still_counts_for_every_product_it_may_have_been() {
        let feed = live_feed(10);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let read = feed.read_at(12).unwrap();
        feed.changed("product", Some(a), 14);
        feed.state.changed.invalidate(&a);
        feed.state.changed.run_pending_tasks();
        assert!(!feed.current(read, Depends::Product(a), 14));
        assert!(
            !feed.current(read, Depends::Product(b), 14),
            "any product may be the forgotten one"
        );
        let later = feed.read_at(14).unwrap();
        assert!(feed.current(later, Depends::Product(a), 14));
    }

    #[test]
    fn answers_read_before_the_epoch_began_or_of_another_epoch_are_never_current() {
        let feed = live_feed(10);
        let before = ReadAt {
            epoch: 1,
            position: 9,
        };
        assert!(!feed.current(before, Depends::Products, 10));
        let old = ReadAt {
            epoch: 0,
            position: 20,
        };
        assert!(!feed.current(old, Depends::Products, 10));
        feed.end_epoch();
        assert!(feed.read_at(20).is_none());
    }
}
