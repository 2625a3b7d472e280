//! `/healthz` (the process runs), `/readyz` (its dependencies answer), `/metrics`
//! (Prometheus text).

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use futures::future::{BoxFuture, join_all};
use serde_json::json;

use crate::ApiError;

type Probe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The dependencies a service needs before it can do its work, each with a probe.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Probe)>,
    /// Checks whose failure is reported but does not make the service unready: it can still
    /// do its main work without that dependency (query-api without NATS).
    advisory: Vec<(&'static str, Probe)>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn check<F, Fut>(mut self, name: &'static str, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(probe()))));
        self
    }

    /// A dependency that is reported in `/readyz` when it fails but does not make the service
    /// unready.
    pub fn advise<F, Fut>(mut self, name: &'static str, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.advisory
            .push((name, Arc::new(move || Box::pin(probe()))));
        self
    }

    /// Runs every probe at once, each bounded, and returns the failures by name.
    async fn failures(checks: &[(&'static str, Probe)]) -> Vec<(&'static str, String)> {
        let probes = checks.iter().map(|(name, probe)| async move {
            let outcome = tokio::time::timeout(Duration::from_secs(2), probe()).await;
            match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some((*name, e)),
                Err(_) => Some((*name, "did not answer within 2s".to_owned())),
            }
        });
        join_all(probes).await.into_iter().flatten().collect()
    }
}

pub fn ops_router(readiness: Readiness) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let (failures, degraded) = futures::join!(
        Readiness::failures(&readiness.checks),
        Readiness::failures(&readiness.advisory)
    );
    if failures.is_empty() {
        let degraded: serde_json::Map<_, _> = degraded
            .into_iter()
            .map(|(name, reason)| (name.to_owned(), reason.into()))
            .collect();
        let body = if degraded.is_empty() {
            json!({ "status": "ready" })
        } else {
            json!({ "status": "ready", "degraded": degraded })
        };
        return (StatusCode::OK, Json(body)).into_response();
    }
    let detail = failures
        .iter()
        .map(|(name, reason)| format!("{name}: {reason}"))
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::Unavailable {
        detail,
        retry_after_secs: 1,
    }
    .into_response()
}

async fn metrics() -> impl IntoResponse {
    let handle = crate::telemetry::metrics_handle();
    handle.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
}
