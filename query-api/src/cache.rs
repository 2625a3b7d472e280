//! What keeps reads going while MongoDB is briefly unreachable: a bounded in-process cache of
//! recently read public answers, and a breaker that stops sending reads to a store that just
//! failed (for one second), so requests get the cached answer or 503 at once instead of
//! waiting for a timeout each.

use std::{
    collections::{HashMap, VecDeque},
    future::IntoFuture,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;
use shared::ApiError;

/// How long reads skip the store after it failed.
const OPEN_FOR: Duration = Duration::from_secs(1);
/// How long one read may take before it counts as a failure.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// A bounded cache of JSON answers by key. Memory is bounded by `max_bytes` of serialised
/// answers; the oldest insertions go first.
#[derive(Clone)]
pub struct ReadCache {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    entries: HashMap<String, (u64, Arc<Value>, usize)>,
    order: VecDeque<(String, u64)>,
    bytes: usize,
    max_bytes: usize,
    generation: u64,
}

impl ReadCache {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
                max_bytes,
                generation: 0,
            })),
        }
    }

    pub fn put(&self, key: String, value: Arc<Value>, size: usize) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if size > inner.max_bytes {
            return;
        }
        inner.generation += 1;
        let generation = inner.generation;
        if let Some((_, _, old)) = inner.entries.insert(key.clone(), (generation, value, size)) {
            inner.bytes -= old;
        }
        inner.bytes += size;
        inner.order.push_back((key, generation));
        while inner.bytes > inner.max_bytes {
            let Some((key, generation)) = inner.order.pop_front() else {
                break;
            };
            if inner.entries.get(&key).is_some_and(|e| e.0 == generation) {
                if let Some((_, _, size)) = inner.entries.remove(&key) {
                    inner.bytes -= size;
                }
            }
        }
        // Superseded entries in `order` are skipped above; keep the queue from growing
        // without bound when the same keys are refreshed over and over.
        if inner.order.len() > 4 * inner.entries.len() + 1024 {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|(key, generation)| entries.get(key).is_some_and(|e| e.0 == *generation));
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        let inner = self.inner.lock().ok()?;
        inner.entries.get(key).map(|(_, value, _)| value.clone())
    }

    pub fn remove(&self, key: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            if let Some((_, _, size)) = inner.entries.remove(key) {
                inner.bytes -= size;
            }
        }
    }
}

/// Runs reads against the store unless it failed within the last second.
#[derive(Clone, Default)]
pub struct Breaker {
    failed_at: Arc<Mutex<Option<Instant>>>,
}

impl Breaker {
    pub async fn run<T, F>(&self, read: F) -> Result<T, ApiError>
    where
        F: IntoFuture<Output = mongodb::error::Result<T>>,
    {
        let open = self
            .failed_at
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() < OPEN_FOR);
        if open {
            return Err(unavailable());
        }
        let outcome = match tokio::time::timeout(READ_TIMEOUT, read).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {READ_TIMEOUT:?}"),
        };
        tracing::warn!(error = outcome, "the read store failed");
        metrics::counter!("query_store_failures_total").increment(1);
        if let Ok(mut at) = self.failed_at.lock() {
            *at = Some(Instant::now());
        }
        Err(unavailable())
    }
}

/// 503 `unavailable`, to retry shortly.
pub fn unavailable() -> ApiError {
    ApiError::Unavailable {
        detail: "the read store is unavailable".into(),
        retry_after_secs: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(n: i64) -> Arc<Value> {
        Arc::new(serde_json::json!(n))
    }

    #[test]
    fn the_oldest_entries_go_when_the_budget_is_spent() {
        let cache = ReadCache::new(30);
        for n in 0..5 {
            cache.put(format!("k{n}"), value(n), 10);
        }
        assert!(cache.get("k0").is_none());
        assert!(cache.get("k1").is_none());
        assert_eq!(cache.get("k4").as_deref(), Some(&serde_json::json!(4)));
        assert_eq!(cache.get("k2").as_deref(), Some(&serde_json::json!(2)));
    }

    #[test]
    fn refreshing_a_key_keeps_one_entry_and_its_latest_value() {
        let cache = ReadCache::new(25);
        for n in 0..1000 {
            cache.put("same".into(), value(n), 10);
        }
        assert_eq!(cache.get("same").as_deref(), Some(&serde_json::json!(999)));
        let inner = cache.inner.lock().unwrap();
        assert_eq!(inner.bytes, 10);
        assert!(inner.order.len() <= 4 + 1024 + 1);
    }

    #[test]
    fn an_entry_larger_than_the_budget_is_not_kept() {
        let cache = ReadCache::new(5);
        cache.put("big".into(), value(1), 10);
        assert!(cache.get("big").is_none());
    }
}
