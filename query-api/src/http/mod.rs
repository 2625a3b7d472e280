//! query-api's HTTP surface. Each area exposes `fn router()`; [`router`] merges them.

mod reader;
mod users;

use axum::Router;
use mongodb::Database;
use shared::{ApiError, auth::Authenticator, http::Readiness};
use tower_http::trace::TraceLayer;

pub use reader::Reader;

#[derive(Clone)]
pub struct QueryState {
    pub db: Database,
    pub authenticator: Authenticator,
}

pub fn router(state: QueryState, readiness: Readiness) -> Router {
    Router::new()
        .merge(users::router())
        .with_state(state)
        .merge(shared::http::ops_router(readiness))
        .layer(TraceLayer::new_for_http())
}

/// The read store failing is the client's 503, to retry shortly; the cause is logged.
fn store_unavailable(error: mongodb::error::Error) -> ApiError {
    tracing::warn!(error = %error, "the read store failed");
    ApiError::Unavailable {
        detail: "the read store is unavailable".into(),
        retry_after_secs: 1,
    }
}
