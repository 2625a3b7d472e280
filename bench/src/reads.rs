//! The read path under load from a separate process: wrk (the Debian package) against
//! query-api's own `/healthz` (the HTTP stack's limit) and against each kind of read, while a
//! background writer updates 50 products a second, next to a raw `find_one` by `_id` loop on
//! the same store. 20,000 products, a tenth of them of a brand the writer never touches (the
//! filtered page and the 304 revalidation read those).

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use futures::StreamExt as _;
use mongodb::bson::{Document, doc};
use serde_json::json;

use crate::{
    stats::{Row, measure},
    system::{Servers, System, quiet_telemetry, with_system},
};

const PRODUCTS: usize = 20_000;
/// Products the detail rows rotate over.
const HOT: usize = 100;
const UPDATES_PER_SEC: u64 = 50;

pub async fn run(
    servers: &Servers,
    levels: &[usize],
    duration: Duration,
) -> anyhow::Result<Vec<Row>> {
    which_wrk()?;
    with_system(servers, |system| async move {
        scenarios(&system, levels, duration).await
    })
    .await
}

fn which_wrk() -> anyhow::Result<()> {
    let found = std::process::Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    anyhow::ensure!(found, "wrk is not installed (apt-get install wrk)");
    Ok(())
}

async fn scenarios(
    system: &System,
    levels: &[usize],
    duration: Duration,
) -> anyhow::Result<Vec<Row>> {
    eprintln!("creating {PRODUCTS} products...");
    let created = Arc::new(AtomicUsize::new(0));
    let products: Vec<(String, i64, bool)> = futures::stream::iter(0..PRODUCTS)
        .map(|n| {
            let (system, created) = (system.clone(), created.clone());
            async move {
                let stable = n % 10 == 0;
                let product = json!({
                    "name": format!("Read camera {n}"),
                    "brand": if stable { "Leica" } else { "Bench" },
                    "price": format!("{}.00", 100 + n % 900),
                    "description": "A camera created by the read benchmark",
                    "specs": { "sensor": "full frame" },
                });
                let (sku, position) = system.create_product(product).await?;
                created.fetch_add(1, Ordering::Relaxed);
                anyhow::Ok((sku, position, stable))
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let last = products.iter().map(|p| p.1).max().unwrap_or(0);
    system
        .get("/api/v1/products?limit=1", Some(last))
        .await
        .context("waiting for the projector")?;
    let writable: Vec<String> = products
        .iter()
        .filter(|p| !p.2)
        .map(|p| p.0.clone())
        .collect();
    let hot: Vec<String> = writable.iter().take(HOT).cloned().collect();
    let stable = products
        .iter()
        .find(|p| p.2)
        .map(|p| p.0.clone())
        .unwrap_or_default();

    // A second query-api that keeps nothing: every detail is a read of the store.
    let uncached = uncached_query_api(system).await?;

    // 50 updates a second to products the detail rows do not read.
    let writer = {
        let (system, skus) = (system.clone(), writable[HOT..].to_vec());
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_micros(1_000_000 / UPDATES_PER_SEC));
            for (n, sku) in skus.iter().cycle().enumerate() {
                tick.tick().await;
                let _ = system
                    .client
                    .put(format!("{}/api/v1/products/{sku}", system.command))
                    .bearer_auth(&system.token)
                    .json(&json!({ "price": format!("{}.00", 1000 + n % 1000) }))
                    .send()
                    .await;
            }
        })
    };

    let token = format!("Authorization: Bearer {}", system.token);
    let detail_paths: Vec<String> = hot
        .iter()
        .map(|s| format!("/api/v1/products/{s}"))
        .collect();
    let stable_path = format!("/api/v1/products/{stable}");
    let tag = etag(system, &stable_path).await?;
    let if_none_match = format!("If-None-Match: {tag}");
    let mut rows = Vec::new();
    for &concurrency in levels.iter().filter(|&&c| c > 1) {
        let load =
            |scenario: &'static str, base: String, paths: Vec<String>, header: Option<String>| {
                beside_healthz(scenario, concurrency, duration, base, paths, header)
            };
        let q = system.query.clone();
        rows.extend(
            load(
                "product detail (anonymous, counted)",
                q.clone(),
                detail_paths.clone(),
                None,
            )
            .await?,
        );
        rows.extend(
            load(
                "product detail (signed in)",
                q.clone(),
                detail_paths.clone(),
                Some(token.clone()),
            )
            .await?,
        );
        rows.extend(
            load(
                "product detail, 304 revalidation (signed in)",
                q.clone(),
                vec![stable_path.clone()],
                Some(format!("{token}\r\n{if_none_match}")),
            )
            .await?,
        );
        rows.extend(
            load(
                "first list page (20 newest of 20k)",
                q.clone(),
                vec!["/api/v1/products?limit=20".into()],
                None,
            )
            .await?,
        );
        rows.extend(
            load(
                "filtered page (brand, 20)",
                q.clone(),
                vec!["/api/v1/products?limit=20&brand=leica".into()],
                None,
            )
            .await?,
        );
        rows.extend(
            load(
                "cache-miss detail (a query-api keeping nothing)",
                uncached.clone(),
                detail_paths.clone(),
                Some(token.clone()),
            )
            .await?,
        );
        rows.push(raw_find_one(system, &hot, concurrency, duration).await?);
    }
    writer.abort();
    Ok(rows)
}

