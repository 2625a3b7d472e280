//! The event log, for analysts and admins, read from the event store:
//!
//! - `GET /api/v1/events` — a page of envelopes in position order, filtered; with
//!   `Accept: application/x-ndjson`, every match streamed as one envelope per line, a page at a
//!   time (memory stays bounded however long the log is);
//! - `GET /api/v1/events/stream` — Server-Sent Events, `id:` = position, from `Last-Event-ID`
//!   (or `after`, or the head) on.
//!
//! Only *settled* positions are served: at most the gap-safe horizon of
//! [`crate::relay::high_water`], below which no event can still appear. A reader paging or
//! tailing by position therefore never skips an event committed late, and the tail is one
//! cursor over the store — history and live are the same loop, so nothing is missed or repeated
//! where one turns into the other. Old payloads are served upcast to their type's current
//! schema version.

use std::{convert::Infallible, time::Duration};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{FromRequestParts, State},
    http::{HeaderMap, HeaderValue, header, request::Parts},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
};
use chrono::{DateTime, Utc};
use futures::Stream;
use serde_json::json;
use shared::{ApiError, EventEnvelope, Role, http::QueryParams};
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{AppState, Caller};
use crate::{
    relay::high_water::{self, Scope},
    store::{self, EventFilter},
};

/// Default and largest page of `GET /api/v1/events`.
pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 1000;
/// Events read from the store at a time when streaming.
const CHUNK: i64 = 1000;
/// How often a live tail checks that its session still stands.
const SESSION_CHECK: Duration = Duration::from_secs(2);
pub const NDJSON: &str = "application/x-ndjson";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/events", get(list))
        .route("/api/v1/events/stream", get(tail))
}

/// An admin or an analyst.
pub struct Reader(pub Caller);

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(Reader(caller.require(
            &[Role::Admin, Role::Analyst],
            "only admins and analysts may read the event log",
        )?))
    }
}

/// The settled horizon, kept current for live tails: recomputed whenever the store announces
/// new events (`events_appended`), and at least every second.
#[derive(Clone)]
pub struct Horizon {
    pool: PgPool,
    scope: Scope,
    receiver: watch::Receiver<i64>,
}

impl Horizon {
    pub async fn spawn(pool: PgPool, shutdown: CancellationToken) -> Result<Self, sqlx::Error> {
        let scope = Scope::detect(&pool).await?;
        let (sender, receiver) = watch::channel(0);
        let horizon = Self {
            pool,
            scope,
            receiver,
        };
        let follower = horizon.clone();
        tokio::spawn(async move { follower.follow(sender, shutdown).await });
        Ok(horizon)
    }

    /// The horizon now, computed afresh (a page or an NDJSON export starts from it). If
    /// writers in flight do not finish within a second, the last horizon the follower proved
    /// settled is used: a little older, never unsafe.
    async fn now(&self) -> Result<i64, ApiError> {
        let current = *self.receiver.borrow();
        let settled =
            high_water::safe_horizon(&self.pool, self.scope, current, Duration::from_secs(1))
                .await
                .map_err(anyhow::Error::from)?;
        Ok(settled.unwrap_or(current).max(current))
    }

    async fn follow(self, sender: watch::Sender<i64>, shutdown: CancellationToken) {
        let mut listener = None;
        loop {
            if listener.is_none() {
                match sqlx::postgres::PgListener::connect_with(&self.pool).await {
                    Ok(mut l) => match l.listen("events_appended").await {
                        Ok(()) => listener = Some(l),
                        Err(e) => tracing::warn!(error = %e, "event log cannot listen"),
                    },
                    Err(e) => tracing::warn!(error = %e, "event log cannot listen"),
                }
            }
            let current = *sender.borrow();
            let mut again = Duration::from_secs(1);
            match high_water::safe_horizon(&self.pool, self.scope, current, again).await {
                Ok(Some(horizon)) if horizon > current => {
                    sender.send_replace(horizon);
                }
                Ok(Some(_)) => {}
                // Writers still in flight: look again shortly.
                Ok(None) => again = Duration::from_millis(10),
                Err(e) => {
                    tracing::warn!(error = %e, "event log horizon not updated");
                    listener = None;
                }
            }
            let notified = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.map(drop),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(again) => {}
                received = notified => if received.is_err() { listener = None },
            }
        }
    }
}

/// The filters both endpoints take.
fn filter(params: &QueryParams) -> Result<EventFilter, ApiError> {
    let name = |raw: &str| -> Result<String, String> {
        let ok = !raw.is_empty()
            && raw.len() <= 100
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(raw.to_owned())
        } else {
            Err("must be a type name (letters, digits, '_')".into())
        }
    };
    let time = |raw: &str| {
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| "must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z".to_owned())
    };
    let event_types = params
        .parsed("type", |raw| {
            raw.split(',').map(name).collect::<Result<Vec<_>, _>>()
        })?
        .unwrap_or_default();
    let filter = EventFilter {
        event_types,
        aggregate_type: params.parsed("aggregate_type", name)?,
        aggregate_id: params.parsed("aggregate_id", |raw| {
            Uuid::parse_str(raw).map_err(|_| "must be a UUID".to_owned())
        })?,
        since: params.parsed("since", time)?,
        until: params.parsed("until", time)?,
        through: None,
    };
    Ok(filter)
}

fn position(raw: &str) -> Result<i64, String> {
    match raw.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err("must be a position: a whole number, 0 or more".into()),
    }
}

