//! The catalog loop, measured through the real services (in-process, on this machine's
//! PostgreSQL, NATS and MongoDB-wire server), each figure next to its raw limit:
//!
//! - create-product commands over HTTP next to raw single-row INSERT transactions;
//! - command → visible in the query API (`X-Min-Position`) at a fixed rate;
//! - anonymous product detail GETs next to a raw `find_one` by `_id` loop.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use mongodb::bson::{Document, doc};
use serde_json::{Value, json};
use shared::read_model::product_fields;
use shared::{
    config::{MongoConfig, NatsConfig},
    nats::Prefix,
    telemetry::{LogFormat, TelemetryConfig},
};
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::stats::{Row, measure, summarise};

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
    pub public_key: shared::auth::PublicKey,
    pub shutdown: CancellationToken,
}

pub async fn run(
    servers: &Servers,
    levels: &[usize],
    duration: Duration,
    rate: u32,
) -> anyhow::Result<Vec<Row>> {
    with_system(servers, |system| async move {
        scenarios(&system, levels, duration, rate).await
    })
    .await
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
    let telemetry = TelemetryConfig {
        filter: "warn".into(),
        format: LogFormat::Pretty,
    };
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
        read_side: shared::read_side::ReadSideConfig {
            mongo: mongo.clone(),
            nats: nats.clone(),
            public_key: signing_key.public.clone(),
            access_token_ttl: 3600,
        },
        cache_bytes: 64 << 20,
        views_buffer: query_api::views::BUFFER,
        list_index_products: query_api::listing::MAX_PRODUCTS,
        blob_dir: std::env::temp_dir().join("camreviews-bench-blobs"),
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
    /// Creates a product; its SKU and position.
    async fn create(&self, n: usize) -> anyhow::Result<(String, i64)> {
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

async fn scenarios(
    system: &System,
    levels: &[usize],
    duration: Duration,
    rate: u32,
) -> anyhow::Result<Vec<Row>> {
    let max = levels.iter().copied().max().unwrap_or(1);
    let pool =
        command_api::store::connect(&system.pg_url, u32::try_from(max).unwrap_or(32) + 2).await?;
    crate::store::create_raw_table(&pool).await?;
    let payload = camera(0);
    let created = Arc::new(AtomicUsize::new(0));
    let mut rows = Vec::new();
    for &concurrency in levels {
        rows.push(crate::store::raw_inserts(&pool, payload.clone(), concurrency, duration).await?);
        let (s, n) = (system.clone(), created.clone());
        rows.push(
            measure(
                "create-product command (HTTP, 201)",
                concurrency,
                duration,
                move |_| {
                    let (s, n) = (s.clone(), n.clone());
                    async move {
                        s.create(n.fetch_add(1, Ordering::Relaxed)).await?;
                        Ok(())
                    }
                },
            )
            .await?,
        );
    }
    // Let the read side catch up before measuring it; how fast it drains the backlog the
    // commands left is the projector's throughput on this store.
    let applied_before = shared::read_model::applied_position(&system.db).await?;
    let (_, last) = system.create(0).await?;
    let started = Instant::now();
    while system
        .get("/api/v1/products?limit=1", Some(last))
        .await
        .is_err()
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the projector did not catch up within 10 minutes"
        );
    }
    let backlog = (last - applied_before).max(0) as usize;
    let elapsed = started.elapsed();
    rows.push(Row {
        scenario: "projector catch-up (events applied/s)".into(),
        concurrency: 1,
        ops_per_sec: backlog as f64 / elapsed.as_secs_f64(),
        p50_ms: 0.0,
        p99_ms: 0.0,
        operations: backlog,
    });
    // At the target rate, and at a quarter of it (what a small store sustains).
    for rate in [rate, (rate / 4).max(1)] {
        rows.push(visible_at_rate(system, rate, duration).await?);
        let (_, last) = system.create(0).await?;
        while system
            .get("/api/v1/products?limit=1", Some(last))
            .await
            .is_err()
        {}
    }

    let skus: Vec<String> = {
        use futures::TryStreamExt;
        let documents: Vec<Document> = shared::read_model::Collections::current(&system.db)
            .await?
            .collection::<Document>(&system.db, shared::read_model::PRODUCTS)
            .find(doc! { product_fields::DELETED: false })
            .limit(200)
            .await?
            .try_collect()
            .await?;
        documents
            .iter()
            .filter_map(|d| d.get_str(product_fields::ID).ok().map(str::to_owned))
            .collect()
    };
    anyhow::ensure!(!skus.is_empty(), "no products were projected");
    let skus = Arc::new(skus);
    let names = shared::read_model::Collections::current(&system.db).await?;
    let products = names.name(shared::read_model::PRODUCTS).to_owned();
    for &concurrency in levels {
        let (db, ids, products) = (system.db.clone(), skus.clone(), products.clone());
        let turn = Arc::new(AtomicUsize::new(0));
        rows.push(
            measure(
                "raw MongoDB find_one by _id",
                concurrency,
                duration,
                move |_| {
                    let (db, ids, turn) = (db.clone(), ids.clone(), turn.clone());
                    let products = products.clone();
                    async move {
                        let sku = &ids[turn.fetch_add(1, Ordering::Relaxed) % ids.len()];
                        db.collection::<Document>(&products)
                            .find_one(doc! { product_fields::ID: sku })
                            .await?
                            .context("a product vanished")?;
                        Ok(())
                    }
                },
            )
            .await?,
        );
        let (s, ids) = (system.clone(), skus.clone());
        let turn = Arc::new(AtomicUsize::new(0));
        rows.push(
            measure(
                "product detail GET (anonymous, counted)",
                concurrency,
                duration,
                move |_| {
                    let (s, ids, turn) = (s.clone(), ids.clone(), turn.clone());
                    async move {
                        let sku = &ids[turn.fetch_add(1, Ordering::Relaxed) % ids.len()];
                        s.get(&format!("/api/v1/products/{sku}"), None).await
                    }
                },
            )
            .await?,
        );
    }
    // Last and one at a time: a store that sorts without its index (the development
    // substitute does) keeps working on abandoned list queries long after a client gave up,
    // which would slow whatever is measured next.
    let s = system.clone();
    rows.push(
        measure("product list GET (20 newest)", 1, duration, move |_| {
            let s = s.clone();
            async move { s.get("/api/v1/products?limit=20", None).await }
        })
        .await?,
    );
    Ok(rows)
}

/// Commands at a fixed rate, each followed by a read that waits until it is visible; the
/// latency is from sending the command to the product being served.
async fn visible_at_rate(system: &System, rate: u32, duration: Duration) -> anyhow::Result<Row> {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 1_000_000;
    while started.elapsed() < duration {
        ticker.tick().await;
        n += 1;
        let s = system.clone();
        tasks.spawn(async move {
            let t = Instant::now();
            let (sku, position) = s.create(n).await?;
            // A 504 (not visible within 5 s) is asked again: the figure is when it showed.
            let path = format!("/api/v1/products/{sku}");
            while s.get(&path, Some(position)).await.is_err() {
                anyhow::ensure!(t.elapsed() < Duration::from_secs(120), "{sku} never showed");
            }
            anyhow::Ok(t.elapsed())
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.push(done.context("a bench task panicked")??);
    }
    Ok(summarise(
        &format!("command -> visible in query API at {rate}/s"),
        0,
        latencies,
        started.elapsed(),
    ))
}
