//! query-api's HTTP surface. Each area exposes `fn router()`, its routes registered with
//! their OpenAPI description; [`router`] merges them, wraps every read in
//! [`read_your_writes`], and serves the document they make ([`openapi`]).

mod caching;
mod document;
mod keyset;
mod path_id;
mod products;
mod reader;
mod reports;
mod reviews;
mod text_filter;
mod timestamps;
mod users;

use std::time::Duration;

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use mongodb::Database;
use serde::Serialize;
use shared::{ApiError, auth::Authenticator, http::Readiness};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

pub use caching::Rendered;
pub use document::openapi;
use document::{Page, Paging, ReadYourWrites, document};
pub use reader::Reader;

use crate::{
    cache::Breaker,
    feed::{Depends, Feed},
    fresh::{Answers, Kept},
    projection::ProjectionWatch,
    views::ViewRecorder,
};

/// What every handler reads from: one `Arc`, so the per-request clones axum makes cost one
/// reference count, not one per part.
#[derive(Clone)]
pub struct QueryState(std::sync::Arc<QueryParts>);

impl QueryState {
    pub fn new(parts: QueryParts) -> Self {
        Self(std::sync::Arc::new(parts))
    }
}

impl std::ops::Deref for QueryState {
    type Target = QueryParts;

    fn deref(&self) -> &QueryParts {
        &self.0
    }
}

pub struct QueryParts {
    pub db: Database,
    /// Where each read model is kept now (a rebuild switches it).
    pub collections: shared::read_model::CollectionsFollower,
    pub authenticator: Authenticator,
    pub projection: ProjectionWatch,
    pub views: ViewRecorder,
    /// Answers kept in memory, served while [`Feed`] proves them current.
    pub answers: Answers,
    pub feed: Feed,
    /// Every product in each list order, for list pages without the store's sort.
    pub index: crate::listing::ProductIndex,
    /// View tallies by SKU, read at most once per [`crate::TALLY_FRESH_FOR`] per product.
    pub tallies: moka::sync::Cache<String, i64>,
    pub breaker: Breaker,
    pub blobs: shared::blobs::Blobs,
    /// The longest an `X-Min-Position` read waits (`QUERY_MAX_WAIT_MS`).
    pub max_wait: Duration,
}

impl QueryParts {
    /// The read model collection `base`, wherever the catalog keeps it now.
    pub async fn collection(
        &self,
        base: &str,
    ) -> mongodb::error::Result<mongodb::Collection<mongodb::bson::Document>> {
        Ok(self.collections.current().await?.collection(&self.db, base))
    }
}

/// Every route of the API, each with its OpenAPI description.
fn routes() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .merge(products::router())
        .merge(reports::router())
        .merge(reviews::router())
        .merge(users::router())
}

/// A typed answer as the JSON kept answers hold.
fn to_json(answer: impl Serialize) -> serde_json::Value {
    serde_json::to_value(answer).unwrap_or(serde_json::Value::Null)
}

pub fn router(
    state: QueryState,
    readiness: Readiness,
    limiter: std::sync::Arc<shared::http::RateLimiter>,
) -> Router {
    let (api, doc) = routes().split_for_parts();
    api.layer(middleware::from_fn_with_state(
        state.clone(),
        read_your_writes,
    ))
    .with_state(state)
    .layer(middleware::from_fn_with_state(
        limiter,
        shared::http::rate_limit,
    ))
    .layer(middleware::from_fn(shared::http::track))
    .merge(shared::http::ops_router(readiness))
    .merge(shared::openapi::router(document(doc)))
    .layer(TraceLayer::new_for_http())
}

/// `X-Min-Position: N` waits (at most `min(X-Max-Wait-Ms, 5000)` ms, default 2000) until the
/// read models have applied position N, else 504 `projection_lagging`. Every answer carries
/// `X-Projection-Position`: the read models had applied at least that much when it was read.
async fn read_your_writes(
    State(state): State<QueryState>,
    request: Request,
    next: Next,
) -> Response {
    let projection = &state.projection;
    let waited = match wanted(request.headers(), state.max_wait) {
        Ok(None) => Ok(projection.current()),
        Ok(Some((position, within))) => {
            projection.wait_for(position, within).await.map_err(|seen| {
                ApiError::ProjectionLagging {
                    wanted: position,
                    current: seen,
                }
            })
        }
        Err(e) => Err(e),
    };
    let (mut response, seen) = match waited {
        Ok(seen) => (next.run(request).await, seen),
        Err(e) => (e.into_response(), projection.current()),
    };
    // An answer kept from an earlier read reports the position it was read at.
    let reported = response
        .extensions()
        .get::<ReadAtPosition>()
        .map_or(seen, |at| at.0.min(seen));
    response
        .headers_mut()
        .insert("x-projection-position", HeaderValue::from(reported));
    response
}

/// On a response: the answer was read when the read models were at this position (it is
/// reported instead of the current one).
#[derive(Debug, Clone, Copy)]
pub struct ReadAtPosition(pub i64);

/// An answer and, when it was kept from an earlier read, the position to report with it.
pub struct Answer {
    pub kept: std::sync::Arc<Kept>,
    pub read_at: Option<i64>,
}

impl Answer {
    /// The JSON answer with caching headers, reporting its position when it has its own.
    pub fn respond(&self, headers: &HeaderMap, anonymous: bool) -> Response {
        self.respond_with(headers, anonymous, &self.kept.body)
    }

