//! What keeps image storage bounded: a per-user upload quota, and a collector that removes the
//! bytes of images nothing references any more.
//!
//! Every upload is recorded in `image_uploads` (who, which blob, how many bytes, when) before
//! its bytes are stored. A user may upload `count` images and `bytes` bytes per rolling hour;
//! past either the answer is 429 `rate_limited` with `Retry-After`.
//!
//! A blob is referenced while a review that is not deleted has an attached image with its
//! digest and that image was not removed (read from the event store, the authority), or while
//! an upload of it is younger than the grace period (the upload's command may not have
//! committed yet). Every `grace / 4` the collector looks at blobs last stored more than the
//! grace period ago and removes those not referenced. Uploads and the collector take the same
//! per-blob advisory lock, so a blob is never removed between an upload storing it and that
//! upload being recorded. Every instance collects; the lock makes that safe.

use std::time::Duration;

use shared::{ApiError, blobs::Blobs};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadQuota {
    /// Images per user per hour; 0 = no limit.
    pub count: i64,
    /// Bytes per user per hour; 0 = no limit.
    pub bytes: i64,
}

const QUOTA_WINDOW: &str = "1 hour";

/// The advisory lock of one blob, for the rest of the transaction.
async fn lock_blob(conn: &mut PgConnection, sha256: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('blob:' || $1, 0))")
        .bind(sha256)
        .execute(conn)
        .await
        .map(drop)
}

/// Checks the user's quota for one more upload of `bytes`, records it and stores the bytes,
/// all under the user's and the blob's locks: parallel uploads cannot overrun the quota, and
/// the collector cannot take the blob meanwhile.
pub async fn store_upload(
    pool: &PgPool,
    blobs: &Blobs,
    quota: UploadQuota,
    user_id: Uuid,
    sha256: &str,
    bytes: Vec<u8>,
) -> Result<(), ApiError> {
    let mut tx = pool.begin().await.map_err(anyhow::Error::from)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('uploads:' || $1::text, 0))")
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(anyhow::Error::from)?;
    check_quota(&mut tx, quota, user_id, bytes.len() as i64).await?;
    sqlx::query("INSERT INTO image_uploads (user_id, sha256, bytes) VALUES ($1, $2, $3)")
        .bind(user_id)
        .bind(sha256)
        .bind(bytes.len() as i64)
        .execute(&mut *tx)
        .await
        .map_err(anyhow::Error::from)?;
    lock_blob(&mut tx, sha256)
        .await
        .map_err(anyhow::Error::from)?;
    blobs.put(sha256, bytes).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(())
}

/// 429 when one more upload of `adding` bytes would pass the quota. Also usable before the
/// body is read (with `adding` = 0) to refuse early.
pub async fn check_quota(
    conn: &mut PgConnection,
    quota: UploadQuota,
    user_id: Uuid,
    adding: i64,
) -> Result<(), ApiError> {
    if quota.count == 0 && quota.bytes == 0 {
        return Ok(());
    }
    let (count, bytes, oldest_leaves_in): (i64, i64, Option<f64>) = sqlx::query_as(&format!(
        "SELECT count(*), coalesce(sum(bytes), 0)::bigint,
                extract(epoch FROM min(uploaded_at) + interval '{QUOTA_WINDOW}' - now())::float8
         FROM image_uploads WHERE user_id = $1 AND uploaded_at > now() - interval '{QUOTA_WINDOW}'"
    ))
    .bind(user_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(anyhow::Error::from)?;
    let over_count = quota.count > 0 && count >= quota.count;
    let over_bytes = quota.bytes > 0 && bytes + adding > quota.bytes;
    if over_count || over_bytes {
        metrics::counter!("image_upload_quota_refused_total").increment(1);
        let wait = oldest_leaves_in.unwrap_or(3600.0).clamp(1.0, 3600.0).ceil() as u64;
        return Err(ApiError::RateLimited {
            retry_after_secs: wait,
        });
    }
    Ok(())
}

/// True while something may still reference the blob (see the module docs).
async fn referenced(
    conn: &mut PgConnection,
    sha256: &str,
    grace: Duration,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (
            SELECT 1 FROM events a
            WHERE a.event_type = 'ReviewImageAttached' AND a.data->>'sha256' = $1
              AND NOT EXISTS (
                SELECT 1 FROM events r
                WHERE r.aggregate_type = 'review' AND r.aggregate_id = a.aggregate_id
                  AND (r.event_type = 'ReviewDeleted'
                       OR (r.event_type = 'ReviewImageRemoved'
                           AND r.data->>'image_id' = a.data->>'image_id')))
         ) OR EXISTS (
            SELECT 1 FROM image_uploads
            WHERE sha256 = $1 AND uploaded_at > now() - make_interval(secs => $2)
         )",
    )
    .bind(sha256)
    .bind(grace.as_secs_f64())
    .fetch_one(conn)
    .await
}

/// One pass: removes unreferenced blobs older than `grace`; returns how many.
pub async fn collect(pool: &PgPool, blobs: &Blobs, grace: Duration) -> anyhow::Result<u64> {
    let mut removed = 0;
    for sha256 in blobs.older_than(grace).await? {
        let mut tx = pool.begin().await?;
        lock_blob(&mut tx, &sha256).await?;
        if !referenced(&mut tx, &sha256, grace).await? && blobs.remove(&sha256).await? {
            removed += 1;
            tracing::info!(sha256, "removed an image nothing references");
        }
        tx.commit().await?;
    }
    // The quota looks back an hour and `referenced` one grace period: older records are done.
    sqlx::query(&format!(
        "DELETE FROM image_uploads WHERE uploaded_at < now() - interval '{QUOTA_WINDOW}'
                                     AND uploaded_at < now() - make_interval(secs => $1)"
    ))
    .bind(grace.as_secs_f64())
    .execute(pool)
    .await?;
    metrics::counter!("image_blobs_collected_total").increment(removed);
    Ok(removed)
}

/// Collects every `grace / 4` (at least every second, at most every 15 minutes) until
/// `shutdown`.
pub fn spawn(pool: PgPool, blobs: Blobs, grace: Duration, shutdown: CancellationToken) {
    let every = (grace / 4).clamp(Duration::from_secs(1), Duration::from_secs(15 * 60));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(e) = collect(&pool, &blobs, grace).await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "collecting unreferenced images failed; trying again later"
                );
            }
        }
    });
}
