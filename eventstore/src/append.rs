//! Appending a batch of events to one aggregate's stream, atomically, with an expected
//! version. A stale expectation is a typed [`AppendError::Conflict`] and nothing is written.

use chrono::{DateTime, Utc};
use serde_json::Value;
use shared::{Actor, EventEnvelope, events::EventCatalog};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

/// Which stream: the aggregate type (`product`, `review`, `user`) and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamId {
    pub aggregate_type: &'static str,
    pub aggregate_id: Uuid,
}

impl StreamId {
    pub fn of<E: EventCatalog>(aggregate_id: Uuid) -> Self {
        Self {
            aggregate_type: E::AGGREGATE_TYPE,
            aggregate_id,
        }
    }
}

/// What the writer believes the stream's version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be at exactly this version (0 = does not exist).
    Exact(i64),
    /// Append whatever the version is (for streams with a single natural writer).
    Any,
}

/// An event about to be stored: already serialised, with its id and schema version.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
}

impl NewEvent {
    pub fn from_domain<E: EventCatalog>(event: &E) -> Result<Self, serde_json::Error> {
        Ok(Self {
            event_id: Uuid::now_v7(),
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            data: event.to_data()?,
        })
    }
}

/// Who and why: copied onto every event of the batch.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub actor: Option<Actor>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
}

impl Metadata {
    pub fn new(actor: Option<Actor>) -> Self {
        Self {
            actor,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
        }
    }
}

/// The stored batch: the stream's new version and the position of its last event.
#[derive(Debug, Clone)]
pub struct Appended {
    pub version: i64,
    pub position: i64,
    pub events: Vec<EventEnvelope>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("expected version {expected:?}, but the stream is at version {actual}")]
    Conflict {
        expected: ExpectedVersion,
        actual: i64,
    },
    #[error("the event store failed")]
    Store(#[from] sqlx::Error),
}

/// Appends `events` to `stream` inside the caller's transaction. The caller commits; dropping
/// the transaction after an error leaves nothing behind.
pub async fn append_events(
    conn: &mut PgConnection,
    stream: StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
    metadata: &Metadata,
) -> Result<Appended, AppendError> {
    let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
    if count == 0 {
        let version = current_version(conn, stream).await?;
        return Ok(Appended {
            version,
            position: 0,
            events: Vec::new(),
        });
    }
    // PostgreSQL keeps microseconds; truncate so the envelope we return equals the stored one.
    let now = Utc::now();
    let occurred_at = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let versions: Vec<i32> = events.iter().map(|e| e.schema_version).collect();
    let data: Vec<Value> = events.iter().map(|e| e.data.clone()).collect();

    // One statement, one round trip: the stream's version moves forward if `expected` holds
    // (the row lock taken there makes a concurrent writer of the same aggregate wait for our
    // commit and then fail its own check, so one aggregate's versions commit in order), and
    // the events are inserted only if it moved. Rows go in ordinality order, so positions
    // rise with aggregate versions.
    let sql = format!(
        "WITH advanced AS ({})
         INSERT INTO events (event_id, event_type, schema_version, aggregate_type, aggregate_id,
                             aggregate_version, occurred_at, actor, correlation_id, causation_id, data)
         SELECT e.event_id, e.event_type, e.schema_version, $5, $6, a.version - $7 + e.ord,
                $8, $9, $10, $11, e.data
         FROM advanced a,
              unnest($1::uuid[], $2::text[], $3::int4[], $4::jsonb[])
              WITH ORDINALITY AS e(event_id, event_type, schema_version, data, ord)
         ORDER BY e.ord
         RETURNING aggregate_version, position",
        advance_stream(expected)
    );
    let mut query = sqlx::query_as(&sql)
        .bind(&ids)
        .bind(&types)
        .bind(&versions)
        .bind(&data)
        .bind(stream.aggregate_type)
        .bind(stream.aggregate_id)
        .bind(count)
        .bind(occurred_at)
        .bind(metadata.actor.clone().map(Json))
        .bind(metadata.correlation_id)
        .bind(metadata.causation_id);
    if let ExpectedVersion::Exact(current) = expected
        && current != 0
    {
        query = query.bind(current);
    }
    let mut stored: Vec<(i64, i64)> = query.fetch_all(&mut *conn).await?;
    if stored.is_empty() {
        let actual = current_version(conn, stream).await?;
        return Err(AppendError::Conflict { expected, actual });
    }
    stored.sort_unstable();

    let envelopes: Vec<EventEnvelope> = events
        .iter()
        .zip(&stored)
        .map(|(event, &(aggregate_version, position))| EventEnvelope {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            aggregate_type: stream.aggregate_type.to_owned(),
            aggregate_id: stream.aggregate_id,
            aggregate_version,
            position,
            occurred_at,
            actor: metadata.actor.clone(),
            correlation_id: metadata.correlation_id,
            causation_id: metadata.causation_id,
            data: event.data.clone(),
        })
        .collect();
    let (version, position) = stored.last().copied().unwrap_or_default();
    // Counted when written in the transaction (a transaction that then rolls back is rare).
    metrics::counter!("events_appended_total", "aggregate_type" => stream.aggregate_type)
        .increment(events.len() as u64);
    Ok(Appended {
        version,
        position,
        events: envelopes,
    })
}

/// The statement that moves the stream's version forward by `$7` (the batch's size) if
/// `expected` holds, returning the new version; no row if it does not. `$5`/`$6` name the
/// stream, `$12` is the expected version where there is one.
fn advance_stream(expected: ExpectedVersion) -> &'static str {
    match expected {
        ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => {
            "INSERT INTO streams (aggregate_type, aggregate_id, version) VALUES ($5, $6, $7)
             ON CONFLICT DO NOTHING RETURNING version"
        }
        ExpectedVersion::Exact(_) => {
            "UPDATE streams SET version = version + $7
             WHERE aggregate_type = $5 AND aggregate_id = $6 AND version = $12
             RETURNING version"
        }
        ExpectedVersion::Any => {
            "INSERT INTO streams (aggregate_type, aggregate_id, version) VALUES ($5, $6, $7)
             ON CONFLICT (aggregate_type, aggregate_id)
             DO UPDATE SET version = streams.version + EXCLUDED.version
             RETURNING version"
        }
    }
}

/// The stream's version, 0 if it does not exist.
pub async fn current_version(
    conn: &mut PgConnection,
    stream: StreamId,
) -> Result<i64, sqlx::Error> {
    let version: Option<i64> = sqlx::query_scalar(
        "SELECT version FROM streams WHERE aggregate_type = $1 AND aggregate_id = $2",
    )
    .bind(stream.aggregate_type)
    .bind(stream.aggregate_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(version.unwrap_or(0))
}

/// Locks the stream's row for the rest of the transaction, so that commands on one aggregate
/// run one at a time (load, decide, append) instead of racing and retrying. A stream that does
/// not exist yet has no row: nothing is locked.
pub async fn lock_stream(conn: &mut PgConnection, stream: StreamId) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1 FROM streams WHERE aggregate_type = $1 AND aggregate_id = $2 FOR UPDATE")
        .bind(stream.aggregate_type)
        .bind(stream.aggregate_id)
        .execute(conn)
        .await
        .map(drop)
}
