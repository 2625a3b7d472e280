//! Projection rebuild: `camctl projections rebuild all` over a store of `events` events (half
//! product creations, half updates), in events/s, next to raw MongoDB bulk inserts
//! (`insert_many` of 1,000 product-sized documents) on the same store.
//!
//! The camctl binary is run as an operator would run it; build it first
//! (`cargo build --release -p camctl`), it is looked for next to this binary.

use std::time::{Duration, Instant};

use mongodb::bson::{Document, doc};
use shared::{config::MongoConfig, read_model::product_fields};
use uuid::Uuid;

use crate::stats::Row;

pub async fn run(admin_url: &str, mongodb_url: &str, events: u64) -> anyhow::Result<Vec<Row>> {
    let camctl = std::env::current_exe()?.with_file_name("camctl");
    anyhow::ensure!(
        camctl.exists(),
        "{} is missing: cargo build --release -p camctl",
        camctl.display()
    );
    let scratch = crate::store::ScratchDatabase::create(admin_url).await?;
    let url = scratch.url.clone();
    let mongo = MongoConfig {
        url: mongodb_url.to_owned(),
        db: scratch.name.clone(),
    };
    let outcome = async {
        let products = i64::try_from(events / 2)?;
        let pool = eventstore::connect(url.as_str(), 4).await?;
        fill(&pool, products).await?;
        let db = shared::mongo::connect(&mongo, "bench").await?;

        let started = Instant::now();
        let output = tokio::process::Command::new(&camctl)
            .args(["projections", "rebuild", "all", "--progress", "never"])
            .env("DATABASE_URL", url.as_str())
            .env("MONGODB_URL", &mongo.url)
            .env("MONGODB_DB", &mongo.db)
            .output()
            .await?;
        let rebuild = started.elapsed();
        anyhow::ensure!(
            output.status.success(),
            "camctl failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let documents = shared::read_model::Collections::current(&db)
            .await?
            .collection::<Document>(&db, shared::read_model::PRODUCTS)
            .count_documents(doc! {})
            .await?;
        anyhow::ensure!(
            documents == products.unsigned_abs(),
            "rebuilt {documents} products"
        );

        let raw = bulk_inserts(&db, events).await?;
        Ok(vec![
            row("projection rebuild (camctl, all models)", events, rebuild),
            row("raw MongoDB insert_many (1,000 per command)", events, raw),
        ])
    }
    .await;
    let _ = scratch.drop().await;
    if let Ok(db) = shared::mongo::connect(&mongo, "bench").await {
        let _ = db.drop().await;
    }
    outcome
}

fn row(scenario: &str, operations: u64, took: Duration) -> Row {
    Row {
        scenario: scenario.to_owned(),
        concurrency: 1,
        ops_per_sec: operations as f64 / took.as_secs_f64(),
        p50_ms: 0.0,
        p99_ms: 0.0,
        operations: usize::try_from(operations).unwrap_or(usize::MAX),
    }
}

/// `products` creations, then one price update of each, straight into the event store.
async fn fill(pool: &sqlx::PgPool, products: i64) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query(
        "CREATE TEMP TABLE skus AS SELECT gen_random_uuid() AS sku, n
         FROM generate_series(1, $1) AS n",
    )
    .bind(products)
    .execute(&mut *conn)
    .await?;
    for statement in [
        "INSERT INTO events (event_id, event_type, schema_version, aggregate_type, aggregate_id,
                             aggregate_version, occurred_at, correlation_id, data)
         SELECT gen_random_uuid(), 'ProductCreated', 1, 'product', sku, 1, now(), gen_random_uuid(),
                jsonb_build_object('name', 'Camera ' || n, 'brand', 'Leica', 'price', '100.00',
                                   'currency', 'USD', 'description', 'A camera for the benchmark.',
                                   'specs', jsonb_build_object('sensor', 'full frame'))
         FROM skus ORDER BY n",
        "INSERT INTO events (event_id, event_type, schema_version, aggregate_type, aggregate_id,
                             aggregate_version, occurred_at, correlation_id, data)
         SELECT gen_random_uuid(), 'ProductUpdated', 1, 'product', sku, 2, now(), gen_random_uuid(),
                jsonb_build_object('changes', jsonb_build_object(
                    'price', jsonb_build_object('before', '100.00', 'after', '90.00')))
         FROM skus ORDER BY n",
    ] {
        sqlx::query(statement).execute(&mut *conn).await?;
    }
    Ok(())
}

async fn bulk_inserts(db: &mongodb::Database, documents: u64) -> anyhow::Result<Duration> {
    let collection = db.collection::<Document>("bench_raw_inserts");
    let started = Instant::now();
    let mut written = 0;
    while written < documents {
        let batch: Vec<Document> = (written..(written + 1000).min(documents))
            .map(|n| {
                use product_fields::*;
                // Product-shaped, as the raw limit to compare rebuilds with.
                doc! {
                    ID: Uuid::new_v4().to_string(), NAME: format!("Camera {n}"),
                    BRAND: "Leica", BRAND_KEY: "leica", PRICE: "100.00", PRICE_CENTS: 10_000_i64,
                    CURRENCY: "USD", DESCRIPTION: "A camera for the benchmark.",
                    SPECS: { "sensor": "full frame" }, VERSION: 1_i64, DELETED: false,
                }
            })
            .collect();
        written += batch.len() as u64;
        collection.insert_many(batch).await?;
    }
    Ok(started.elapsed())
}
