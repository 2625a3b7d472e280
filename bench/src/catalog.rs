//! The catalog loop, measured through the real services (in-process, on this machine's
//! PostgreSQL, NATS and MongoDB-wire server: see [`crate::system`]), each figure next to its
//! raw limit:
//!
//! - create-product commands over HTTP next to raw single-row INSERT transactions;
//! - command → visible in the query API (`X-Min-Position`) at a fixed rate;
//! - anonymous product detail GETs next to a raw `find_one` by `_id` loop.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use mongodb::bson::{Document, doc};
use shared::read_model::product_fields;

use crate::{
    stats::{Row, measure, summarise},
    system::{Servers, System, camera, with_system},
};

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

async fn scenarios(
    system: &System,
    levels: &[usize],
    duration: Duration,
    rate: u32,
) -> anyhow::Result<Vec<Row>> {
    let max = levels.iter().copied().max().unwrap_or(1);
    let pool = eventstore::connect(&system.pg_url, u32::try_from(max).unwrap_or(32) + 2).await?;
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
    // At the target rate, and at a quarter of it (what a small store sustains); then rates
    // rising by half until p99 passes 100 ms or the rate is not kept up: the last rate under
    // it is reported.
    let settle = async || -> anyhow::Result<()> {
        let (_, last) = system.create(0).await?;
        while system
            .get("/api/v1/products?limit=1", Some(last))
            .await
            .is_err()
        {}
        Ok(())
    };
    for rate in [rate, (rate / 4).max(1)] {
        rows.push(visible_at_rate(system, rate, duration).await?);
        settle().await?;
    }
    let mut sweep = rate.max(1);
    let mut highest = None;
    loop {
        sweep += sweep / 2;
        let row = visible_at_rate(system, sweep, duration).await?;
        let kept_up = row.ops_per_sec >= 0.95 * f64::from(sweep);
        let under = row.p99_ms < 100.0 && kept_up;
        rows.push(row);
        settle().await?;
        if !under || sweep > 20_000 {
            break;
        }
        highest = Some(sweep);
    }
    rows.push(Row {
        scenario: "highest rate with command -> visible p99 under 100 ms (commands/s)".into(),
        concurrency: 0,
        ops_per_sec: f64::from(highest.unwrap_or(0)),
        p50_ms: 0.0,
        p99_ms: 0.0,
        operations: 0,
    });

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
