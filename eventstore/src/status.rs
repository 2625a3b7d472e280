//! How far the outbox relay has published: what `camctl relay status` shows.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// The relay's progress against the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayStatus {
    /// The position up to which every event is published (0 before the first).
    pub published: i64,
    /// When the relay last moved its progress, if ever.
    pub updated_at: Option<DateTime<Utc>>,
    /// The last position the sequence handed out (committed or not).
    pub last_position: i64,
    /// Committed events above `published`.
    pub pending: i64,
}

impl RelayStatus {
    pub async fn read(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let (published, updated_at, last_position, pending): (
            Option<i64>,
            Option<DateTime<Utc>>,
            i64,
            i64,
        ) = sqlx::query_as(
            "WITH p AS (SELECT position, updated_at FROM relay_progress WHERE name = 'events')
             SELECT (SELECT position FROM p), (SELECT updated_at FROM p),
                    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_position_seq),
                    (SELECT count(*) FROM events WHERE position > coalesce((SELECT position FROM p), 0))",
        )
        .fetch_one(pool)
        .await?;
        Ok(Self {
            published: published.unwrap_or(0),
            updated_at,
            last_position,
            pending,
        })
    }
}

/// The name the relay's progress is kept under in `relay_progress`.
const RELAY: &str = "events";

/// The position the relay last recorded as published (0 if never).
pub async fn published_position(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM relay_progress WHERE name = $1")
            .bind(RELAY)
            .fetch_optional(pool)
            .await?;
    Ok(position.unwrap_or(0))
}

/// Records that everything up to `position` is published; never moves the mark back.
pub async fn record_published(pool: &PgPool, position: i64) -> Result<(), sqlx::Error> {
    // Live tails of the event log wake on `events_published` (appends notify only an idle
    // relay: migrations/0004_relay_wake.sql).
    sqlx::query(
        "WITH recorded AS (
             INSERT INTO relay_progress (name, position) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()
             WHERE relay_progress.position < EXCLUDED.position
         )
         SELECT pg_notify('events_published', $2::text)",
    )
    .bind(RELAY)
    .bind(position)
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether the leading relay is about to wait (`true`: the next append wakes it with
/// `NOTIFY events_appended`) or is working (`false`: appends notify nobody).
pub async fn announce_idle(conn: &mut PgConnection, idle: bool) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE relay_wake SET idle = $1 WHERE idle <> $1")
        .bind(idle)
        .execute(conn)
        .await
        .map(drop)
}

/// The last position handed out, and when the oldest event above `published` occurred.
pub async fn lag(
    pool: &PgPool,
    published: i64,
) -> Result<(i64, Option<DateTime<Utc>>), sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_position_seq),
                (SELECT occurred_at FROM events WHERE position > $1 ORDER BY position LIMIT 1)",
    )
    .bind(published)
    .fetch_one(pool)
    .await
}

/// How far a reader that has applied everything up to `applied` is behind the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    /// The highest committed position.
    pub store_position: i64,
    /// Committed events above `applied`.
    pub events: i64,
    /// When the oldest of them occurred.
    pub oldest: Option<DateTime<Utc>>,
}

impl Behind {
    pub async fn read(pool: &PgPool, applied: i64) -> Result<Self, sqlx::Error> {
        let (store_position, events, oldest) = sqlx::query_as(
            "SELECT coalesce((SELECT max(position) FROM events), 0),
                    (SELECT count(*) FROM events WHERE position > $1),
                    (SELECT occurred_at FROM events WHERE position > $1 ORDER BY position LIMIT 1)",
        )
        .bind(applied)
        .fetch_one(pool)
        .await?;
        Ok(Self {
            store_position,
            events,
            oldest,
        })
    }
}
