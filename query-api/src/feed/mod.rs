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
//!
//! Here are the feed and its answer to "is this answer still current?"; the subscription and
//! its epochs are in `subscription`, what each event invalidates in `invalidation`, and the
//! per-type change positions that detect a change between a read and a reader in `changes`.

mod changes;
mod invalidation;
mod subscription;

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

use async_nats::jetstream;
use shared::nats::Prefix;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use changes::Changes;

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