async fn uncached_query_api(system: &System) -> anyhow::Result<String> {
    let query = query_api::Application::build(query_api::Config {
        addr: "127.0.0.1:0".parse()?,
        read_side: system.read_side(),
        cache_bytes: 0,
        views_buffer: query_api::views::BUFFER,
        list_index_products: query_api::listing::MAX_PRODUCTS,
        blob_dir: std::env::temp_dir().join("camreviews-bench-blobs"),
        max_wait: std::time::Duration::from_millis(query_api::http::MAX_WAIT_MS),
        rate_limit: shared::http::RateLimitConfig::OFF,
        telemetry: quiet_telemetry(),
    })
    .await?;
    let url = format!("http://127.0.0.1:{}", query.port());
    tokio::spawn(query.run_until_stopped(system.shutdown.clone()));
    Ok(url)
}

async fn etag(system: &System, path: &str) -> anyhow::Result<String> {
    let reply = system
        .client
        .get(format!("{}{path}", system.query))
        .bearer_auth(&system.token)
        .send()
        .await?;
    Ok(reply
        .headers()
        .get("etag")
        .and_then(|t| t.to_str().ok())
        .context("no ETag")?
        .to_owned())
}

async fn raw_find_one(
    system: &System,
    skus: &[String],
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Row> {
    let names = shared::read_model::Collections::current(&system.db).await?;
    let products = system
        .db
        .collection::<Document>(names.name(shared::read_model::PRODUCTS));
    let (skus, turn) = (Arc::new(skus.to_vec()), Arc::new(AtomicUsize::new(0)));
    measure(
        "raw MongoDB find_one by _id (in process)",
        concurrency,
        duration,
        move |_| {
            let (products, skus, turn) = (products.clone(), skus.clone(), turn.clone());
            async move {
                let sku = &skus[turn.fetch_add(1, Ordering::Relaxed) % skus.len()];
                products
                    .find_one(doc! { shared::read_model::product_fields::ID: sku })
                    .await?
                    .context("a product vanished")?;
                Ok(())
            }
        },
    )
    .await
}

/// `scenario` in three slices, each right after a slice of the same service's `/healthz` (the
/// HTTP stack's limit at that moment: the machine's other tenants move it within a run), and
/// the two, each slice's rate averaged: the scenario's row and its limit's.
async fn beside_healthz(
    scenario: &'static str,
    concurrency: usize,
    duration: Duration,
    base: String,
    paths: Vec<String>,
    header: Option<String>,
) -> anyhow::Result<[Row; 2]> {
    const SLICES: u32 = 3;
    let slice = (duration / SLICES).max(Duration::from_secs(1));
    let (mut own, mut limit) = (Vec::new(), Vec::new());
    for _ in 0..SLICES {
        let healthz = vec!["/healthz".to_owned()];
        limit.push(wrk("/healthz", concurrency, slice, base.clone(), healthz, None).await?);
        own.push(
            wrk(
                scenario,
                concurrency,
                slice,
                base.clone(),
                paths.clone(),
                header.clone(),
            )
            .await?,
        );
    }
    Ok([
        combined(scenario, &own),
        combined("  query-api /healthz, in turn with the row above", &limit),
    ])
}

/// Slices of one measurement: mean rate, median p50, highest p99.
fn combined(scenario: &str, slices: &[Row]) -> Row {
    let mut p50: Vec<f64> = slices.iter().map(|r| r.p50_ms).collect();
    p50.sort_by(f64::total_cmp);
    Row {
        scenario: scenario.to_owned(),
        concurrency: slices.first().map_or(0, |r| r.concurrency),
        ops_per_sec: slices.iter().map(|r| r.ops_per_sec).sum::<f64>() / slices.len().max(1) as f64,
        p50_ms: p50.get(p50.len() / 2).copied().unwrap_or(0.0),
        p99_ms: slices.iter().map(|r| r.p99_ms).fold(0.0, f64::max),
        operations: slices.iter().map(|r| r.operations).sum(),
    }
}

/// One wrk run (2 threads, `concurrency` connections) over `paths` in turn.
async fn wrk(
    scenario: &'static str,
    concurrency: usize,
    duration: Duration,
    base: String,
    paths: Vec<String>,
    header: Option<String>,
) -> anyhow::Result<Row> {
    let script = std::env::temp_dir().join(format!("camreviews-wrk-{}.lua", uuid::Uuid::new_v4()));
    let quoted: Vec<String> = paths.iter().map(|p| format!("{p:?}")).collect();
    let headers = header
        .map(|h| {
            h.split("\r\n")
                .filter_map(|line| line.split_once(": "))
                .map(|(k, v)| format!("wrk.headers[{k:?}] = {v:?}\n"))
                .collect::<String>()
        })
        .unwrap_or_default();
    std::fs::write(
        &script,
        format!(
            "{headers}local paths = {{ {} }}\nlocal i = 0\nrequest = function()\n  i = i % #paths + 1\n  return wrk.format(nil, paths[i])\nend\n",
            quoted.join(", ")
        ),
    )?;
    let output = tokio::process::Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{concurrency}"),
            &format!("-d{}s", duration.as_secs()),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(&base)
        .output()
        .await
        .context("running wrk")?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        !text.contains("Non-2xx") || scenario.contains("304"),
        "{scenario}: errors\n{text}"
    );
    let number = |prefix: &str| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
    };
    let rate: f64 = number("Requests/sec:")
        .and_then(|r| r.parse().ok())
        .with_context(|| format!("{scenario}: wrk said\n{text}"))?;
    let requests: usize = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Ok(Row {
        scenario: scenario.to_owned(),
        concurrency,
        ops_per_sec: rate,
        p50_ms: number("50%").map_or(0.0, |t| millis(&t)),
        p99_ms: number("99%").map_or(0.0, |t| millis(&t)),
        operations: requests,
    })
}

/// wrk's `1.23ms`, `456.00us`, `1.02s` in milliseconds.
fn millis(text: &str) -> f64 {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().map_or(0.0, |n| n * factor)
}
