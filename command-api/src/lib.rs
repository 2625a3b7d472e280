//! command-api: authenticates, validates, runs commands against aggregates, appends their
//! events to PostgreSQL and runs the outbox relay that publishes them to JetStream.

pub mod blob_gc;
pub mod commands;
pub mod config;
pub mod domain;
pub mod http;
pub mod identity;
pub mod images;
pub mod relay;

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use shared::{auth::TokenVerifier, http::Readiness};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use identity::{
    password::Hasher,
    sessions::Lifetimes,
    superuser,
    throttle::{LoginThrottle, ThrottleConfig},
    tokens::TokenIssuer,
};
use relay::{Relay, RelayConfig};

/// How long the relay may take, after the last request, to publish what requests appended.
const RELAY_DRAIN: Duration = Duration::from_secs(8);

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    relay: Relay,
    pool: PgPool,
    /// Cancelled with the service's shutdown token: live tails and the horizon follower stop.
    stopping: CancellationToken,
    /// Cancels `stopping` when the application is dropped unused or stops.
    _stop_on_drop: tokio_util::sync::DropGuard,
}

impl Application {
    /// Connects to PostgreSQL (running migrations) and NATS, and binds the listener
    /// (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // The metrics recorder exists before the first thing is counted.
        shared::telemetry::metrics_handle();
        Self::build_with(config, RelayConfig::default()).await
    }

    pub async fn build_with(config: Config, relay_config: RelayConfig) -> anyhow::Result<Self> {
        let pool =
            eventstore::connect(&config.database_url, config.database_max_connections).await?;
        let nats = shared::nats::connect(&config.nats.url, "command-api").await?;
        let js = async_nats::jetstream::new(nats.clone());
        let relay = Relay::new(
            pool.clone(),
            js.clone(),
            config.nats.prefix.clone(),
            relay_config,
        );

        let readiness = Readiness::new()
            .check("postgres", {
                let pool = pool.clone();
                move || {
                    let pool = pool.clone();
                    async move {
                        sqlx::query("SELECT 1")
                            .execute(&pool)
                            .await
                            .map(drop)
                            .map_err(|e| e.to_string())
                    }
                }
            })
            .check("nats", move || {
                let state = shared::nats::is_connected(&nats);
                async move { state }
            });
        let stopping = CancellationToken::new();
        // Whatever fails from here on, the tasks spawned for this application end with it.
        let stop_on_drop = stopping.clone().drop_guard();
        // About the core count: more parallel hashes would not finish sooner, only hold more
        // memory. A login waits up to 2 s for a slot, then is answered 503.
        let hasher = Hasher::new(config.password_hash_concurrency, Duration::from_secs(2));
        if let Some(seed) = &config.superuser {
            superuser::ensure(&pool, &hasher, seed).await?;
        }
        let blobs: shared::blobs::Blobs =
            Arc::new(shared::blobs::FsBlobStore::new(&config.blob_dir));
        blob_gc::spawn(
            pool.clone(),
            blobs.clone(),
            config.blob_gc_grace,
            stopping.clone(),
        );
        let revocations = shared::auth::Revocations::new(Duration::from_secs(
            config.access_token_ttl.unsigned_abs(),
        ));
        revocations.spawn_follower(js, config.nats.prefix.clone(), stopping.clone());
        let state = http::AppState {
            revocations,
            pool: pool.clone(),
            issuer: Arc::new(TokenIssuer::new(
                &config.signing_key,
                config.access_token_ttl,
            )),
            verifier: TokenVerifier::new(&config.signing_key.public),
            public_key: config.signing_key.public.clone(),
            throttle: LoginThrottle::new(ThrottleConfig::default()),
            dummy_hash: Arc::new(hasher.dummy_hash().await.map_err(anyhow::Error::from)?),
            hasher,
            trust_proxy: config.rate_limit.trust_proxy,
            lifetimes: Lifetimes {
                refresh_secs: config.refresh_token_ttl,
                session_secs: config.session_max_age,
            },
            upload_quota: config.upload_quota,
            publish_regions: Arc::new(config.publish_regions.clone()),
            max_image_bytes: config.max_image_bytes,
            blobs,
            horizon: http::events::Horizon::spawn(pool.clone(), stopping.clone()).await?,
            live_streams: shared::http::StreamSlots::standard(),
            shutdown: stopping.clone(),
        };
        let limiter = shared::http::RateLimiter::new(
            config.rate_limit,
            TokenVerifier::new(&config.signing_key.public),
        );
        let router = http::router(state, readiness, limiter);
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding COMMAND_API_ADDR {}", config.addr))?;
        Ok(Self {
            listener,
            router,
            relay,
            pool,
            stopping,
            _stop_on_drop: stop_on_drop,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn pool(&self) -> PgPool {
        self.pool.clone()
    }

    /// Serves until `shutdown`; then stops taking requests, lets those in flight finish, and
    /// has the relay publish everything they appended before it stops.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(address = %self.listener.local_addr()?, "command-api listening");
        let relay_stop = CancellationToken::new();
        let relay = tokio::spawn(self.relay.run(relay_stop.clone()));
        let stopping = self.stopping.clone();
        let stop_signal = shutdown.clone();
        tokio::spawn(async move {
            stop_signal.cancelled().await;
            stopping.cancel();
        });
        let served = shared::http::serve(self.listener, self.router, shutdown).await;
        // Every accepted command's events are in the store now: publish them, then stop.
        relay_stop.cancel();
        match tokio::time::timeout(RELAY_DRAIN, relay).await {
            Ok(joined) => joined.context("the relay task panicked")?,
            // NATS away or a large backlog: the next leader publishes the rest.
            Err(_) => tracing::warn!("the relay did not finish publishing within {RELAY_DRAIN:?}"),
        }
        served?;
        Ok(())
    }
}
