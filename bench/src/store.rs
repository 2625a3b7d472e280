//! Event-store appends next to raw PostgreSQL single-row INSERT transactions, at the same
//! concurrency and durability (synchronous commit), in a scratch database.

use std::time::Duration;

use anyhow::Context as _;
use eventstore::{self as store, ExpectedVersion, Metadata, NewEvent, StreamId};
use shared::events::{ProductCreated, ProductEvent};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::stats::{Row, measure};

pub async fn run(
    admin_url: &str,
    levels: &[usize],
    duration: Duration,
) -> anyhow::Result<Vec<Row>> {
    let scratch = ScratchDatabase::create(admin_url).await?;
    let outcome = scenarios(scratch.url.as_str(), levels, duration).await;
    scratch.drop().await?;
    outcome
}

/// A PostgreSQL database of a benchmark's own, dropped when it is done.
pub struct ScratchDatabase {
    admin: PgConnection,
    pub name: String,
    pub url: url::Url,
}

impl ScratchDatabase {
    pub async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!(
            "camreviews_bench_{}",
            &Uuid::new_v4().simple().to_string()[..12]
        );
        let mut admin = PgConnection::connect(admin_url)
            .await
            .context("BENCH_DATABASE_URL")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let mut url = url::Url::parse(admin_url)?;
        url.set_path(&name);
        Ok(Self { admin, name, url })
    }

    pub async fn drop(mut self) -> anyhow::Result<()> {
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&mut self.admin)
            .await?;
        Ok(())
    }
}

async fn scenarios(url: &str, levels: &[usize], duration: Duration) -> anyhow::Result<Vec<Row>> {
    let max = levels.iter().copied().max().unwrap_or(1);
    let pool = store::connect(url, u32::try_from(max).unwrap_or(32) + 2).await?;
    create_raw_table(&pool).await?;
    let payload = ProductEvent::ProductCreated(ProductCreated {
        name: "Bench".into(),
        brand: "Bench".into(),
        price: "1.00".into(),
        currency: "USD".into(),
        description: String::new(),
        specs: Default::default(),
    });
    let mut rows = Vec::new();
    for &concurrency in levels {
        let data = NewEvent::from_domain(&payload)?.data;
        rows.push(raw_inserts(&pool, data, concurrency, duration).await?);
        let p = pool.clone();
        let payload = payload.clone();
        // No relay runs here. With `relay_wake.idle` true every append notifies (as while a
        // relay waits); with it false none does (as while a relay works through a backlog).
        let variants = [
            (
                true,
                false,
                "event store append (one statement), each notifying",
            ),
            (
                false,
                false,
                "event store append (one statement), relay busy: no NOTIFY",
            ),
            (
                false,
                true,
                "event store append in a transaction (BEGIN, append, COMMIT)",
            ),
        ];
        for (notifying, in_transaction, scenario) in variants {
            let mut conn = pool.acquire().await?;
            store::status::announce_idle(&mut conn, notifying).await?;
            drop(conn);
            let (p, payload) = (p.clone(), payload.clone());
            rows.push(
                measure(scenario, concurrency, duration, move |_| {
                    let (p, payload) = (p.clone(), payload.clone());
                    async move { append_one(&p, &payload, in_transaction).await }
                })
                .await?,
            );
        }
    }
    Ok(rows)
}

/// One event on a new stream: as a create command without an `Idempotency-Key` appends it
/// (one statement, its own transaction), or inside an explicit transaction as every other
/// command does.
async fn append_one(
    pool: &PgPool,
    payload: &ProductEvent,
    in_transaction: bool,
) -> anyhow::Result<()> {
    let stream = StreamId::of::<ProductEvent>(Uuid::now_v7());
    let events = [NewEvent::from_domain(payload)?];
    let metadata = Metadata::new(None);
    if in_transaction {
        let mut tx = pool.begin().await?;
        store::append_events(
            &mut tx,
            stream,
            ExpectedVersion::NoStream,
            &events,
            &metadata,
        )
        .await?;
        tx.commit().await?;
    } else {
        let mut conn = pool.acquire().await?;
        store::append_events(
            &mut conn,
            stream,
            ExpectedVersion::NoStream,
            &events,
            &metadata,
        )
        .await?;
    }
    Ok(())
}

/// The table raw INSERTs go to, next to the event store in the same database.
pub async fn create_raw_table(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("CREATE TABLE raw_inserts (id bigserial PRIMARY KEY, payload jsonb NOT NULL)")
        .execute(pool)
        .await?;
    Ok(())
}

/// The raw limit: single-row INSERT transactions of `payload`, `concurrency` at a time.
pub async fn raw_inserts(
    pool: &PgPool,
    payload: serde_json::Value,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Row> {
    let pool = pool.clone();
    measure(
        "raw PostgreSQL single-row INSERT txn",
        concurrency,
        duration,
        move |_| {
            let (pool, payload) = (pool.clone(), payload.clone());
            async move {
                sqlx::query("INSERT INTO raw_inserts (payload) VALUES ($1)")
                    .bind(payload)
                    .execute(&pool)
                    .await?;
                Ok(())
            }
        },
    )
    .await
}
