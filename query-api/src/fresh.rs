//! Answers kept in memory and served without the store while the change feed
//! ([`crate::feed`]) proves them current: an answer read at projection position `p` is served
//! to a reader told `X-Projection-Position: r` only if the feed has seen every event up to
//! `r` and none it depends on after `p`, and the read models are still in the collections it
//! was read from (a rebuild's switch makes every answer a miss). So an answer is never older
//! than the position it is served with, and `X-Min-Position` still holds.
//!
//! The same entries, current or not, are what a reader gets while MongoDB is unreachable.
//! Memory is bounded by `QUERY_CACHE_BYTES` (serialised size of the answers), evicted by
//! moka (TinyLFU admission, LRU eviction). Each answer is kept serialised with its ETag, so a
//! hit costs no serialisation or hashing.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use shared::read_model::Collections;

use crate::{
    feed::{Depends, ReadAt},
    http::Rendered,
};

/// One kept answer.
#[derive(Debug)]
pub struct Kept {
    pub value: Arc<Value>,
    /// `value` serialised, with its ETag.
    pub body: Rendered,
    /// The body last served with another count in place of one of its fields (a product's
    /// views move faster than its document): rendered once per count, not per request.
    recounted: Mutex<Option<(i64, Rendered)>>,
    /// The projection position when it was read: the answer reflects at least this much.
    pub position: i64,
    /// The change feed's epoch then, if it was following (else never proven current).
    pub read_at: Option<ReadAt>,
    pub depends: Depends,
    pub collections: Arc<Collections>,
}

impl Kept {
    pub fn new(
        value: Arc<Value>,
        position: i64,
        read_at: Option<ReadAt>,
        depends: Depends,
        collections: Arc<Collections>,
    ) -> Self {
        Self {
            body: Rendered::of(&value),
            value,
            recounted: Mutex::new(None),
            position,
            read_at,
            depends,
            collections,
        }
    }

    /// The body with the whole-number field `field` set to `count`.
    pub fn counted(&self, field: &str, count: i64) -> Rendered {
        if self.value.get(field).and_then(Value::as_i64) == Some(count) {
            return self.body.clone();
        }
        let mut recounted = self.recounted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, body)) = recounted.as_ref().filter(|(at, _)| *at == count) {
            return body.clone();
        }
        let mut value = (*self.value).clone();
        value[field] = Value::from(count);
        let body = Rendered::of(&value);
        *recounted = Some((count, body.clone()));
        body
    }

    fn weight(&self) -> u32 {
        // Twice the body: a recounted copy may be kept beside it.
        u32::try_from(self.body.bytes().len().saturating_mul(2)).unwrap_or(u32::MAX)
    }
}

#[derive(Clone)]
pub struct Answers {
    cache: moka::sync::Cache<String, Arc<Kept>>,
    /// One store read at a time per key.
    refreshing: moka::sync::Cache<String, Arc<tokio::sync::Mutex<()>>>,
}

impl Answers {
    pub fn new(max_bytes: u64) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &String, kept: &Arc<Kept>| {
                    kept.weight()
                        .saturating_add(u32::try_from(key.len()).unwrap_or(u32::MAX))
                        .saturating_add(200)
                })
                .build(),
            refreshing: moka::sync::Cache::builder()
                .max_capacity(REFRESH_LOCKS)
                .time_to_idle(std::time::Duration::from_secs(60))
                .build(),
        }
    }

    /// The lock held while `key` is read from the store.
    pub fn refresh_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.refreshing
            .get_with_by_ref(key, || Arc::new(tokio::sync::Mutex::new(())))
    }

    pub fn get(&self, key: &str) -> Option<Arc<Kept>> {
        self.cache.get(key)
    }

    /// Keeps `kept` unless the answer kept under `key` was read later (kept answers only
    /// move forward, whatever order two reads of one key finish in).
    pub fn put(&self, key: String, kept: Arc<Kept>) {
        self.cache.entry(key).and_compute_with(|existing| {
            let newer = existing.is_none_or(|e| e.value().position <= kept.position);
            if newer {
                moka::ops::compute::Op::Put(kept)
            } else {
                moka::ops::compute::Op::Nop
            }
        });
    }

    pub fn forget(&self, key: &str) {
        self.cache.invalidate(key);
    }

    /// Entries and weighed bytes (for `/metrics`; moka counts lazily).
    pub fn usage(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        (self.cache.entry_count(), self.cache.weighted_size())
    }
}

/// Keys being read at once, at most (an evicted lock only lets a second read through).
const REFRESH_LOCKS: u64 = 10_000;

/// The key of one product's detail (dropped as soon as the product changes).
pub fn product_key(sku: &uuid::Uuid) -> String {
    format!("product:{sku}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(n: usize) -> Kept {
        Kept::new(
            Arc::new(serde_json::json!("x".repeat(n))),
            n as i64,
            None,
            Depends::Products,
            Arc::default(),
        )
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let answers = Answers::new(100_000);
        for n in 0..1000 {
            answers.put(format!("k{n}"), Arc::new(kept(1000)));
        }
        let (entries, bytes) = answers.usage();
        assert!(bytes <= 100_000, "{bytes}");
        assert!(entries < 100, "{entries}");
    }

    #[test]
    fn a_recounted_body_is_the_value_with_the_count_and_changes_its_tag() {
        let kept = Kept::new(
            Arc::new(serde_json::json!({ "name": "X", "views": 3 })),
            1,
            None,
            Depends::Products,
            Arc::default(),
        );
        let same = kept.counted("views", 3);
        assert_eq!(same.etag(), kept.body.etag());
        let more = kept.counted("views", 4);
        assert_ne!(more.etag(), kept.body.etag());
        assert_eq!(
            serde_json::from_slice::<Value>(more.bytes()).unwrap(),
            serde_json::json!({ "name": "X", "views": 4 })
        );
        assert_eq!(kept.counted("views", 4).etag(), more.etag());
    }

    #[test]
    fn a_refreshed_key_keeps_its_latest_answer() {
        let answers = Answers::new(1 << 20);
        for n in 0..100 {
            answers.put("same".into(), Arc::new(kept(n)));
        }
        assert_eq!(
            answers.get("same").unwrap().value.as_str().map(str::len),
            Some(99)
        );
        assert_eq!(answers.usage().0, 1);
    }
}
