//! How far the read models are: the projector announces its applied position on NATS
//! (`projection.applied`) each time its checkpoint moves, and the checkpoint itself is polled
//! in MongoDB — every 250 ms at rest; while a request waits for a position (`X-Min-Position`),
//! every 50 ms as a fallback for a lost announcement, or every 5 ms while the announcements are
//! not followed. One follower and one poller per process, however many requests wait.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::StreamExt as _;
use mongodb::Database;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

const AT_REST: Duration = Duration::from_millis(250);
const WAITED_ON: Duration = Duration::from_millis(50);
const WAITED_ON_UNANNOUNCED: Duration = Duration::from_millis(5);

#[derive(Clone)]
pub struct ProjectionWatch {
    position: watch::Receiver<i64>,
    waiters: Arc<AtomicUsize>,
    wake: Arc<Notify>,
}

impl ProjectionWatch {
    /// Follows the checkpoint in `db`, and the announcements on `announced` (a NATS client
    /// and the subject) when given.
    pub fn spawn(
        db: Database,
        announced: Option<(async_nats::Client, String)>,
        shutdown: CancellationToken,
    ) -> Self {
        let (sender, position) = watch::channel(0);
        let sender = Arc::new(sender);
        let watch = Self {
            position,
            waiters: Arc::new(AtomicUsize::new(0)),
            wake: Arc::new(Notify::new()),
        };
        let following = Arc::new(AtomicBool::new(false));
        if let Some((nats, subject)) = announced {
            let (sender, following, shutdown) =
                (sender.clone(), following.clone(), shutdown.clone());
            tokio::spawn(async move {
                shared::service::keep_running("following the applied position", &shutdown, || {
                    follow(&nats, &subject, &sender, &following, &shutdown)
                })
                .await;
            });
        }
        let (waiters, wake) = (watch.waiters.clone(), watch.wake.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(applied) = shared::read_model::applied_position(&db).await {
                    advance(&sender, applied);
                }
                let pause = match (
                    waiters.load(Ordering::Relaxed),
                    following.load(Ordering::Relaxed),
                ) {
                    (0, _) => AT_REST,
                    (_, true) => WAITED_ON,
                    (_, false) => WAITED_ON_UNANNOUNCED,
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        });
        watch
    }

    /// Told each time the applied position moves.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.position.clone()
    }

    /// The position the read models have applied, as last seen.
    pub fn current(&self) -> i64 {
        *self.position.borrow()
    }

    /// Waits until the read models have applied `wanted`, at most `within`; the position seen
    /// last when it gives up.
    pub async fn wait_for(&self, wanted: i64, within: Duration) -> Result<i64, i64> {
        let seen = self.current();
        if seen >= wanted {
            return Ok(seen);
        }
        let _waiting = Waiting::new(&self.waiters);
        self.wake.notify_one();
        let mut position = self.position.clone();
        match tokio::time::timeout(within, position.wait_for(|p| *p >= wanted)).await {
            Ok(Ok(seen)) => Ok(*seen),
            _ => Err(self.current()),
        }
    }
}

/// Counts a waiting request for as long as it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Moves the position forward (never back) to `applied`.
fn advance(sender: &watch::Sender<i64>, applied: i64) {
    sender.send_if_modified(|seen| {
        let moved = applied > *seen;
        *seen = (*seen).max(applied);
        moved
    });
}

/// Takes the projector's announcements until the subscription ends (`Err`) or shutdown.
async fn follow(
    nats: &async_nats::Client,
    subject: &str,
    sender: &watch::Sender<i64>,
    following: &AtomicBool,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut announcements = nats.subscribe(subject.to_owned()).await?;
    following.store(true, Ordering::Relaxed);
    let outcome = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            announcement = announcements.next() => match announcement {
                Some(message) => {
                    let applied = std::str::from_utf8(&message.payload)
                        .ok()
                        .and_then(|p| p.parse::<i64>().ok());
                    if let Some(applied) = applied {
                        advance(sender, applied);
                    }
                }
                None => break Err(anyhow::anyhow!("the subscription ended")),
            },
        }
    };
    following.store(false, Ordering::Relaxed);
    outcome
}