async fn list(
    State(state): State<AppState>,
    _: Reader,
    headers: HeaderMap,
    params: QueryParams,
) -> Result<Response, ApiError> {
    let params = params.only(&[
        "after",
        "cursor",
        "limit",
        "type",
        "aggregate_type",
        "aggregate_id",
        "since",
        "until",
    ])?;
    let mut filter = filter(&params)?;
    let after = match (
        params.parsed("after", position)?,
        params.parsed("cursor", position)?,
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::InvalidParameter(
                "give after or cursor, not both".into(),
            ));
        }
        (after, cursor) => after.or(cursor).unwrap_or(0),
    };
    let limit = params
        .parsed("limit", |raw| match raw.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(format!("must be a whole number from 1 to {MAX_LIMIT}")),
        })?
        .unwrap_or(DEFAULT_LIMIT);
    let horizon = state.horizon.now().await?;
    filter.through = Some(horizon);
    let horizon_header = HeaderValue::from(horizon);
    if wants_ndjson(&headers) {
        let body = Body::from_stream(ndjson(
            state.pool.clone(),
            after,
            filter,
            state.shutdown.clone(),
        ));
        let mut response = body.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
        headers.insert("x-event-horizon", horizon_header);
        return Ok(response);
    }
    let page: Vec<EventEnvelope> = store::read_all(&state.pool, after, limit, &filter)
        .await
        .map_err(anyhow::Error::from)?
        .into_iter()
        .map(EventEnvelope::upcast)
        .collect();
    let next = (page.len() as i64 == limit)
        .then(|| page.last().map(|e| e.position))
        .flatten();
    let mut response = axum::Json(json!({
        "items": page,
        "next_after": next,
        "next_cursor": next.map(|n| n.to_string()),
    }))
    .into_response();
    response
        .headers_mut()
        .insert("x-event-horizon", horizon_header);
    Ok(response)
}

fn wants_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.split(';').next().is_some_and(|t| t.trim() == NDJSON))
}

/// Every match after `after`, a chunk of the store at a time, one envelope per line. When the
/// service stops mid-way the body fails (the connection is cut), so a client never takes a
/// partial export for a whole one.
fn ndjson(
    pool: PgPool,
    after: i64,
    filter: EventFilter,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::try_unfold(Some(after), move |cursor| {
        let pool = pool.clone();
        let filter = filter.clone();
        let stopping = shutdown.is_cancelled();
        async move {
            let Some(after) = cursor else {
                return Ok(None);
            };
            if stopping {
                return Err(std::io::Error::other("the service is stopping"));
            }
            let chunk = store::read_all(&pool, after, CHUNK, &filter)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "the event export failed mid-way");
                    std::io::Error::other(e)
                })?;
            let Some(last) = chunk.last().map(|e| e.position) else {
                return Ok(None);
            };
            let mut lines = Vec::with_capacity(chunk.len() * 512);
            for envelope in chunk.into_iter().map(EventEnvelope::upcast) {
                serde_json::to_writer(&mut lines, &envelope).map_err(std::io::Error::other)?;
                lines.push(b'\n');
            }
            Ok(Some((Bytes::from(lines), Some(last))))
        }
    })
}

async fn tail(
    State(state): State<AppState>,
    Reader(caller): Reader,
    headers: HeaderMap,
    params: QueryParams,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let params = params.only(&["after", "type", "aggregate_type"])?;
    let filter = filter(&params)?;
    let resume = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map_err(|_| "not text".to_owned())
                .and_then(position)
                .map_err(|why| ApiError::InvalidParameter(format!("Last-Event-ID: {why}")))
        })
        .transpose()?;
    let after = match resume.or(params.parsed("after", position)?) {
        Some(after) => after,
        None => state.horizon.now().await?,
    };
    // Held by the tail's stream: the slot is free again when the client leaves.
    let slot = state.live_streams.take(caller.user_id)?;
    let (sender, receiver) = mpsc::channel(256);
    tokio::spawn(follow(state, caller, after, filter, sender));
    let stream = futures::stream::unfold((receiver, slot), |(mut receiver, slot)| async move {
        receiver
            .recv()
            .await
            .map(|event| (Ok(event), (receiver, slot)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Feeds one live tail until the client leaves, its session ends, or the service stops.
async fn follow(
    state: AppState,
    caller: Caller,
    mut after: i64,
    mut filter: EventFilter,
    sender: mpsc::Sender<Event>,
) {
    let mut horizon = state.horizon.receiver.clone();
    let mut session_check = tokio::time::interval(SESSION_CHECK);
    loop {
        let through = *horizon.borrow_and_update();
        filter.through = Some(through);
        while after < through {
            let chunk = match store::read_all(&state.pool, after, CHUNK, &filter).await {
                Ok(chunk) => chunk,
                Err(e) => {
                    tracing::warn!(error = %e, "event tail cannot read the store; closing");
                    return;
                }
            };
            let full = chunk.len() as i64 == CHUNK;
            for envelope in chunk.into_iter().map(EventEnvelope::upcast) {
                let position = envelope.position;
                let Ok(event) = Event::default()
                    .id(position.to_string())
                    .json_data(&envelope)
                else {
                    continue;
                };
                // A client that stops reading must not hold up shutdown.
                tokio::select! {
                    sent = sender.send(event) => if sent.is_err() { return },
                    _ = state.shutdown.cancelled() => return,
                }
                after = position;
            }
            // Long histories: the session is checked between chunks too.
            if full && !caller.still_valid(&state.pool).await {
                return;
            }
            if !full {
                // Nothing else matches up to the horizon.
                after = through;
            }
        }
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = sender.closed() => return,
            changed = horizon.changed() => if changed.is_err() { return },
            _ = session_check.tick() => {
                if !caller.still_valid(&state.pool).await {
                    return;
                }
            }
        }
    }
}
