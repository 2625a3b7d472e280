//! Measuring a closed loop of operations, and reporting the rows.

use std::{
    io::Write,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde::Serialize;

/// One line of the report: a figure and what it is compared with.
#[derive(Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    pub concurrency: usize,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub operations: usize,
}

/// Runs `op` in `concurrency` loops for `duration`; each loop gets its index.
pub async fn measure<F, Fut>(
    name: &str,
    concurrency: usize,
    duration: Duration,
    op: F,
) -> anyhow::Result<Row>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    let workers = (0..concurrency).map(|worker| {
        let op = op.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while started.elapsed() < duration {
                let t = Instant::now();
                op(worker).await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        })
    });
    let mut latencies = Vec::new();
    for worker in futures::future::join_all(workers).await {
        latencies.extend(worker.context("a bench worker panicked")??);
    }
    Ok(summarise(name, concurrency, latencies, started.elapsed()))
}

/// A row from the latencies of the operations done in `elapsed`.
pub fn summarise(
    name: &str,
    concurrency: usize,
    mut latencies: Vec<Duration>,
    elapsed: Duration,
) -> Row {
    let elapsed = elapsed.as_secs_f64();
    latencies.sort_unstable();
    let pick = |q: f64| {
        let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    Row {
        scenario: name.to_owned(),
        concurrency,
        ops_per_sec: latencies.len() as f64 / elapsed,
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        operations: latencies.len(),
    }
}

pub fn print_table(rows: &[Row]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<44} {:>5} {:>10} {:>9} {:>9}",
        "scenario", "conc", "ops/s", "p50 ms", "p99 ms"
    )?;
    for r in rows {
        // Concurrency 0: an open loop at a fixed rate (named in the scenario).
        let concurrency = match r.concurrency {
            0 => "-".to_owned(),
            n => n.to_string(),
        };
        writeln!(
            out,
            "{:<44} {:>5} {:>10.0} {:>9.2} {:>9.2}",
            r.scenario, concurrency, r.ops_per_sec, r.p50_ms, r.p99_ms
        )?;
    }
    Ok(())
}

pub fn write_json(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let report = serde_json::json!({
        "measured_at": chrono::Utc::now(),
        "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        "rows": rows,
    });
    std::fs::write(path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))
}
