//! Reading events back: one aggregate's stream, or the global log after a position with
//! filters. Always in position order.

use chrono::{DateTime, Utc};
use shared::{Actor, EventEnvelope};
use sqlx::{PgExecutor, types::Json};
use uuid::Uuid;

#[derive(Debug, sqlx::FromRow)]
struct EventRow {
    position: i64,
    event_id: Uuid,
    event_type: String,
    schema_version: i32,
    aggregate_type: String,
    aggregate_id: Uuid,
    aggregate_version: i64,
    occurred_at: DateTime<Utc>,
    actor: Option<Json<Actor>>,
    correlation_id: Uuid,
    causation_id: Option<Uuid>,
    data: Json<serde_json::Value>,
}

impl From<EventRow> for EventEnvelope {
    fn from(row: EventRow) -> Self {
        EventEnvelope {
            event_id: row.event_id,
            event_type: row.event_type,
            schema_version: row.schema_version,
            aggregate_type: row.aggregate_type,
            aggregate_id: row.aggregate_id,
            aggregate_version: row.aggregate_version,
            position: row.position,
            occurred_at: row.occurred_at,
            actor: row.actor.map(|Json(a)| a),
            correlation_id: row.correlation_id,
            causation_id: row.causation_id,
            data: row.data.0,
        }
    }
}

const COLUMNS: &str = "position, event_id, event_type, schema_version, aggregate_type, \
    aggregate_id, aggregate_version, occurred_at, actor, correlation_id, causation_id, data";

/// Every event of one aggregate, in version order.
pub async fn read_stream(
    db: impl PgExecutor<'_>,
    aggregate_type: &str,
    aggregate_id: Uuid,
) -> Result<Vec<EventEnvelope>, sqlx::Error> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2
         ORDER BY aggregate_version"
    ))
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Narrows a read of the whole log. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub event_types: Vec<String>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<Uuid>,
    /// Inclusive lower bound on `occurred_at`.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive upper bound on `occurred_at`.
    pub until: Option<DateTime<Utc>>,
    /// Inclusive upper bound on `position` (a settled horizon: nothing below it can still
    /// appear, see `relay::high_water`).
    pub through: Option<i64>,
}

const MATCHES: &str = "position > $1
           AND ($2::text[] IS NULL OR event_type = ANY($2))
           AND ($3::text IS NULL OR aggregate_type = $3)
           AND ($4::uuid IS NULL OR aggregate_id = $4)
           AND ($5::timestamptz IS NULL OR occurred_at >= $5)
           AND ($6::timestamptz IS NULL OR occurred_at < $6)
           AND ($7::bigint IS NULL OR position <= $7)";

/// How many events after `after` match `filter` (for progress bars).
pub async fn count_all(
    db: impl PgExecutor<'_>,
    after: i64,
    filter: &EventFilter,
) -> Result<i64, sqlx::Error> {
    let types = (!filter.event_types.is_empty()).then_some(&filter.event_types);
    sqlx::query_scalar(&format!("SELECT count(*) FROM events WHERE {MATCHES}"))
        .bind(after)
        .bind(types)
        .bind(&filter.aggregate_type)
        .bind(filter.aggregate_id)
        .bind(filter.since)
        .bind(filter.until)
        .bind(filter.through)
        .fetch_one(db)
        .await
}

/// Up to `limit` events after `after` that match `filter`, in position order.
pub async fn read_all(
    db: impl PgExecutor<'_>,
    after: i64,
    limit: i64,
    filter: &EventFilter,
) -> Result<Vec<EventEnvelope>, sqlx::Error> {
    let types = (!filter.event_types.is_empty()).then_some(&filter.event_types);
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events WHERE {MATCHES} ORDER BY position LIMIT $8"
    ))
    .bind(after)
    .bind(types)
    .bind(&filter.aggregate_type)
    .bind(filter.aggregate_id)
    .bind(filter.since)
    .bind(filter.until)
    .bind(filter.through)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Where a read in aggregate order stopped: the last event's aggregate and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateKey {
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    pub aggregate_version: i64,
}

/// Up to `limit` events at or below position `through`, in aggregate order (type, id,
/// version), after `after` (`None`: from the start). A rebuild reads this way, so each
/// aggregate's events are folded together and its document written once.
pub async fn read_by_aggregate(
    db: impl PgExecutor<'_>,
    after: Option<&AggregateKey>,
    through: i64,
    limit: i64,
) -> Result<Vec<EventEnvelope>, sqlx::Error> {
    let (aggregate_type, aggregate_id, version) = match after {
        Some(key) => (
            key.aggregate_type.as_str(),
            key.aggregate_id,
            key.aggregate_version,
        ),
        None => ("", Uuid::nil(), 0),
    };
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events
         WHERE position <= $1 AND (aggregate_type, aggregate_id, aggregate_version) > ($2, $3, $4)
         ORDER BY aggregate_type, aggregate_id, aggregate_version LIMIT $5"
    ))
    .bind(through)
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(version)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Up to `limit` events with `after < position <= up_to`, in position order.
pub async fn read_range(
    db: impl PgExecutor<'_>,
    after: i64,
    up_to: i64,
    limit: i64,
) -> Result<Vec<EventEnvelope>, sqlx::Error> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events WHERE position > $1 AND position <= $2
         ORDER BY position LIMIT $3"
    ))
    .bind(after)
    .bind(up_to)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}
