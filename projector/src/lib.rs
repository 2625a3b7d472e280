//! projector: consumes the EVENTS stream and maintains the MongoDB read models
//! ([`projections`]), idempotently and in per-aggregate version order ([`consumer`]). It also
//! owns the zero-downtime rebuild of the read models from the event store ([`rebuild`]), which
//! `camctl projections rebuild` runs.

pub mod checkpoint;
pub mod consumer;
pub mod projections;
pub mod rebuild;

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use shared::{
    config::{self, ConfigError, MongoConfig, NatsConfig, Source},
    http::Readiness,
    telemetry::TelemetryConfig,
};
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;

use checkpoint::Checkpointer;
use consumer::Projector;

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub mongo: MongoConfig,
    pub nats: NatsConfig,
    /// The durable consumer (`PROJECTOR_CONSUMER`, default `projector`). Projecting the same
    /// stream into a second database (a replay, a blue/green switch) takes a second name.
    pub consumer: String,
    pub telemetry: TelemetryConfig,
}

impl Config {
    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: config::socket_addr(src, "PROJECTOR_ADDR", "127.0.0.1:8083")?,
            mongo: MongoConfig::from_env(src)?,
            nats: NatsConfig::from_env(src)?,
            consumer: consumer_name(src)?,
            telemetry: TelemetryConfig::from_env(src)?,
        })
    }
}

/// A durable consumer name: letters, digits, `_` and `-`.
fn consumer_name(src: &dyn Source) -> Result<String, ConfigError> {
    let name: String = config::parsed(src, "PROJECTOR_CONSUMER", consumer::CONSUMER.to_owned())?;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(name)
    } else {
        Err(ConfigError::new(
            "PROJECTOR_CONSUMER",
            format!("{name:?} may only hold letters, digits, '_' and '-'"),
        ))
    }
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    projector: Projector,
    checkpointer: Checkpointer,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // The metrics recorder exists before the first thing is counted.
        shared::telemetry::metrics_handle();
        let db = shared::mongo::connect(&config.mongo, "projector").await?;
        let nats = shared::nats::connect(&config.nats.url, "projector").await?;
        let js = async_nats::jetstream::new(nats.clone());
        let acked = Arc::new(Notify::new());
        let projector = Projector {
            js: js.clone(),
            prefix: config.nats.prefix.clone(),
            db: db.clone(),
            consumer: config.consumer.clone(),
            acked: acked.clone(),
            stopping: CancellationToken::new(),
            rebuild: consumer::RebuildWatch::new(db.clone()),
        };
        let checkpointer = Checkpointer {
            js,
            nats: nats.clone(),
            prefix: config.nats.prefix.clone(),
            db: db.clone(),
            consumer: config.consumer.clone(),
            nudge: acked,
        };
        let readiness = Readiness::new()
            .check("mongodb", move || {
                let db = db.clone();
                async move { shared::mongo::ping(&db).await }
            })
            .check("nats", move || {
                let state = shared::nats::is_connected(&nats);
                async move { state }
            });
        let router = shared::http::ops_router(readiness)
            .layer(tower_http::trace::TraceLayer::new_for_http());
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding PROJECTOR_ADDR {}", config.addr))?;
        Ok(Self {
            listener,
            router,
            projector,
            checkpointer,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves health and metrics and consumes events until `shutdown`; the event in hand is
    /// finished and acknowledged first.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(address = %self.listener.local_addr()?, "projector listening");
        let stopping = self.projector.stopping.clone();
        let stop_signal = shutdown.clone();
        tokio::spawn(async move {
            stop_signal.cancelled().await;
            stopping.cancel();
        });
        let consumer = tokio::spawn(self.projector.run(shutdown.clone()));
        let checkpointer = tokio::spawn(self.checkpointer.run(shutdown.clone()));
        shared::http::serve(self.listener, self.router, shutdown).await?;
        consumer.await.context("the projector task panicked")?;
        checkpointer.await.context("the checkpoint task panicked")?;
        Ok(())
    }
}
