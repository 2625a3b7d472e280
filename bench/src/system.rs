//! The services under measurement, running in this process (command-api, projector and
//! query-api on this machine's PostgreSQL, NATS and MongoDB-wire server) against a scratch
//! database and NATS prefix that are dropped when the scenarios end; and the requests the
//! scenarios send them.

use std::{collections::HashMap, time::Duration};

use anyhow::Context as _;
use serde_json::{Value, json};
use shared::{
    auth::PublicKey,
    config::{MongoConfig, NatsConfig},
    nats::Prefix,
    read_side::ReadSideConfig,
    telemetry::{LogFormat, TelemetryConfig},
};
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::stats::Row;

pub struct Servers {
    pub admin_url: String,
    pub nats_url: String,
    pub mongodb_url: String,
}

/// The services, running in this process against scratch databases and a NATS prefix.
#[derive(Clone)]
pub struct System {
    pub command: String,
    pub query: String,
    pub token: String,
    pub client: reqwest::Client,
    pub db: mongodb::Database,
    pub pg_url: String,
    pub mongo: MongoConfig,
    pub nats: NatsConfig,
    pub public_key: PublicKey,
    pub shutdown: CancellationToken,
}

/// Runs `scenarios` against a fresh system, and leaves nothing behind.
pub async fn with_system<F, Fut>(servers: &Servers, scenarios: F) -> anyhow::Result<Vec<Row>>
where
    F: FnOnce(System) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Vec<Row>>>,
{
    let id = Uuid::new_v4().simple().to_string()[..12].to_owned();
    let name = format!("camreviews_bench_{id}");
    let mut admin = PgConnection::connect(&servers.admin_url)
        .await
        .context("BENCH_DATABASE_URL")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let mut url = url::Url::parse(&servers.admin_url)?;
    url.set_path(&name);
    let mongo = MongoConfig {
        url: servers.mongodb_url.clone(),
        db: name.clone(),
    };
    let nats = NatsConfig {
        url: servers.nats_url.clone(),
        prefix: Prefix::parse(&format!("bench{id}")).map_err(anyhow::Error::msg)?,
    };
    let outcome = async {
        let system = start(url.as_str(), &mongo, &nats).await?;
        let shutdown = system.shutdown.clone();
        let rows = scenarios(system).await;
        shutdown.cancel();
        rows
    }
    .await;
    // Leave nothing behind.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    if let Ok(db) = shared::mongo::connect(&mongo, "bench").await {
        let _ = db.drop().await;
    }
    if let Ok(client) = async_nats::connect(&nats.url).await {
        let js = async_nats::jetstream::new(client);
        for stream in [
            nats.prefix.events_stream(),
            nats.prefix.views_stream(),
            nats.prefix.dlq_stream(),
        ] {
            let _ = js.delete_stream(stream).await;
        }
    }
    outcome
}

