//! Idempotent commands. A client that sends `Idempotency-Key` gets the first answer to that
//! key again, however often it retries, instead of a second write.
//!
//! The key is claimed inside the command's own transaction, before any event is appended, and
//! the answer is stored in that same transaction. A concurrent request with the same key
//! blocks on the claim until the first commits, then replays its answer; if the first rolls
//! back (the command was rejected) the second runs as if it were first. Keys are kept for
//! [`RETENTION_HOURS`]; an older key counts as unused.

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, types::Json};

pub const RETENTION_HOURS: i32 = 24;

/// A key as the client sent it, scoped to who sent it, with the request it was sent with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// The user id, or `anonymous`: one client's keys never collide with another's.
    pub scope: String,
    pub key: String,
    /// Method, path and a digest of the body: the same key with another request is refused.
    pub fingerprint: String,
}

/// A stored answer, replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: run the command, then [`record`] its answer before committing.
    Fresh,
    /// Seen before: answer with this instead of running the command.
    Replay(StoredResponse),
    /// Seen before with a different request.
    Mismatch,
}

#[derive(sqlx::FromRow)]
struct StoredRow {
    fingerprint: String,
    status: Option<i16>,
    headers: Option<Json<Vec<(String, String)>>>,
    body: Option<Vec<u8>>,
}

pub async fn claim(conn: &mut PgConnection, key: &IdempotencyKey) -> Result<Claim, sqlx::Error> {
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, fingerprint) VALUES ($1, $2, $3)
         ON CONFLICT (scope, key) DO UPDATE
            SET fingerprint = EXCLUDED.fingerprint, status = NULL, headers = NULL, body = NULL,
                created_at = now()
            WHERE idempotency_keys.created_at < now() - make_interval(hours => $4)",
    )
    .bind(&key.scope)
    .bind(&key.key)
    .bind(&key.fingerprint)
    .bind(RETENTION_HOURS)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if claimed == 1 {
        return Ok(Claim::Fresh);
    }
    let stored: StoredRow = sqlx::query_as(
        "SELECT fingerprint, status, headers, body FROM idempotency_keys
         WHERE scope = $1 AND key = $2",
    )
    .bind(&key.scope)
    .bind(&key.key)
    .fetch_one(&mut *conn)
    .await?;
    if stored.fingerprint != key.fingerprint {
        return Ok(Claim::Mismatch);
    }
    Ok(Claim::Replay(StoredResponse {
        status: stored
            .status
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(500),
        headers: stored.headers.map(|Json(h)| h).unwrap_or_default(),
        body: stored.body.unwrap_or_default(),
    }))
}

/// Stores the answer to a freshly claimed key; call it in the same transaction as the claim.
pub async fn record(
    conn: &mut PgConnection,
    key: &IdempotencyKey,
    response: &StoredResponse,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET status = $3, headers = $4, body = $5
         WHERE scope = $1 AND key = $2",
    )
    .bind(&key.scope)
    .bind(&key.key)
    .bind(i16::try_from(response.status).unwrap_or(500))
    .bind(Json(&response.headers))
    .bind(&response.body)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Forgets keys past their retention; run from time to time.
pub async fn purge_expired(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
    )
    .bind(RETENTION_HOURS)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
