//! query-api's HTTP surface. Each area exposes `fn router()`; [`router`] merges them and wraps
//! every read in [`read_your_writes`].

mod caching;
mod docs;
mod keyset;
mod products;
mod reader;
mod reports;
mod reviews;
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
use shared::{ApiError, auth::Authenticator, http::Readiness};
use tower_http::trace::TraceLayer;

pub use reader::Reader;

use crate::{
    cache::Breaker,
    feed::{Depends, Feed},
    fresh::{Answers, Kept},
    projection::ProjectionWatch,
    views::ViewRecorder,
};

#[derive(Clone)]
pub struct QueryState {
    pub db: Database,
    /// Where each read model is kept now (a rebuild switches it).
    pub collections: shared::read_model::CollectionsFollower,
    pub authenticator: Authenticator,
    pub projection: ProjectionWatch,
    pub views: ViewRecorder,
    /// Answers kept in memory, served while [`Feed`] proves them current.
    pub answers: Answers,
    pub feed: Feed,
    /// View tallies by SKU, read at most once per [`crate::TALLY_FRESH_FOR`] per product.
    pub tallies: moka::sync::Cache<String, i64>,
    pub breaker: Breaker,
    pub blobs: shared::blobs::Blobs,
}

impl QueryState {
    /// The read model collection `base`, wherever the catalog keeps it now.
    pub async fn collection(
        &self,
        base: &str,
    ) -> mongodb::error::Result<mongodb::Collection<mongodb::bson::Document>> {
        Ok(self.collections.current().await?.collection(&self.db, base))
    }
}

pub fn router(
    state: QueryState,
    readiness: Readiness,
    limiter: std::sync::Arc<shared::http::RateLimiter>,
) -> Router {
    Router::new()
        .merge(products::router())
        .merge(reports::router())
        .merge(reviews::router())
        .merge(users::router())
        .layer(middleware::from_fn_with_state(
            state.projection.clone(),
            read_your_writes,
        ))
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            limiter,
            shared::http::rate_limit,
        ))
        .layer(middleware::from_fn(shared::http::track))
        .merge(shared::http::ops_router(readiness))
        .merge(shared::openapi::router(docs::spec()))
        .layer(TraceLayer::new_for_http())
}

/// `X-Min-Position: N` waits (at most `min(X-Max-Wait-Ms, 5000)` ms, default 2000) until the
/// read models have applied position N, else 504 `projection_lagging`. Every answer carries
/// `X-Projection-Position`: the read models had applied at least that much when it was read.
async fn read_your_writes(
    State(projection): State<ProjectionWatch>,
    request: Request,
    next: Next,
) -> Response {
    let waited = match wanted(request.headers()) {
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
    response
        .headers_mut()
        .insert("x-projection-position", HeaderValue::from(seen));
    response
}

const DEFAULT_WAIT_MS: u64 = 2000;
const MAX_WAIT_MS: u64 = 5000;

/// The position a request waits for, and for how long.
fn wanted(headers: &HeaderMap) -> Result<Option<(i64, Duration)>, ApiError> {
    let header = |name: &str| -> Result<Option<u64>, ApiError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        ApiError::InvalidParameter(format!(
                            "{name}: must be a non-negative whole number"
                        ))
                    })
            })
            .transpose()
    };
    let Some(position) = header("x-min-position")? else {
        return Ok(None);
    };
    let wait = header("x-max-wait-ms")?
        .unwrap_or(DEFAULT_WAIT_MS)
        .min(MAX_WAIT_MS);
    let position = i64::try_from(position)
        .map_err(|_| ApiError::InvalidParameter("x-min-position: too large".into()))?;
    Ok(Some((position, Duration::from_millis(wait))))
}

/// Reads through the kept answers: one the change feed proves current is served without the
/// store; otherwise the store is read and the answer kept (a missing one forgotten, 404).
/// When the store fails, the last answer kept under `key`, current or not, is served, else
/// 503.
async fn read_through<F>(
    state: &QueryState,
    key: String,
    what: &'static str,
    depends: Depends,
    read: F,
) -> Result<std::sync::Arc<serde_json::Value>, ApiError>
where
    F: std::future::IntoFuture<Output = mongodb::error::Result<Option<serde_json::Value>>>,
{
    // Every answer reports at most the position seen now (the middleware read it earlier).
    let reported = state.projection.current();
    // Within the breaker: a catalog to read again from a frozen store must not hang.
    let collections = state.breaker.run(state.collections.current()).await.ok();
    if let (Some(kept), Some(collections)) = (state.answers.get(&key), &collections) {
        let current = kept
            .read_at
            .is_some_and(|at| state.feed.current(at, kept.depends, reported));
        if current && *kept.collections == **collections {
            metrics::counter!("query_cache_hits_total").increment(1);
            return Ok(kept.value.clone());
        }
    }
    metrics::counter!("query_cache_misses_total").increment(1);
    // Tagged before reading: the store holds at least this much when it answers.
    let read_at = state.feed.read_at(state.projection.current());
    match state.breaker.run(read).await {
        Ok(Some(value)) => {
            let value = std::sync::Arc::new(value);
            if let Some(collections) = collections {
                state.answers.put(
                    key.clone(),
                    Kept::new(value.clone(), read_at, depends, collections),
                );
                // A change that arrived while reading may have been dropped before the put.
                if read_at.is_some_and(|at| !state.feed.current(at, depends, 0)) {
                    state.answers.forget(&key);
                }
            }
            Ok(value)
        }
        Ok(None) => {
            state.answers.forget(&key);
            Err(ApiError::NotFound(what))
        }
        Err(e) => state
            .answers
            .get(&key)
            .map(|kept| kept.value.clone())
            .ok_or(e),
    }
}