async fn start(pg_url: &str, mongo: &MongoConfig, nats: &NatsConfig) -> anyhow::Result<System> {
    let telemetry = quiet_telemetry();
    let data_dir = std::env::temp_dir().join(format!("camreviews-bench-{}", Uuid::new_v4()));
    let env: HashMap<String, String> = [
        ("CAMREVIEWS_DATA_DIR", data_dir.display().to_string()),
        ("SUPERUSER_USERNAME", "bench".into()),
        ("SUPERUSER_EMAIL", "bench@example.com".into()),
        ("SUPERUSER_PASSWORD", "bench-password".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let signing_key = shared::auth::SigningKey::from_env(&env)?;
    let shutdown = CancellationToken::new();

    let command = command_api::Application::build(command_api::Config {
        addr: "127.0.0.1:0".parse()?,
        database_url: pg_url.to_owned(),
        database_max_connections: 40,
        nats: nats.clone(),
        telemetry: telemetry.clone(),
        data_dir,
        signing_key: signing_key.clone(),
        access_token_ttl: 3600,
        refresh_token_ttl: 3600,
        superuser: command_api::identity::superuser::SuperuserSeed::from_env(&env)?,
        publish_regions: vec!["south-america".to_owned()],
        blob_dir: std::env::temp_dir().join("camreviews-bench-blobs"),
        max_image_bytes: 5_242_880,
        rate_limit: shared::http::RateLimitConfig::OFF,
        session_max_age: 2_592_000,
        password_hash_concurrency: 2,
        upload_quota: command_api::blob_gc::UploadQuota { count: 0, bytes: 0 },
        blob_gc_grace: std::time::Duration::from_secs(3600),
    })
    .await?;
    let command_url = format!("http://127.0.0.1:{}", command.port());
    tokio::spawn(command.run_until_stopped(shutdown.clone()));

    let projector = projector::Application::build(projector::Config {
        addr: "127.0.0.1:0".parse()?,
        mongo: mongo.clone(),
        nats: nats.clone(),
        consumer: projector::consumer::CONSUMER.to_owned(),
        telemetry: telemetry.clone(),
    })
    .await?;
    tokio::spawn(projector.run_until_stopped(shutdown.clone()));

    let query = query_api::Application::build(query_api::Config {
        addr: "127.0.0.1:0".parse()?,
        read_side: read_side(mongo, nats, &signing_key.public),
        cache_bytes: 64 << 20,
        views_buffer: query_api::views::BUFFER,
        list_index_products: query_api::listing::MAX_PRODUCTS,
        blob_dir: std::env::temp_dir().join("camreviews-bench-blobs"),
        max_wait: std::time::Duration::from_millis(query_api::http::MAX_WAIT_MS),
        rate_limit: shared::http::RateLimitConfig::OFF,
        telemetry,
    })
    .await?;
    let query_url = format!("http://127.0.0.1:{}", query.port());
    tokio::spawn(query.run_until_stopped(shutdown.clone()));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let login: Value = loop {
        let reply = client
            .post(format!("{command_url}/api/v1/auth/login"))
            .json(&json!({ "username": "bench", "password": "bench-password" }))
            .send()
            .await;
        if let Ok(reply) = reply {
            if reply.status() == 200 {
                break reply.json().await?;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Ok(System {
        command: command_url,
        query: query_url,
        token: login["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        client,
        db: shared::mongo::connect(mongo, "bench").await?,
        pg_url: pg_url.to_owned(),
        mongo: mongo.clone(),
        nats: nats.clone(),
        public_key: signing_key.public.clone(),
        shutdown,
    })
}

/// What the services started here log: warnings only.
pub fn quiet_telemetry() -> TelemetryConfig {
    TelemetryConfig {
        filter: "warn".into(),
        format: LogFormat::Pretty,
    }
}

/// How a read-side service started here reaches the system's stores and checks its tokens.
fn read_side(mongo: &MongoConfig, nats: &NatsConfig, public_key: &PublicKey) -> ReadSideConfig {
    ReadSideConfig {
        mongo: mongo.clone(),
        nats: nats.clone(),
        public_key: public_key.clone(),
        access_token_ttl: 3600,
    }
}

pub fn camera(n: usize) -> Value {
    json!({
        "name": format!("Bench camera {n}"),
        "brand": "Bench",
        "price": "999.00",
        "description": "A camera created by the benchmark",
        "specs": { "sensor": "full frame" },
    })
}

impl System {
    /// The read side's configuration for one more service started against this system.
    pub fn read_side(&self) -> ReadSideConfig {
        read_side(&self.mongo, &self.nats, &self.public_key)
    }

    /// Creates a product; its SKU and position.
    pub async fn create(&self, n: usize) -> anyhow::Result<(String, i64)> {
        self.create_product(camera(n)).await
    }

    /// Creates `product`; its SKU and position.
    pub async fn create_product(&self, product: Value) -> anyhow::Result<(String, i64)> {
        let reply = self
            .client
            .post(format!("{}/api/v1/products", self.command))
            .bearer_auth(&self.token)
            .json(&product)
            .send()
            .await?;
        anyhow::ensure!(reply.status() == 201, "create answered {}", reply.status());
        let body: Value = reply.json().await?;
        Ok((
            body["sku"].as_str().unwrap_or_default().to_owned(),
            body["position"].as_i64().unwrap_or(0),
        ))
    }

    pub async fn get(&self, path: &str, min_position: Option<i64>) -> anyhow::Result<()> {
        let mut request = self.client.get(format!("{}{path}", self.query));
        if let Some(position) = min_position {
            request = request
                .header("x-min-position", position)
                .header("x-max-wait-ms", 5000);
        }
        let reply = request.send().await?;
        anyhow::ensure!(
            reply.status() == 200,
            "GET {path} answered {}",
            reply.status()
        );
        reply.bytes().await?;
        Ok(())
    }
}
