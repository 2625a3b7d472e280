//! How far the read models are: the projector's low-water checkpoint, followed by polling
//! MongoDB — every 250 ms at rest, every 5 ms while a request waits for a position
//! (`X-Min-Position`). One poller per process, however many requests wait.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use mongodb::Database;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

const AT_REST: Duration = Duration::from_millis(250);
const WAITED_ON: Duration = Duration::from_millis(5);

#[derive(Clone)]
pub struct ProjectionWatch {
    position: watch::Receiver<i64>,
    waiters: Arc<AtomicUsize>,
    wake: Arc<Notify>,
}

impl ProjectionWatch {
    pub fn spawn(db: Database, shutdown: CancellationToken) -> Self {
        let (sender, position) = watch::channel(0);
        let watch = Self {
            position,
            waiters: Arc::new(AtomicUsize::new(0)),
            wake: Arc::new(Notify::new()),
        };
        let (waiters, wake) = (watch.waiters.clone(), watch.wake.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(applied) = shared::read_model::applied_position(&db).await {
                    sender.send_if_modified(|seen| {
                        let moved = applied > *seen;
                        *seen = (*seen).max(applied);
                        moved
                    });
                }
                let pause = if waiters.load(Ordering::Relaxed) > 0 {
                    WAITED_ON
                } else {
                    AT_REST
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
