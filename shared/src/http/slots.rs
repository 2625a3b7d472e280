//! A cap on the live streams (SSE) one user holds open at once, and on all of them: each
//! stream holds a slot until it ends, and past the cap the answer is 429 `rate_limited`. One
//! user opening tails in a loop cannot hold the server's connections and tasks.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use uuid::Uuid;

use crate::ApiError;

/// Live streams one user may hold open at once, per process.
pub const LIVE_STREAMS_PER_USER: usize = 4;
/// Live streams a process holds open at once.
pub const LIVE_STREAMS_TOTAL: usize = 2000;

#[derive(Clone)]
pub struct StreamSlots {
    per_user: usize,
    total: usize,
    open: Arc<Mutex<HashMap<Uuid, usize>>>,
}

/// One open stream; its slot is free again when this is dropped (the stream ended).
pub struct StreamSlot {
    slots: StreamSlots,
    user: Uuid,
}

impl StreamSlots {
    pub fn standard() -> Self {
        Self::new(LIVE_STREAMS_PER_USER, LIVE_STREAMS_TOTAL)
    }

    pub fn new(per_user: usize, total: usize) -> Self {
        Self {
            per_user,
            total,
            open: Arc::default(),
        }
    }

    pub fn take(&self, user: Uuid) -> Result<StreamSlot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let all: usize = open.values().sum();
        let mine = open.get(&user).copied().unwrap_or(0);
        if mine >= self.per_user || all >= self.total {
            metrics::counter!("live_streams_refused_total").increment(1);
            return Err(ApiError::RateLimited {
                retry_after_secs: 5,
            });
        }
        *open.entry(user).or_default() += 1;
        metrics::gauge!("live_streams_open").set((all + 1) as f64);
        Ok(StreamSlot {
            slots: self.clone(),
            user,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mine) = open.get_mut(&self.user) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                open.remove(&self.user);
            }
        }
        metrics::gauge!("live_streams_open").set(open.values().sum::<usize>() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_their_share_and_a_slot_comes_back_when_its_stream_ends() {
        let slots = StreamSlots::new(2, 3);
        let (ana, bob, cy) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let first = slots.take(ana).unwrap();
        let _second = slots.take(ana).unwrap();
        assert!(slots.take(ana).is_err(), "ana's third");
        let _bobs = slots.take(bob).unwrap();
        assert!(slots.take(cy).is_err(), "the total is reached");
        drop(first);
        assert!(slots.take(ana).is_ok());
    }
}