    /// [`Answer::respond`] with another rendering of the same answer.
    pub fn respond_with(&self, headers: &HeaderMap, anonymous: bool, body: &Rendered) -> Response {
        let mut response = caching::rendered_answer(headers, anonymous, body);
        if let Some(at) = self.read_at {
            response.extensions_mut().insert(ReadAtPosition(at));
        }
        response
    }
}

const DEFAULT_WAIT_MS: u64 = 2000;
/// The most `X-Max-Wait-Ms` may ask for (API.md).
pub const MAX_WAIT_MS: u64 = 5000;

/// The position a request waits for, and for how long.
fn wanted(headers: &HeaderMap, most: Duration) -> Result<Option<(i64, Duration)>, ApiError> {
    // Whole numbers as the OpenAPI document says: int64, 0 or more.
    let header = |name: &str| -> Result<Option<i64>, ApiError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .filter(|v| *v >= 0)
                    .ok_or_else(|| {
                        ApiError::InvalidParameter(format!(
                            "{name}: must be a non-negative whole number"
                        ))
                    })
            })
            .transpose()
    };
    // Both are checked whether or not the request waits: a malformed header is 400 always.
    let wait = header("x-max-wait-ms")?.map_or(DEFAULT_WAIT_MS, i64::unsigned_abs);
    let Some(position) = header("x-min-position")? else {
        return Ok(None);
    };
    Ok(Some((position, Duration::from_millis(wait).min(most))))
}

/// Reads through the kept answers. One the change feed proves current is served without the
/// store. Otherwise one request per key reads the store (the others wait for it, or, when
/// they did not ask for a position with `X-Min-Position`, get the kept answer at once,
/// reported at the position it was read at: never older than the position it reports).
/// A missing answer is forgotten (404). When the store fails, the last answer kept under
/// `key`, current or not, is served, else 503.
async fn read_through<F>(
    state: &QueryState,
    headers: &HeaderMap,
    key: String,
    what: &'static str,
    depends: Depends,
    read: F,
) -> Result<Answer, ApiError>
where
    F: std::future::IntoFuture<Output = mongodb::error::Result<Option<serde_json::Value>>>,
{
    // Within the breaker: a catalog to read again from a frozen store must not hang.
    let collections = state.breaker.run(state.collections.current()).await.ok();
    let usable = |kept: &Kept| {
        collections
            .as_ref()
            .is_some_and(|c| *kept.collections == **c)
    };
    let current = |kept: &Kept| {
        // Every answer reports at most the position seen now (the middleware read it earlier).
        let reported = state.projection.current();
        usable(kept)
            && kept
                .read_at
                .is_some_and(|at| state.feed.current(at, kept.depends, reported))
    };
    let kept = state.answers.get(&key);
    if let Some(kept) = kept.as_ref().filter(|k| current(k)) {
        metrics::counter!("query_cache_hits_total").increment(1);
        return Ok(Answer {
            kept: kept.clone(),
            read_at: None,
        });
    }
    // The position the request waited for (the middleware checked the header).
    let wanted: Option<i64> = headers
        .get("x-min-position")
        .and_then(|v| v.to_str().ok()?.trim().parse().ok());
    let refresh = state.answers.refresh_lock(&key);
    let guard = match refresh.clone().try_lock_owned() {
        Ok(guard) => guard,
        Err(_) => {
            // Someone is reading this answer from the store now.
            let earlier = kept.as_ref().filter(|k| usable(k) && wanted.is_none());
            if let Some(kept) = earlier {
                metrics::counter!("query_cache_earlier_total").increment(1);
                return Ok(Answer {
                    kept: kept.clone(),
                    read_at: Some(kept.position),
                });
            }
            refresh.lock_owned().await
        }
    };
    // Read while we waited?
    if let Some(kept) = state.answers.get(&key).filter(|k| current(k)) {
        metrics::counter!("query_cache_hits_total").increment(1);
        return Ok(Answer {
            kept: kept.clone(),
            read_at: None,
        });
    }
    metrics::counter!("query_cache_misses_total").increment(1);
    // Tagged before reading: the store holds at least this much when it answers.
    let position = state.projection.current();
    let read_at = state.feed.read_at(position);
    let outcome = state.breaker.run(read).await;
    let answer = match outcome {
        Ok(Some(value)) => {
            let kept = std::sync::Arc::new(Kept::new(
                std::sync::Arc::new(value),
                position,
                read_at,
                depends,
                collections.clone().unwrap_or_default(),
            ));
            if collections.is_some() {
                // Kept answers only move forward (all puts of a key happen under its lock).
                state.answers.put(key.clone(), kept.clone());
                // A product's change that arrived while reading may have been dropped before
                // the put, and its record is not kept for ever: drop the answer. (Answers that
                // depend on a whole model are checked against generations that are never
                // forgotten, so they stay, to be handed out at their own position.)
                let own_change = matches!(depends, Depends::Product(_))
                    && read_at.is_some_and(|at| !state.feed.current(at, depends, 0));
                if own_change {
                    state.answers.forget(&key);
                }
            }
            Ok(Answer {
                kept,
                read_at: None,
            })
        }
        Ok(None) => {
            state.answers.forget(&key);
            Err(ApiError::NotFound(what))
        }
        // Reported at the position it was read at; not to a reader who waited for more.
        Err(e) => state
            .answers
            .get(&key)
            .filter(|kept| wanted.is_none_or(|n| kept.position >= n))
            .map(|kept| Answer {
                read_at: Some(kept.position),
                kept,
            })
            .ok_or(e),
    };
    drop(guard);
    answer
}
