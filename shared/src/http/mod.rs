//! HTTP pieces every service uses: the operational endpoints (`/healthz`, `/readyz`,
//! `/metrics`), the JSON body extractor that speaks problem+json, and `serve` with graceful
//! shutdown.

mod json;
mod ops;
mod query;

pub use json::{ApiJson, MAX_BODY_BYTES};
pub use ops::{Readiness, ops_router};
pub use query::{DEFAULT_LIMIT, MAX_LIMIT, QueryParams};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves `router` until `shutdown` is cancelled, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // Handlers may extract the peer's address (`ConnectInfo<SocketAddr>`).
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
