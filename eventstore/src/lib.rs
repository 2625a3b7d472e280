//! The event store in PostgreSQL, the one home of everything that touches the `events`
//! table: appending events with an expected version ([`append_events`]), reading one
//! aggregate's stream or the whole log ([`read_all`], [`read_range`], ...), idempotent
//! command answers ([`idempotency`]), the settled horizon below which no position can still
//! appear ([`horizon`]) and the relay's progress ([`RelayStatus`]). command-api writes through
//! it, its relay publishes from it, camctl and the projector's rebuild read it.
//!
//! The migrations of the write database (the event store's tables and the command side's
//! identity tables, which share its transactions) are embedded here and run at start-up.

mod append;
pub mod horizon;
pub mod idempotency;
mod read;
pub mod status;

pub use append::{
    AppendError, Appended, ExpectedVersion, Metadata, NewEvent, StreamId, append_events,
    lock_stream,
};
pub use read::{
    AggregateKey, EventFilter, count_all, read_all, read_by_aggregate, read_range, read_stream,
};

pub use status::RelayStatus;

use std::time::Duration;

use anyhow::Context as _;
use sqlx::{PgPool, migrate::Migrator, postgres::PgPoolOptions};

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Opens the pool lazily (the service starts, and `/readyz` reports, while PostgreSQL is
/// down) and runs pending migrations when the database answers.
pub async fn connect(database_url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(database_url)
        .await
        .context("connecting to PostgreSQL (DATABASE_URL)")?;
    MIGRATOR
        .run(&pool)
        .await
        .context("running database migrations")?;
    Ok(pool)
}
