//! What keeps reads going while MongoDB is briefly unreachable: a breaker that stops sending
//! reads to a store that just failed (for one second), so requests get a kept answer
//! ([`crate::fresh`]) or 503 at once instead of waiting for a timeout each.

use std::{
    future::IntoFuture,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use shared::ApiError;

/// How long reads skip the store after it failed.
const OPEN_FOR: Duration = Duration::from_secs(1);
/// How long one read may take before it counts as a failure.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

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
