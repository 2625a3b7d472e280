//! Slowing down password guessing without locking anyone else out.
//!
//! Failed logins are counted per (username, client address) and per client address, never per
//! username alone: guesses at the superuser from one address do not refuse the superuser's own
//! login from another, and one address's failures do not refuse other addresses. Each key gets
//! a few free attempts; after that the next attempt must wait a delay that doubles with each
//! further failure (1 s, 2 s, 4 s, … up to a cap), so the key slows down rather than locks.
//! A key is forgotten after a quiet window.
//!
//! An attempt is *reserved* before the password hash runs, atomically for both keys, and an
//! attempt in flight counts as a failure until it is known to be none: parallel guesses get no
//! more tries than sequential ones. A successful login clears its (username, address) key.
//!
//! Kept in memory per instance, bounded (`max_keys`). Written by hand rather than with
//! governor: the reservation spans two keys and the delay grows with failures, neither of
//! which a GCRA limiter models.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    /// Attempts per (username, address) before delays start.
    pub free_per_user_address: u32,
    /// Attempts per address (any usernames) before delays start.
    pub free_per_address: u32,
    /// The first delay; each further failure doubles it.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A key with no failure for this long is forgotten.
    pub window: Duration,
    pub max_keys: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            free_per_user_address: 5,
            free_per_address: 50,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            window: Duration::from_secs(15 * 60),
            max_keys: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    in_flight: u32,
    last_failure: Instant,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            in_flight: 0,
            last_failure: now,
        }
    }

    /// `Err(wait)` when this key may not try now.
    fn admits(&self, free: u32, config: &ThrottleConfig, now: Instant) -> Result<(), Duration> {
        if self.failures + self.in_flight < free {
            return Ok(());
        }
        let next = self.last_failure + delay_after(self.failures.saturating_sub(free), config);
        if self.in_flight > 0 {
            // Past the free attempts only one may be in flight; the next can come at the
            // earliest one delay after it fails.
            let after_it = delay_after(
                (self.failures + self.in_flight).saturating_sub(free),
                config,
            );
            Err(after_it.max(next.saturating_duration_since(now)))
        } else if now >= next {
            Ok(())
        } else {
            Err(next - now)
        }
    }
}

/// The delay after `beyond` failures past the free ones (`beyond` = 0: the first delay).
fn delay_after(beyond: u32, config: &ThrottleConfig) -> Duration {
    let factor = 1_u32.checked_shl(beyond.min(31)).unwrap_or(u32::MAX);
    config
        .base_delay
        .checked_mul(factor)
        .unwrap_or(config.max_delay)
        .min(config.max_delay)
}

type Keys = HashMap<String, Entry>;

#[derive(Clone)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    keys: Arc<Mutex<Keys>>,
}

/// A reserved login attempt. Report its outcome with [`Attempt::failed`] or
/// [`Attempt::succeeded`]; dropped unreported (the request was cancelled or failed for
/// another reason), it is released without counting.
pub struct Attempt {
    throttle: LoginThrottle,
    pair: String,
    address: String,
    reported: bool,
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            keys: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves one attempt of `username` from `address`, or `Err(seconds to wait)`.
    /// `username` must be the normalised one the login looks up.
    pub fn reserve(&self, username: &str, address: &str) -> Result<Attempt, u64> {
        let pair = format!("{username}@{address}");
        let address = format!("addr:{address}");
        let now = Instant::now();
        let config = &self.config;
        let mut keys = self.lock();
        let fresh = |keys: &Keys, key: &str| {
            keys.get(key)
                .copied()
                .filter(|e| e.in_flight > 0 || now.duration_since(e.last_failure) < config.window)
                .unwrap_or_else(|| Entry::new(now))
        };
        let pair_entry = fresh(&keys, &pair);
        let address_entry = fresh(&keys, &address);
        let verdicts = [
            pair_entry.admits(config.free_per_user_address, config, now),
            address_entry.admits(config.free_per_address, config, now),
        ];
        if let Some(wait) = verdicts.iter().filter_map(|v| v.err()).max() {
            return Err(ceil_secs(wait).max(1));
        }
        if keys.len() + 2 > config.max_keys {
            shed(&mut keys, config, now);
        }
        for (key, mut entry) in [(&pair, pair_entry), (&address, address_entry)] {
            entry.in_flight += 1;
            keys.insert(key.clone(), entry);
        }
        Ok(Attempt {
            throttle: self.clone(),
            pair,
            address,
            reported: false,
        })
    }

