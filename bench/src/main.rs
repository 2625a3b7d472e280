//! The benchmark harness. Every figure is printed next to the raw limit of the store it
//! depends on, measured in the same run on the same machine, and written as JSON.
//!
//! `cargo run --release -p camreviews-bench -- store|catalog|reads|logins|mail|rebuild` (see
//! docs/performance.md).

mod catalog;
mod logins;
mod mail;
mod reads;
mod rebuild;
mod stats;
mod store;
mod system;

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "camreviews-bench",
    about = "Benchmark CamReviews next to its stores' raw limits"
)]
struct Cli {
    /// Admin connection to PostgreSQL; a scratch database is created and dropped.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    admin_url: String,
    #[arg(long, env = "NATS_URL", default_value = shared::config::DEFAULT_NATS_URL)]
    nats_url: String,
    #[arg(long, env = "MONGODB_URL", default_value = shared::config::DEFAULT_MONGODB_URL)]
    mongodb_url: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrency levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench/results/latest.json")]
    json: PathBuf,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Event-store appends (one event per transaction, expected-version check, position
    /// trigger) next to raw single-row INSERT transactions.
    Store,
    /// The catalog through the running services: create-product commands next to raw
    /// INSERTs, command → visible latency at a fixed rate, detail and list GETs next to a raw
    /// `find_one` loop.
    Catalog {
        /// Commands per second for the command → visible figure.
        #[arg(long, default_value_t = 200)]
        rate: u32,
    },
    /// The read path under wrk (a separate process) while 50 products/s are updated: the
    /// HTTP stack's own `/healthz`, details, a 304, list pages, a cache miss, next to a raw
    /// `find_one` loop (needs `wrk`: apt-get install wrk).
    Reads,
    /// `camctl projections rebuild all` over a filled event store, in events/s, next to raw
    /// MongoDB bulk inserts (build camctl first: `cargo build --release -p camctl`).
    /// Logins through command-api run as its own process (build it first: `cargo build
    /// --release -p camreviews-command-api`), next to a raw argon2 verify loop, and its
    /// resident memory before and after bursts of logins 30 at a time.
    Logins,
    /// Admin mail through the notifier to a local SMTP sink, next to a raw lettre send loop
    /// to the same sink: plain mails/s, and a burst of changes with many admins (changes/s,
    /// mails/s, time until every admin has every change).
    Mail {
        #[arg(long, default_value_t = 50)]
        admins: usize,
        #[arg(long, default_value_t = 1000)]
        changes: usize,
    },
    Rebuild {
        /// Events in the store (half product creations, half updates).
        #[arg(long, default_value_t = 20_000)]
        events: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The services' logs, when asked for (`RUST_LOG=warn`).
    if let Ok(filter) = std::env::var("RUST_LOG") {
        shared::telemetry::init(&shared::telemetry::TelemetryConfig {
            filter,
            format: shared::telemetry::LogFormat::Pretty,
        });
    }
    let duration = Duration::from_secs(cli.seconds);
    let rows = match cli.scenario {
        Scenario::Store => store::run(&cli.admin_url, &cli.concurrency, duration).await?,
        Scenario::Catalog { rate } => {
            catalog::run(&servers(&cli), &cli.concurrency, duration, rate).await?
        }
        Scenario::Reads => reads::run(&servers(&cli), &cli.concurrency, duration).await?,
        Scenario::Logins => {
            logins::run(&cli.admin_url, &cli.nats_url, &cli.concurrency, duration).await?
        }
        Scenario::Mail { admins, changes } => {
            mail::run(&servers(&cli), duration, admins, changes).await?
        }
        Scenario::Rebuild { events } => {
            rebuild::run(&cli.admin_url, &cli.mongodb_url, events).await?
        }
    };
    stats::print_table(&rows)?;
    stats::write_json(&cli.json, &rows)?;
    Ok(())
}

fn servers(cli: &Cli) -> system::Servers {
    system::Servers {
        admin_url: cli.admin_url.clone(),
        nats_url: cli.nats_url.clone(),
        mongodb_url: cli.mongodb_url.clone(),
    }
}
