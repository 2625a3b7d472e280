//! Zero-downtime rebuild of read models from the event store.
//!
//! 1. **Build** every read model into shadow collections (`rebuild__<name>`, same database)
//!    by replaying the store through the projector's own folds, an aggregate at a time (each
//!    document folded completely and written once), up to the settled horizon (no position
//!    below it can still appear). The live collections keep serving, and the live projector
//!    keeps writing them.
//! 2. **Catch up**: replay again up to the new horizon, until the shadow is a few events behind.
//! 3. **Switch**: rename each shadow collection over its live one (`renameCollection` with
//!    `dropTarget`). A rename is atomic: a reader sees the old complete model or the new one,
//!    never a half-built one. Indexes move with the collection.
//! 4. **Settle**: the live projector wrote its last few events into the old collections before
//!    the switch; replay from where the shadow stopped up to the horizon taken *after* the
//!    switch, into the live collections. Every fold is idempotent and version-guarded, so what
//!    the live projector also applies is skipped.
//!
//! View tallies (`product_views*`) are not read models of the event store and are never
//! touched. Every model is built (product documents carry review statistics, so they need the
//! reviews), but only the named ones are switched in.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use command_api::{
    relay::high_water::{self, Scope},
    store,
};
use mongodb::{
    Database,
    bson::{self, Document, doc},
};
use projector::projections::{self, Outcome, SHADOW_PREFIX, Store};
use shared::read_model;
use sqlx::PgPool;

use crate::progress::Progress;

/// Where rebuilds record their lock and their results.
pub const REBUILDS: &str = "projector_rebuilds";
const LOCK_ID: &str = "lock";
/// Events read and applied at a time.
const CHUNK: i64 = 1000;
/// Catch up until the shadow is at most this far behind, then switch.
const CLOSE_ENOUGH: i64 = 100;

/// A read model and its collections.
pub struct Model {
    pub name: &'static str,
    pub collections: &'static [&'static str],
}

pub const MODELS: [Model; 3] = [
    Model {
        name: "users",
        collections: &[read_model::USERS],
    },
    Model {
        name: "products",
        collections: &[read_model::PRODUCTS, read_model::PRODUCT_HISTORY],
    },
    Model {
        name: "reviews",
        collections: &[read_model::REVIEWS, read_model::IMAGES],
    },
];

/// The models `name` stands for (`all`, or one model's name).
pub fn select(name: &str) -> Option<Vec<&'static Model>> {
    if name == "all" {
        return Some(MODELS.iter().collect());
    }
    MODELS.iter().find(|m| m.name == name).map(|m| vec![m])
}

#[derive(Debug)]
pub struct Report {
    /// Events replayed into the shadow.
    pub events: u64,
    /// The position the new models had reached when they were switched in.
    pub switched_at: i64,
    /// Events the live models were settled with after the switch.
    pub settled: u64,
    /// Events no fold could apply (the same ones the live projector parks): position, reason.
    pub failed: Vec<(i64, String)>,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("another rebuild has been running since {since} (host {host}, pid {pid})")]
pub struct Busy {
    pub since: String,
    pub host: String,
    pub pid: i64,
}

/// Rebuilds `models` (see the module documentation). Only one rebuild runs at a time per
/// database; a second gets [`Busy`].
pub async fn rebuild(
    pool: &PgPool,
    db: &Database,
    models: &[&Model],
    progress: &mut Progress,
) -> anyhow::Result<Report> {
    let rebuilds = db.collection::<Document>(REBUILDS);
    let lock = doc! {
        "_id": LOCK_ID,
        "since": bson::DateTime::now(),
        "host": hostname(),
        "pid": i64::from(std::process::id()),
        "models": models.iter().map(|m| m.name).collect::<Vec<_>>(),
    };
    if let Err(e) = rebuilds.insert_one(lock).await {
        if let Some(holder) = rebuilds.find_one(doc! { "_id": LOCK_ID }).await? {
            return Err(Busy {
                since: holder
                    .get_datetime("since")
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                host: holder.get_str("host").unwrap_or_default().to_owned(),
                pid: holder.get_i64("pid").unwrap_or(0),
            }
            .into());
        }
        return Err(e).context("taking the rebuild lock");
    }
    let outcome = run(pool, db, models, progress).await;
    let unlocked = rebuilds.delete_one(doc! { "_id": LOCK_ID }).await;
    let report = outcome?;
    unlocked.context("releasing the rebuild lock")?;
    for model in models {
        rebuilds
            .replace_one(
                doc! { "_id": model.name },
                doc! {
                    "finished_at": bson::DateTime::now(),
                    "events": report.events as i64,
                    "switched_at": report.switched_at,
                    "failed": report.failed.len() as i64,
                    "seconds": report.elapsed.as_secs_f64(),
                },
            )
            .upsert(true)
            .await?;
    }
    Ok(report)
}

/// Breaks a lock left by a rebuild that died (the process was killed).
pub async fn break_lock(db: &Database) -> anyhow::Result<bool> {
    let deleted = db
        .collection::<Document>(REBUILDS)
        .delete_one(doc! { "_id": LOCK_ID })
        .await?;
    Ok(deleted.deleted_count > 0)
}

