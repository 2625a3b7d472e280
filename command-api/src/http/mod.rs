//! command-api's HTTP surface. Each area exposes `fn router()`; [`router`] merges them.

mod admins;
mod auth;
mod caller;
mod command;
mod docs;
pub mod events;
mod jwks;
mod products;
mod reviews;
mod users;

use std::sync::Arc;

use axum::{Router, extract::DefaultBodyLimit};
use shared::{
    auth::{PublicKey, TokenVerifier},
    http::{Readiness, ops_router},
};
use sqlx::PgPool;
use tower_http::trace::TraceLayer;

use crate::{
    blob_gc::UploadQuota,
    identity::{
        password::Hasher, sessions::Lifetimes, throttle::LoginThrottle, tokens::TokenIssuer,
    },
};

pub use caller::{Admin, Caller};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub issuer: Arc<TokenIssuer>,
    pub verifier: TokenVerifier,
    pub public_key: PublicKey,
    pub throttle: LoginThrottle,
    /// Every password hash and check goes through it (bounded concurrency).
    pub hasher: Hasher,
    /// Verified against when a login names no user, so both failures take as long.
    pub dummy_hash: Arc<String>,
    /// Read the client address from `X-Real-IP` behind the gateway (`TRUST_PROXY_HEADERS`).
    pub trust_proxy: bool,
    pub lifetimes: Lifetimes,
    /// `UPLOAD_QUOTA_COUNT`, `UPLOAD_QUOTA_BYTES`.
    pub upload_quota: UploadQuota,
    /// Regions whose publishers may write reviews (`PUBLISH_REGIONS`).
    pub publish_regions: Arc<Vec<String>>,
    /// Upload limit for one image (`MAX_IMAGE_BYTES`).
    pub max_image_bytes: u64,
    pub blobs: shared::blobs::Blobs,
    /// The event log's settled horizon, for live tails.
    pub horizon: events::Horizon,
    /// At most a few live tails per user.
    pub live_streams: shared::http::StreamSlots,
    /// Cancelled when the service stops: ends live tails.
    pub shutdown: tokio_util::sync::CancellationToken,
}

pub fn router(
    state: AppState,
    readiness: Readiness,
    limiter: Arc<shared::http::RateLimiter>,
) -> Router {
    Router::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(admins::router())
        .merge(jwks::router())
        .merge(products::router())
        .merge(events::router())
        .merge(reviews::router(state.max_image_bytes))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            shared::http::rate_limit,
        ))
        .layer(axum::middleware::from_fn(shared::http::track))
        .merge(ops_router(readiness))
        .merge(shared::openapi::router(docs::spec()))
        .layer(DefaultBodyLimit::max(shared::http::MAX_BODY_BYTES as usize))
        .layer(TraceLayer::new_for_http())
}
