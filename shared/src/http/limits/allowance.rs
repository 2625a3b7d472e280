//! One per-minute allowance counted per client, by governor's keyed GCRA ("the leaky bucket
//! as a meter"): a client may use its whole allowance in a burst, then gets one more request
//! every `60 s / limit`.
//!
//! governor remembers every client it has seen until told to forget, so the map is kept
//! bounded here: every [`SIZE_CHECK_EVERY`] requests the allowance looks at how many clients it
//! remembers, and once that reaches the cap (`MAX_CLIENTS` in production) it forgets the idle
//! ones (governor's `retain_recent`: those whose allowance has been whole for a replenish
//! interval); if nearly all are still active (a flood of distinct addresses) it forgets them
//! all: a moment of leniency rather than unbounded memory.

use std::{
    hash::Hash,
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use governor::{
    Quota,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    nanos::Nanos,
    state::{
        StateStore,
        keyed::{DashMapStateStore, ShrinkableKeyedStateStore},
    },
};

use super::Decision;

/// Clients one allowance remembers before it forgets idle ones.
const MAX_CLIENTS: usize = 100_000;
/// Requests between two looks at the number of clients remembered: the map's `len()` visits
/// every shard, too dear to do on every request. The map may pass the cap by this many.
const SIZE_CHECK_EVERY: u64 = 256;

/// `limit` requests per minute per client `K`.
pub(super) struct Allowance<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    quota: Quota,
    limiter: governor::RateLimiter<K, Clients<K>, C, StateInformationMiddleware>,
    /// The limiter's own store, kept to forget every client at once (governor can only drop
    /// idle ones).
    clients: Clients<K>,
    max_clients: usize,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone, C: Clock> Allowance<K, C> {
    /// `None` when `per_minute` is 0 (no limit).
    pub(super) fn per_minute(per_minute: u32, clock: C) -> Option<Self> {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute)?);
        let clients = Clients::default();
        let limiter = governor::RateLimiter::new(quota, clients.clone(), clock);
        Some(Self {
            quota,
            limiter,
            clients,
            max_clients: MAX_CLIENTS,
            checks: AtomicU64::new(0),
        })
    }

    /// Counts one request of `client`.
    pub(super) fn check(&self, client: &K) -> Decision {
        let limit = self.quota.burst_size().get();
        let interval = self.quota.replenish_interval();
        let decision = match self.limiter.check_key(client) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit,
                    remaining,
                    // One interval per request used. The snapshot counts whole requests only,
                    // so this may be up to one interval later than the exact time.
                    reset_secs: ceil_secs(interval * limit.saturating_sub(remaining)),
                    retry_after_secs: 0,
                }
            }
            Err(refused) => {
                let wait = refused.wait_time_from(self.limiter.clock().now());
                Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    // Once the next request may come, the rest of the allowance follows.
                    reset_secs: ceil_secs(wait + interval * (limit - 1)),
                    retry_after_secs: ceil_secs(wait).max(1),
                }
            }
        };
        self.forget_clients_when_full();
        decision
    }

    fn forget_clients_when_full(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SIZE_CHECK_EVERY != 0
            || self.limiter.len() < self.max_clients
        {
            return;
        }
        self.limiter.retain_recent();
        if self.limiter.len() >= self.max_clients * 9 / 10 {
            self.clients.0.clear();
        }
        self.limiter.shrink_to_fit();
    }
}

/// governor's DashMap store behind an `Arc`, so that [`Allowance`] keeps a handle on the store
/// it gives the limiter.
struct Clients<K: Hash + Eq + Clone>(Arc<DashMapStateStore<K>>);

impl<K: Hash + Eq + Clone> Default for Clients<K> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<K: Hash + Eq + Clone> Clone for Clients<K> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<K: Hash + Eq + Clone> StateStore for Clients<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for Clients<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&*self.0, drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&*self.0);
    }

    fn len(&self) -> usize {
        ShrinkableKeyedStateStore::len(&*self.0)
    }

    fn is_empty(&self) -> bool {
        ShrinkableKeyedStateStore::is_empty(&*self.0)
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn three_per_minute() -> (Allowance<String, FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let allowance = Allowance::per_minute(3, clock.clone()).unwrap();
        (allowance, clock)
    }

    fn key(s: &str) -> String {
        s.to_owned()
    }

    #[test]
    fn no_limit_is_no_allowance() {
        assert!(Allowance::<String, _>::per_minute(0, FakeRelativeClock::default()).is_none());
    }

    #[test]
    fn a_burst_of_the_limit_is_allowed_and_the_next_request_refused_for_one_interval() {
        let (allowance, _) = three_per_minute();
        let decisions: Vec<Decision> = (0..4).map(|_| allowance.check(&key("a"))).collect();
        assert!(decisions[..3].iter().all(|d| d.allowed));
        assert_eq!(
            decisions
                .iter()
                .map(|d| (d.limit, d.remaining, d.reset_secs))
                .collect::<Vec<_>>(),
            [(3, 2, 20), (3, 1, 40), (3, 0, 60), (3, 0, 60)],
            "limit, remaining, seconds until the allowance is whole"
        );
        assert!(!decisions[3].allowed);
        assert_eq!(
            decisions[3].retry_after_secs, 20,
            "one request's worth: 60 s / 3"
        );
    }

    #[test]
    fn the_allowance_grows_back_one_request_per_interval() {
        let (allowance, clock) = three_per_minute();
        for _ in 0..3 {
            allowance.check(&key("a"));
        }
        clock.advance(Duration::from_secs(5));
        let refused = allowance.check(&key("a"));
        assert_eq!((refused.retry_after_secs, refused.reset_secs), (15, 55));
        clock.advance(Duration::from_secs(15));
        let allowed = allowance.check(&key("a"));
        assert!(allowed.allowed);
        assert_eq!((allowed.remaining, allowed.reset_secs), (0, 60));
        assert!(!allowance.check(&key("a")).allowed);
        clock.advance(Duration::from_secs(60));
        assert_eq!(allowance.check(&key("a")).remaining, 2, "whole again");
    }

    #[test]
    fn clients_are_counted_apart() {
        let (allowance, _) = three_per_minute();
        for _ in 0..4 {
            allowance.check(&key("a"));
        }
        let other = allowance.check(&key("b"));
        assert!(other.allowed);
        assert_eq!(other.remaining, 2);
    }

    #[test]
    fn a_flood_of_distinct_clients_keeps_the_map_bounded() {
        let (mut allowance, _) = three_per_minute();
        allowance.max_clients = 1_000;
        for n in 0..20_000 {
            allowance.check(&format!("203.0.{}.{}", n / 256, n % 256));
            let remembered = allowance.limiter.len();
            assert!(
                remembered <= 1_000 + SIZE_CHECK_EVERY as usize,
                "{remembered} clients remembered after {n}"
            );
        }
    }

    #[test]
    fn idle_clients_are_forgotten_first_once_the_map_is_full() {
        let (mut allowance, clock) = three_per_minute();
        allowance.max_clients = 1_000;
        for n in 0..1_000 {
            allowance.check(&format!("203.0.{}.{}", n / 256, n % 256));
        }
        clock.advance(Duration::from_secs(120));
        for n in 0..100 {
            allowance.check(&format!("198.51.100.{n}"));
        }
        assert_eq!(allowance.limiter.len(), 100, "only the active clients");
        assert_eq!(allowance.check(&key("198.51.100.7")).remaining, 1);
    }
}