    fn settle(&self, attempt: &Attempt, outcome: Outcome) {
        let now = Instant::now();
        let mut keys = self.lock();
        for key in [&attempt.pair, &attempt.address] {
            let Some(entry) = keys.get_mut(key.as_str()) else {
                continue;
            };
            entry.in_flight = entry.in_flight.saturating_sub(1);
            if outcome == Outcome::Failed {
                entry.failures = entry.failures.saturating_add(1);
                entry.last_failure = now;
            }
            if entry.in_flight == 0 && entry.failures == 0 {
                keys.remove(key.as_str());
            }
        }
        if outcome == Outcome::Succeeded {
            // The right password from this address: its guesses at this name are forgiven.
            // The address's own count stays (one good account must not launder a scan).
            if keys.get(&attempt.pair).is_some_and(|e| e.in_flight == 0) {
                keys.remove(&attempt.pair);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Failed,
    Succeeded,
    Released,
}

impl Attempt {
    pub fn failed(mut self) {
        self.reported = true;
        self.throttle.settle(&self, Outcome::Failed);
    }

    pub fn succeeded(mut self) {
        self.reported = true;
        self.throttle.settle(&self, Outcome::Succeeded);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.reported {
            self.throttle.settle(self, Outcome::Released);
        }
    }
}

/// Makes room: forgets quiet keys, and if most are busy, the half with the fewest failures
/// (an attacker filling the table can at worst make some keys start over, never refuse one).
fn shed(keys: &mut Keys, config: &ThrottleConfig, now: Instant) {
    keys.retain(|_, e| e.in_flight > 0 || now.duration_since(e.last_failure) < config.window);
    if keys.len() < config.max_keys * 9 / 10 {
        return;
    }
    let mut failures: Vec<u32> = keys.values().map(|e| e.failures).collect();
    let middle = failures.len() / 2;
    let (_, median, _) = failures.select_nth_unstable(middle);
    let median = *median;
    keys.retain(|_, e| e.in_flight > 0 || e.failures > median);
    if keys.len() >= config.max_keys * 9 / 10 {
        keys.retain(|_, e| e.in_flight > 0);
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(ThrottleConfig {
            free_per_user_address: 3,
            free_per_address: 10,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(60),
            window: Duration::from_secs(60),
            max_keys: 1000,
        })
    }

    #[test]
    fn failures_slow_one_name_from_one_address_and_no_one_else() {
        let throttle = throttle();
        for _ in 0..3 {
            throttle.reserve("ana", "1.2.3.4").unwrap().failed();
        }
        let wait = throttle.reserve("ana", "1.2.3.4").err().unwrap();
        assert_eq!(wait, 1, "a short delay, not a lock");
        assert!(
            throttle.reserve("ana", "5.6.7.8").is_ok(),
            "the same name from elsewhere"
        );
        assert!(
            throttle.reserve("bob", "1.2.3.4").is_ok(),
            "another name from here"
        );
        std::thread::sleep(Duration::from_millis(250));
        throttle.reserve("ana", "1.2.3.4").unwrap().succeeded();
        for _ in 0..3 {
            throttle.reserve("ana", "1.2.3.4").unwrap().failed();
        }
    }

    #[test]
    fn the_delay_doubles_with_each_failure_past_the_free_ones() {
        let config = ThrottleConfig {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(600),
            ..ThrottleConfig::default()
        };
        let delays: Vec<u64> = (0..12).map(|n| delay_after(n, &config).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        assert_eq!(delay_after(u32::MAX, &config).as_secs(), 600);
    }

    #[test]
    fn attempts_in_flight_count_so_parallel_guesses_get_no_extra_tries() {
        let throttle = throttle();
        let reserved: Vec<Attempt> = (0..20)
            .filter_map(|_| throttle.reserve("ana", "1.2.3.4").ok())
            .collect();
        assert_eq!(reserved.len(), 3, "the free attempts, and no more");
        drop(reserved); // cancelled, not failed: released without counting
        assert!(throttle.reserve("ana", "1.2.3.4").is_ok());
    }

    #[test]
    fn an_address_is_slowed_whatever_names_it_tries() {
        let throttle = throttle();
        for n in 0..10 {
            throttle
                .reserve(&format!("u{n}"), "9.9.9.9")
                .unwrap()
                .failed();
        }
        assert!(throttle.reserve("u99", "9.9.9.9").is_err());
        assert!(throttle.reserve("u99", "9.9.9.8").is_ok());
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_the_worst_offenders() {
        let throttle = LoginThrottle::new(ThrottleConfig {
            max_keys: 100,
            ..ThrottleConfig::default()
        });
        for _ in 0..5 {
            throttle.reserve("root", "6.6.6.6").unwrap().failed();
        }
        for n in 0..1000 {
            throttle
                .reserve(&format!("u{n}"), &format!("10.0.{}.{}", n / 250, n % 250))
                .unwrap()
                .failed();
        }
        assert!(throttle.len() <= 100, "{} keys", throttle.len());
        assert!(
            throttle.reserve("root", "6.6.6.6").is_err(),
            "the persistent guesser is still slowed"
        );
    }
}
