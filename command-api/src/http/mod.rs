//! command-api's HTTP surface. Each area exposes `fn router()`; [`router`] merges them.

use axum::{Router, extract::DefaultBodyLimit};
use shared::http::{Readiness, ops_router};
use sqlx::PgPool;
use tower_http::trace::TraceLayer;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
}

pub fn router(state: AppState, readiness: Readiness) -> Router {
    Router::new()
        .with_state(state)
        .merge(ops_router(readiness))
        .layer(DefaultBodyLimit::max(shared::http::MAX_BODY_BYTES as usize))
        .layer(TraceLayer::new_for_http())
}
