//! HTTP pieces every service uses: the operational endpoints (`/healthz`, `/readyz`,
//! `/metrics`), the JSON body extractor that speaks problem+json, and `serve` with graceful
//! shutdown.

mod json;
mod limits;
mod ops;
mod query;
mod slots;

pub use json::{ApiJson, MAX_BODY_BYTES};
pub use limits::{Decision, RateLimitConfig, RateLimiter, client_address, rate_limit, track};
pub use ops::{Readiness, ops_router};
pub use query::{DEFAULT_LIMIT, MAX_LIMIT, QueryParams};
pub use slots::{LIVE_STREAMS_PER_USER, StreamSlot, StreamSlots};

use std::{net::SocketAddr, time::Duration};

use axum::{
    extract::{ConnectInfo, Request},
    http::{HeaderValue, header},
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tower_http::timeout::TimeoutBody;

/// How long in-flight requests may take to finish once shutdown began (Kubernetes' default
/// grace period is 30 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// A client must send a request's whole head within this long (a slow-header client is
/// disconnected); an idle kept-alive connection is closed after it too.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body that sends nothing for this long ends with an error (a slow-body client).
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Serves `router` until `shutdown` is cancelled, then stops accepting connections and lets
/// in-flight requests finish, for at most [`SHUTDOWN_GRACE`].
///
/// hyper directly rather than `axum::serve`, which sets no timer and so no header-read
/// timeout. Every answer carries `X-Content-Type-Options: nosniff`; handlers may extract the
/// peer's address (`ConnectInfo<SocketAddr>`).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let graceful = GracefulShutdown::new();
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = socket.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut request = request
                .map(|body| axum::body::Body::new(TimeoutBody::new(BODY_IDLE_TIMEOUT, body)));
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            let answer = router.clone().oneshot(request);
            async move {
                let mut response = answer.await?;
                response.headers_mut().insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(socket), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("requests still running after the shutdown grace period; stopping anyway");
        }
    }
    Ok(())
}
