//! The event log, for analysts and admins, read from the event store:
//!
//! - `GET /api/v1/events` — a page of envelopes in position order, filtered; with
//!   `Accept: application/x-ndjson`, every match streamed as one envelope per line, a page at a
//!   time (memory stays bounded however long the log is);
//! - `GET /api/v1/events/stream` — Server-Sent Events, `id:` = position, from `Last-Event-ID`
//!   (or `after`, or the head) on.
//!
//! Only *settled* positions are served: at most the gap-safe horizon of
//! [`eventstore::horizon`], below which no event can still appear. A reader paging or
//! tailing by position therefore never skips an event committed late, and the tail is one
//! cursor over the store — history and live are the same loop, so nothing is missed or repeated
//! where one turns into the other. Old payloads are served upcast to their type's current
//! schema version.

use std::{convert::Infallible, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::{FromRequestParts, State},
    http::{HeaderMap, HeaderValue, header, request::Parts},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use chrono::{DateTime, Utc};
use eventstore::EventFilter;
use futures::Stream;
use shared::{
    ApiError, EventEnvelope, Role,
    http::QueryParams,
    openapi::{Forbidden, ids::SKU},
};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{AppState, Caller, answers::EventsPage};

/// Default and largest page of `GET /api/v1/events`.
pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 1000;
/// Events read from the store at a time when streaming.
const CHUNK: i64 = 1000;
/// How often a live tail checks that its session still stands.
const SESSION_CHECK: Duration = Duration::from_secs(2);
pub const NDJSON: &str = "application/x-ndjson";

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(list))
        .routes(utoipa_axum::routes!(tail))
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

/// The settled horizon, kept current for live tails.
pub type Horizon = eventstore::horizon::Follower;

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

/// The event log: a page, or every match as NDJSON (`Accept: application/x-ndjson`)
#[utoipa::path(
    get,
    path = "/api/v1/events",
    description = "Who may call it: admin or analyst.",
    security(("bearer" = [])),
    params(
        ("after" = Option<i64>, Query, minimum = 0, description = "start after this position", example = 1000),
        ("cursor" = Option<String>, Query, pattern = "^\\+?[0-9]{1,18}$", description = "the previous page's `next_cursor` (instead of `after`)", example = "1042"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "1 to 1000, default 20", example = 100),
        ("type" = Option<String>, Query, pattern = "^[A-Za-z0-9_]{1,100}(,[A-Za-z0-9_]{1,100})*$", description = "event types, comma-separated", example = "ProductCreated,ProductUpdated"),
        ("aggregate_type" = Option<String>, Query, pattern = "^[A-Za-z0-9_]{1,100}$", description = "product, review or user", example = "product"),
        ("aggregate_id" = Option<uuid::Uuid>, Query, description = "one aggregate", example = json!(SKU)),
        ("since" = Option<DateTime<Utc>>, Query, description = "occurred at or after (RFC 3339)", example = "2026-11-01T00:00:00Z"),
        ("until" = Option<DateTime<Utc>>, Query, description = "occurred before (RFC 3339)", example = "2026-12-01T00:00:00Z"),
    ),
    responses(
        (status = 200, description = "envelopes in position order (`X-Event-Horizon`: the settled position read up to); with `Accept: application/x-ndjson`, every match, one envelope per line",
            content(
                (EventsPage = "application/json"),
                (EventEnvelope = "application/x-ndjson"),
            )),
        (status = 403, response = inline(Forbidden)),
    )
)]
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
    let horizon = state.horizon.now().await.map_err(anyhow::Error::from)?;
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
    let page: Vec<EventEnvelope> = eventstore::read_all(&state.pool, after, limit, &filter)
        .await
        .map_err(anyhow::Error::from)?
        .into_iter()
        .map(EventEnvelope::upcast)
        .collect();
    let next = (page.len() as i64 == limit)
        .then(|| page.last().map(|e| e.position))
        .flatten();
    let mut response = axum::Json(EventsPage {
        items: page,
        next_after: next,
        next_cursor: next.map(|n| n.to_string()),
    })
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
            let chunk = eventstore::read_all(&pool, after, CHUNK, &filter)
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

/// Follow the event log live (Server-Sent Events; `id:` is the position)
#[utoipa::path(
    get,
    path = "/api/v1/events/stream",
    description = "Who may call it: admin or analyst.",
    security(("bearer" = [])),
    params(
        ("Last-Event-ID" = Option<String>, Header, pattern = "^\\+?[0-9]{1,18}$", description = "resume after this position (wins over `after`)", example = "1042"),
        ("after" = Option<i64>, Query, minimum = 0, description = "start after this position; default: only new events", example = 0),
        ("type" = Option<String>, Query, pattern = "^[A-Za-z0-9_]{1,100}(,[A-Za-z0-9_]{1,100})*$", description = "event types, comma-separated", example = "ProductUpdated"),
        ("aggregate_type" = Option<String>, Query, pattern = "^[A-Za-z0-9_]{1,100}$", description = "product, review or user", example = "product"),
    ),
    responses(
        (status = 200, description = "an endless stream of envelopes, one per event (`data:`), `id:` its position",
            content((EventEnvelope = "text/event-stream"))),
        (status = 403, response = inline(Forbidden)),
    )
)]
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
        None => state.horizon.now().await.map_err(anyhow::Error::from)?,
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
    let mut horizon = state.horizon.watch();
    let mut session_check = tokio::time::interval(SESSION_CHECK);
    loop {
        let through = *horizon.borrow_and_update();
        filter.through = Some(through);
        while after < through {
            let chunk = match eventstore::read_all(&state.pool, after, CHUNK, &filter).await {
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
