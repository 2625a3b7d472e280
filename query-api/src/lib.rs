//! query-api: serves the MongoDB read models to readers: products, reviews, users, reports. Reads only MongoDB, so it keeps answering when the write side is down.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context as _;
use shared::{
    auth::{Authenticator, PublicKey, Revocations, TokenVerifier},
    config::{self, ConfigError, MongoConfig, NatsConfig, Source},
    http::Readiness,
    telemetry::TelemetryConfig,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub mongo: MongoConfig,
    pub nats: NatsConfig,
    pub telemetry: TelemetryConfig,
    pub public_key: PublicKey,
    /// Seconds; how far back session revocations matter.
    pub access_token_ttl: i64,
}

impl Config {
    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: config::socket_addr(src, "QUERY_API_ADDR", "127.0.0.1:8082")?,
            mongo: MongoConfig::from_env(src)?,
            nats: NatsConfig::from_env(src)?,
            telemetry: TelemetryConfig::from_env(src)?,
            public_key: PublicKey::from_env(src)?,
            access_token_ttl: config::positive_secs(src, "ACCESS_TOKEN_TTL", 900)?,
        })
    }
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    authenticator: Authenticator,
    js: async_nats::jetstream::Context,
    prefix: shared::nats::Prefix,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = shared::mongo::connect(&config.mongo, "query-api").await?;
        let nats = shared::nats::connect(&config.nats.url, "query-api").await?;
        let js = async_nats::jetstream::new(nats.clone());
        let ttl = Duration::from_secs(config.access_token_ttl.unsigned_abs());
        let revocations = Revocations::new(ttl);
        let authenticator =
            Authenticator::new(TokenVerifier::new(&config.public_key), revocations.clone());
        let readiness = Readiness::new()
            .check("mongodb", move || {
                let db = db.clone();
                async move { shared::mongo::ping(&db).await }
            })
            .check("nats", move || {
                let state = shared::nats::is_connected(&nats);
                async move { state }
            })
            .check("session revocations", move || {
                let caught_up = revocations.is_caught_up();
                async move {
                    if caught_up {
                        Ok(())
                    } else {
                        Err("still reading recent logouts".to_owned())
                    }
                }
            });
        let router = shared::http::ops_router(readiness)
            .layer(tower_http::trace::TraceLayer::new_for_http());
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding QUERY_API_ADDR {}", config.addr))?;
        Ok(Self {
            listener,
            router,
            authenticator,
            js,
            prefix: config.nats.prefix,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Verifies bearer tokens and knows which sessions have ended.
    pub fn authenticator(&self) -> Authenticator {
        self.authenticator.clone()
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.authenticator
            .revocations()
            .spawn_follower(self.js, self.prefix, shutdown.clone());
        tracing::info!(address = %self.listener.local_addr()?, "query-api listening");
        shared::http::serve(self.listener, self.router, shutdown).await?;
        Ok(())
    }
}
