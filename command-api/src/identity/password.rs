//! Argon2id password hashes, bounded.
//!
//! One hash costs `m = 19 MiB` of memory and two passes (argon2's defaults, OWASP's minimum
//! for argon2id). Unbounded, 30 parallel logins would hold 570 MiB at once; so hashes run on
//! `concurrency` threads of their own (about the core count: more would not finish sooner),
//! and a request waits at most `wait` for one, else it is answered 503 `unavailable` with
//! `Retry-After`: a flood of logins slows logins, never memory.
//!
//! Dedicated threads rather than tokio's blocking pool: the pool starts a new thread whenever
//! none is idle at that instant, and every thread's allocator arena keeps its own 19 MiB after
//! the hash (measured: 60 logins, 30 at a time, left 400 MiB resident). A fixed set of threads
//! reuses the same memory for every hash. A hash in progress finishes even if the request that
//! asked is cancelled; its slot is not given to another until then.
//!
//! A login for an unknown user is checked against a dummy hash, so it takes as long as a
//! wrong password and the answer is no oracle for which usernames exist.

use std::{sync::Arc, time::Duration};

use argon2::{
    Argon2,
    password_hash::{
        PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString, rand_core::OsRng,
    },
};
use shared::ApiError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

type Job = Box<dyn FnOnce() + Send>;

#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    jobs: std::sync::mpsc::SyncSender<Job>,
    wait: Duration,
}

impl Hasher {
    pub fn new(concurrency: usize, wait: Duration) -> Self {
        let concurrency = concurrency.max(1);
        metrics::gauge!("password_hash_slots").set(concurrency as f64);
        // Only permit holders send, so the queue never holds more than `concurrency` jobs.
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(concurrency);
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for n in 0..concurrency {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // every Hasher is gone
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            jobs,
            wait,
        }
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        let acquired = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await;
        match acquired {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                metrics::counter!("password_hash_refused_total").increment(1);
                Err(ApiError::Unavailable {
                    detail: "password checks are at capacity; try again shortly".into(),
                    retry_after_secs: self.wait.as_secs().max(1),
                })
            }
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = self.permit().await?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = work();
            drop(permit);
            let _ = answer.send(outcome); // the asker may have gone
        });
        self.jobs
            .try_send(job)
            .map_err(|_| anyhow::anyhow!("the password hashing threads are gone"))?;
        answered
            .await
            .map_err(|_| anyhow::anyhow!("a password hashing thread stopped").into())
    }

    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
        })
        .await?
        .map_err(ApiError::Internal)
    }

    /// True if `password` matches `stored`. A malformed stored hash never matches.
    pub async fn verify(&self, password: String, stored: String) -> Result<bool, ApiError> {
        self.run(move || {
            PasswordHash::new(&stored).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
    }

    /// A hash of a random password, made once at start-up, to verify against when the user
    /// does not exist.
    pub async fn dummy_hash(&self) -> Result<String, ApiError> {
        self.hash(uuid::Uuid::new_v4().to_string()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = Hasher::new(1, Duration::from_secs(5));
        let stored = hasher.hash("correct horse".into()).await.unwrap();
        assert!(
            hasher
                .verify("correct horse".into(), stored.clone())
                .await
                .unwrap()
        );
        assert!(!hasher.verify("wrong horse".into(), stored).await.unwrap());
        assert!(
            !hasher
                .verify("x".into(), "not a hash".into())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn past_the_slots_and_the_wait_the_answer_is_unavailable() {
        let hasher = Hasher::new(1, Duration::from_millis(50));
        let held = hasher.permit().await.unwrap();
        let refused = hasher.hash("password".into()).await.unwrap_err();
        assert!(matches!(
            refused,
            ApiError::Unavailable {
                retry_after_secs: 1,
                ..
            }
        ));
        drop(held);
        assert!(hasher.hash("password".into()).await.is_ok());
    }
}
