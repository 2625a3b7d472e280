//! Throttling failed logins, per username and per client address, in fixed windows. Kept in
//! memory per instance: behind a load balancer the effective limit is per instance.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct LoginThrottle {
    window: Duration,
    per_user: u32,
    per_address: u32,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl LoginThrottle {
    pub fn new(window: Duration, per_user: u32, per_address: u32) -> Self {
        Self {
            window,
            per_user,
            per_address,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when either key has used up its failures.
    pub fn check(&self, username: &str, address: &str) -> Result<(), u64> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let wait = [
            (format!("user:{username}"), self.per_user),
            (format!("addr:{address}"), self.per_address),
        ]
        .into_iter()
        .filter_map(|(key, limit)| {
            let (start, count) = failures.get(&key)?;
            let left = self.window.checked_sub(now.duration_since(*start))?;
            (*count >= limit).then_some(left.as_secs().max(1))
        })
        .max();
        wait.map_or(Ok(()), Err)
    }

    pub fn record_failure(&self, username: &str, address: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for key in [format!("user:{username}"), format!("addr:{address}")] {
            let entry = failures.entry(key).or_insert((now, 0));
            if now.duration_since(entry.0) >= self.window {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
        if failures.len() > 100_000 {
            failures.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
    }

    pub fn record_success(&self, username: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&format!("user:{username}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_applies_per_username_and_success_resets_it() {
        let throttle = LoginThrottle::new(Duration::from_secs(60), 3, 100);
        for _ in 0..3 {
            assert!(throttle.check("ana", "1.2.3.4").is_ok());
            throttle.record_failure("ana", "1.2.3.4");
        }
        assert!(
            throttle.check("ana", "5.6.7.8").is_err(),
            "the username is throttled anywhere"
        );
        assert!(
            throttle.check("bob", "1.2.3.4").is_ok(),
            "another user is not"
        );
        throttle.record_success("ana");
        assert!(throttle.check("ana", "1.2.3.4").is_ok());
    }

    #[test]
    fn the_limit_applies_per_address() {
        let throttle = LoginThrottle::new(Duration::from_secs(60), 100, 2);
        throttle.record_failure("a1", "9.9.9.9");
        throttle.record_failure("a2", "9.9.9.9");
        let wait = throttle.check("a3", "9.9.9.9").unwrap_err();
        assert!((1..=60).contains(&wait));
    }
}