async fn run(
    pool: &PgPool,
    db: &Database,
    models: &[&Model],
    progress: &mut Progress,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let scope = Scope::detect(pool).await?;
    let shadow = Store::shadow(db.clone());
    drop_shadows(&shadow).await?;
    projections::ensure_indexes(&shadow).await?;

    // Build.
    let mut failed = Vec::new();
    let horizon = settled_horizon(pool, scope, 0).await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE position <= $1")
        .bind(horizon)
        .fetch_one(pool)
        .await?;
    progress.start("replaying", "events", total.unsigned_abs());
    build(pool, &shadow, horizon, progress, &mut failed).await?;
    let mut at = horizon;

    // Catch up with what arrived meanwhile.
    for _ in 0..10 {
        let horizon = settled_horizon(pool, scope, at).await?;
        if horizon <= at {
            break;
        }
        progress.extend_to(progress.done() + count_between(pool, at, horizon).await?);
        at = replay(pool, &shadow, at, horizon, progress, &mut failed).await?;
        if horizon - at <= CLOSE_ENOUGH {
            break;
        }
    }
    let events = progress.done();
    progress.finish();

    // Switch.
    let admin = db.client().database("admin");
    for model in models {
        for name in model.collections {
            admin
                .run_command(doc! {
                    "renameCollection": format!("{}.{}", db.name(), shadow.name(name)),
                    "to": format!("{}.{}", db.name(), name),
                    "dropTarget": true,
                })
                .await
                .with_context(|| format!("switching in the rebuilt {name}"))?;
        }
    }

    // Settle the live models with what the live projector wrote into the old collections.
    let live = Store::live(db.clone());
    let horizon = settled_horizon(pool, scope, at).await?;
    let behind = count_between(pool, at, horizon).await?;
    progress.start("settling", "events", behind);
    let mut settle_failed = Vec::new();
    replay(pool, &live, at, horizon, progress, &mut settle_failed).await?;
    let settled = progress.done();
    progress.finish();
    failed.extend(settle_failed);
    drop_shadows(&shadow).await?;
    Ok(Report {
        events,
        switched_at: at,
        settled,
        failed,
        elapsed: started.elapsed(),
    })
}

/// Applies every event up to `through` to the empty `store`, an aggregate at a time (each
/// document is folded completely and written once; products come before the reviews whose
/// statistics they carry).
async fn build(
    pool: &PgPool,
    store: &Store,
    through: i64,
    progress: &mut Progress,
    failed: &mut Vec<(i64, String)>,
) -> anyhow::Result<()> {
    let mut after: Option<store::AggregateKey> = None;
    loop {
        let chunk = store::read_by_aggregate(pool, after.as_ref(), through, CHUNK)
            .await
            .context("reading the event store")?;
        let Some(last) = chunk.last() else {
            return Ok(());
        };
        after = Some(store::AggregateKey {
            aggregate_type: last.aggregate_type.clone(),
            aggregate_id: last.aggregate_id,
            aggregate_version: last.aggregate_version,
        });
        apply(store, &chunk, failed).await?;
        progress.advance(chunk.len() as u64);
    }
}

async fn apply(
    store: &Store,
    chunk: &[shared::EventEnvelope],
    failed: &mut Vec<(i64, String)>,
) -> anyhow::Result<()> {
    let outcomes = projections::apply_batch(store, chunk)
        .await
        .context("writing the read models")?;
    for (envelope, outcome) in chunk.iter().zip(outcomes) {
        match outcome {
            Outcome::Done => {}
            Outcome::NotYet => failed.push((
                envelope.position,
                "an earlier version of this aggregate could not be applied".into(),
            )),
            Outcome::Failed(e) => failed.push((envelope.position, format!("{e:#}"))),
        }
    }
    Ok(())
}

/// Applies the events in `(after, through]` to `store`, in position order; returns the last
/// position read.
async fn replay(
    pool: &PgPool,
    store: &Store,
    mut after: i64,
    through: i64,
    progress: &mut Progress,
    failed: &mut Vec<(i64, String)>,
) -> anyhow::Result<i64> {
    while after < through {
        let chunk = store::read_range(pool, after, through, CHUNK)
            .await
            .context("reading the event store")?;
        let Some(last) = chunk.last().map(|e| e.position) else {
            return Ok(through);
        };
        apply(store, &chunk, failed).await?;
        progress.advance(chunk.len() as u64);
        after = last;
    }
    Ok(after.max(through))
}

async fn settled_horizon(pool: &PgPool, scope: Scope, after: i64) -> anyhow::Result<i64> {
    loop {
        if let Some(horizon) =
            high_water::safe_horizon(pool, scope, after, Duration::from_secs(1)).await?
        {
            return Ok(horizon);
        }
    }
}

async fn count_between(pool: &PgPool, after: i64, through: i64) -> anyhow::Result<u64> {
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE position > $1 AND position <= $2")
            .bind(after)
            .bind(through)
            .fetch_one(pool)
            .await?;
    Ok(n.unsigned_abs())
}

/// Drops every shadow collection (left over from a rebuild that died, or not switched in).
async fn drop_shadows(shadow: &Store) -> anyhow::Result<()> {
    let names = shadow.db.list_collection_names().await?;
    for name in names.iter().filter(|n| n.starts_with(SHADOW_PREFIX)) {
        shadow.db.collection::<Document>(name).drop().await?;
    }
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}
