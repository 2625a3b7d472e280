//! query-api: serves the MongoDB read models to readers (products, reviews, users, reports).
//! It reads only MongoDB, so it keeps answering when the write side is down. Bearer tokens are
//! verified with the public key; sessions ended by a logout are refused within milliseconds.

pub mod cache;
pub mod feed;
pub mod fresh;
pub mod http;
pub mod listing;
pub mod projection;
pub mod views;

use std::net::SocketAddr;

use anyhow::Context as _;
use shared::{
    auth::Authenticator,
    config::{self, ConfigError, Source},
    read_side::{ReadSide, ReadSideConfig},
    telemetry::TelemetryConfig,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use cache::Breaker;
use projection::ProjectionWatch;
use views::ViewRecorder;

/// How long a product's view tally read from the store is shown before it is read again.
pub const TALLY_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(1);
/// Products whose tallies are kept at most.
const TALLIES: u64 = 100_000;

/// How often the catalog of read model collections is looked at (a rebuild's switch is seen
/// within this; a read never goes by a catalog older than a second).
const COLLECTIONS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub read_side: ReadSideConfig,
    /// Bytes of answers kept in memory: served while the change feed proves them current,
    /// and while MongoDB is unreachable (`QUERY_CACHE_BYTES`, default 64 MiB).
    pub cache_bytes: usize,
    /// Anonymous views held in memory while they wait to be published to `VIEWS`, at most
    /// (`QUERY_VIEWS_BUFFER`, default 100,000); past it new views are dropped and counted.
    pub views_buffer: usize,
    /// Products the in-memory list index holds at most (`QUERY_LIST_INDEX_PRODUCTS`, default
    /// 200,000; 0 turns it off): a larger catalog's lists are read from the store's sort.
    pub list_index_products: usize,
    /// `BLOB_DIR`: where uploaded images are stored (written by command-api).
    pub blob_dir: std::path::PathBuf,
    /// The longest an `X-Min-Position` read waits, whatever `X-Max-Wait-Ms` asks
    /// (`QUERY_MAX_WAIT_MS`, default and most 5000): a lower cap frees connections sooner.
    pub max_wait: std::time::Duration,
    /// `RATE_LIMIT_ANONYMOUS`, `RATE_LIMIT_USER`, `TRUST_PROXY_HEADERS`.
    pub rate_limit: shared::http::RateLimitConfig,
    pub telemetry: TelemetryConfig,
}

impl Config {
    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: config::socket_addr(src, "QUERY_API_ADDR", "127.0.0.1:8082")?,
            read_side: ReadSideConfig::from_env(src)?,
            cache_bytes: config::parsed(src, "QUERY_CACHE_BYTES", 64 << 20)?,
            views_buffer: config::parsed(src, "QUERY_VIEWS_BUFFER", views::BUFFER)?,
            list_index_products: config::parsed(
                src,
                "QUERY_LIST_INDEX_PRODUCTS",
                listing::MAX_PRODUCTS,
            )?,
            blob_dir: config::blob_dir(src),
            max_wait: std::time::Duration::from_millis(
                config::parsed::<u64>(src, "QUERY_MAX_WAIT_MS", http::MAX_WAIT_MS)?
                    .min(http::MAX_WAIT_MS),
            ),
            rate_limit: shared::http::RateLimitConfig::from_env(src)?,
            telemetry: TelemetryConfig::from_env(src)?,
        })
    }
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    read_side: ReadSide,
    tasks: CancellationToken,
    views_task: tokio::task::JoinHandle<()>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // The metrics recorder exists before the first thing is counted.
        shared::telemetry::metrics_handle();
        for counter in [
            "query_views_recorded_total",
            "query_views_published_total",
            "query_views_dropped_total",
        ] {
            metrics::counter!(counter).increment(0);
        }
        let read_side = ReadSide::connect(&config.read_side, "query-api").await?;
        // Background tasks stop with the service; the view publisher drains first.
        let tasks = CancellationToken::new();
        let (views, views_task) = ViewRecorder::spawn(
            read_side.js.clone(),
            read_side.prefix.clone(),
            config.views_buffer,
            tasks.clone(),
        );
        let collections = shared::read_model::CollectionsFollower::spawn(
            read_side.db.clone(),
            COLLECTIONS_EVERY,
            tasks.clone(),
        );
        let feed = feed::Feed::spawn(
            read_side.js.clone(),
            read_side.prefix.clone(),
            tasks.clone(),
        );
        let answers = fresh::Answers::new(config.cache_bytes as u64);
        let projection = ProjectionWatch::spawn(
            read_side.db.clone(),
            Some((read_side.nats(), read_side.prefix.applied_subject())),
            tasks.clone(),
        );
        let index = listing::ProductIndex::spawn(
            read_side.db.clone(),
            collections.clone(),
            projection.clone(),
            config.list_index_products,
            tasks.clone(),
        );
        spawn_cache_upkeep(feed.clone(), answers.clone(), tasks.clone());
        let state = http::QueryState::new(http::QueryParts {
            db: read_side.db.clone(),
            collections,
            authenticator: read_side.authenticator.clone(),
            projection,
            views,
            answers: answers.clone(),
            feed: feed.clone(),
            index,
            tallies: moka::sync::Cache::builder()
                .max_capacity(TALLIES)
                .time_to_live(TALLY_FRESH_FOR)
                .build(),
            breaker: Breaker::default(),
            blobs: std::sync::Arc::new(shared::blobs::FsBlobStore::new(&config.blob_dir)),
            max_wait: config.max_wait,
        });
        // Reads go on without NATS; it is reported, not required.
        let limiter = shared::http::RateLimiter::new(
            config.rate_limit,
            shared::auth::TokenVerifier::new(&config.read_side.public_key),
        );
        let router = http::router(state, read_side.readiness(false), limiter);
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding QUERY_API_ADDR {}", config.addr))?;
        Ok(Self {
            listener,
            router,
            read_side,
            tasks,
            views_task,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Verifies bearer tokens and knows which sessions have ended.
    pub fn authenticator(&self) -> Authenticator {
        self.read_side.authenticator.clone()
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(address = %self.listener.local_addr()?, "query-api listening");
        self.read_side.follow_revocations(shutdown.clone());
        let served = shared::http::serve(self.listener, self.router, shutdown).await;
        // In-flight requests are done: publish the views they recorded, then stop.
        self.tasks.cancel();
        if self.views_task.await.is_err() {
            tracing::error!("the view publisher panicked");
        }
        served?;
        Ok(())
    }
}

/// Drops a product's kept detail as soon as the product changes, and shows the cache's size
/// on `/metrics`.
fn spawn_cache_upkeep(feed: feed::Feed, answers: fresh::Answers, shutdown: CancellationToken) {
    let mut changes = feed.changes();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = changes.recv() => match changed {
                    Ok(id) => answers.forget(&fresh::product_key(&id)),
                    // Missed drops only cost memory: answers are checked when served.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    let (entries, bytes) = answers.usage();
                    metrics::gauge!("query_cache_entries").set(entries as f64);
                    metrics::gauge!("query_cache_bytes").set(bytes as f64);
                    metrics::gauge!("query_feed_live").set(if feed.is_live() { 1.0 } else { 0.0 });
                }
            }
        }
    });
}
