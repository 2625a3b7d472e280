//! Sessions and their rotating refresh tokens.
//!
//! A refresh token is 256 random bits, given to the client once and stored only as its
//! SHA-256. Every use rotates it: the old one is marked used and a new one issued. A used
//! token presented again means it leaked (or the client is confused): the whole session is
//! revoked, so the newest token stops working too.
//!
//! A session also has an absolute end (`SESSION_MAX_AGE` after its login): no refresh token
//! outlives it, and command-api refuses its access tokens from then on.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A refresh token of the session, expiring after `ttl_secs` or with the session.
async fn issue_token(
    conn: &mut PgConnection,
    session_id: Uuid,
    ttl_secs: i64,
) -> Result<String, sqlx::Error> {
    let token = new_token();
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
         SELECT $1, id, least($3, expires_at) FROM sessions WHERE id = $2",
    )
    .bind(digest(&token))
    .bind(session_id)
    .bind(Utc::now() + Duration::seconds(ttl_secs))
    .execute(conn)
    .await?;
    Ok(token)
}

/// How long sessions and their refresh tokens live.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// One refresh token (`REFRESH_TOKEN_TTL`).
    pub refresh_secs: i64,
    /// The session, from its login (`SESSION_MAX_AGE`).
    pub session_secs: i64,
}

/// A session as its tokens need it: its id, when it ends, and a refresh token.
#[derive(Debug)]
pub struct Started {
    pub session_id: Uuid,
    /// The session's absolute end: no access token outlives it.
    pub expires_at: DateTime<Utc>,
    pub refresh: String,
}

/// Starts a session for `user_id`, with its first refresh token.
pub async fn start(
    conn: &mut PgConnection,
    user_id: Uuid,
    lifetimes: Lifetimes,
) -> Result<Started, sqlx::Error> {
    let session_id = Uuid::now_v7();
    let expires_at = Utc::now() + Duration::seconds(lifetimes.session_secs);
    sqlx::query("INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, $3)")
        .bind(session_id)
        .bind(user_id)
        .bind(expires_at)
        .execute(&mut *conn)
        .await?;
    let ttl_secs = lifetimes.refresh_secs;
    let refresh = issue_token(conn, session_id, ttl_secs).await?;
    Ok(Started {
        session_id,
        expires_at,
        refresh,
    })
}

/// Whose session a refresh token belongs to (no lock), so callers can lock the account first.
pub async fn owner(conn: &mut PgConnection, presented: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT s.user_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
    )
    .bind(digest(presented))
    .fetch_optional(conn)
    .await
}

#[derive(Debug)]
pub enum Rotation {
    Rotated {
        user_id: Uuid,
        session: Started,
    },
    /// Unknown, expired, or belonging to an ended session.
    Refused,
    /// Already used: the caller revokes the session.
    Reused {
        user_id: Uuid,
        session_id: Uuid,
    },
}

#[derive(sqlx::FromRow)]
struct Presented {
    session_id: Uuid,
    user_id: Uuid,
    session_expires_at: DateTime<Utc>,
    expired: bool,
    used: bool,
    session_revoked: bool,
}

pub async fn rotate(
    conn: &mut PgConnection,
    presented: &str,
    ttl_secs: i64,
) -> Result<Rotation, sqlx::Error> {
    let row: Option<Presented> = sqlx::query_as(
        "SELECT t.session_id, s.user_id, s.expires_at AS session_expires_at,
                t.expires_at <= now() AS expired, t.used_at IS NOT NULL AS used,
                (s.revoked_at IS NOT NULL OR s.expires_at <= now()) AS session_revoked
         FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
         WHERE t.token_hash = $1
         FOR UPDATE OF t, s",
    )
    .bind(digest(presented))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Rotation::Refused);
    };
    if row.used {
        return Ok(Rotation::Reused {
            user_id: row.user_id,
            session_id: row.session_id,
        });
    }
    if row.expired || row.session_revoked {
        return Ok(Rotation::Refused);
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
        .bind(digest(presented))
        .execute(&mut *conn)
        .await?;
    let refresh = issue_token(conn, row.session_id, ttl_secs).await?;
    Ok(Rotation::Rotated {
        user_id: row.user_id,
        session: Started {
            session_id: row.session_id,
            expires_at: row.session_expires_at,
            refresh,
        },
    })
}

/// Ends a session; false if it had already ended.
pub async fn revoke(
    conn: &mut PgConnection,
    session_id: Uuid,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(session_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends every open session of a user but `except`; returns their ids. Sessions past their
/// absolute end are left alone: every service refuses their tokens already.
pub async fn revoke_all(
    conn: &mut PgConnection,
    user_id: Uuid,
    except: Option<Uuid>,
    reason: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
         WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $3
           AND expires_at > now() - interval '1 day'
         RETURNING id",
    )
    .bind(user_id)
    .bind(reason)
    .bind(except)
    .fetch_all(conn)
    .await
}
