//! HTTP pieces every service uses: the operational endpoints (`/healthz`, `/readyz`,
//! `/metrics`), the JSON body extractor that speaks problem+json, and `serve` with graceful
//! shutdown.

mod json;
mod limits;
mod ops;
mod query;

pub use json::{ApiJson, MAX_BODY_BYTES};
pub use limits::{Decision, RateLimitConfig, RateLimiter, rate_limit, track};
pub use ops::{Readiness, ops_router};
pub use query::{DEFAULT_LIMIT, MAX_LIMIT, QueryParams};

use std::future::IntoFuture as _;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long in-flight requests may take to finish once shutdown began (Kubernetes' default
/// grace period is 30 s).
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// Serves `router` until `shutdown` is cancelled, then stops accepting connections and lets
/// in-flight requests finish, for at most [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // Handlers may extract the peer's address (`ConnectInfo<SocketAddr>`).
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future();
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = server => served,
        () = deadline => {
            tracing::warn!("requests still running after the shutdown grace period; stopping anyway");
            Ok(())
        }
    }
}
