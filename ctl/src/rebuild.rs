//! Zero-downtime rebuild of read models from the event store.
//!
//! 1. **Prepare**: take the lock (one rebuild per database), drop copies left by a rebuild
//!    that died, and create new, empty collections under new names (`products__g<id>`, same
//!    database) with their indexes. Record both sets of names in the lock and set its phase to
//!    `building`: from now on every projector applies each batch to the new copies too (it
//!    looks at most once a second; the rebuild waits longer than that).
//! 2. **Build** every read model into the new copies by replaying the store through the
//!    projector's own folds, an aggregate at a time (each document folded completely and
//!    written once), up to the settled horizon (no position below it can still appear). The
//!    live collections keep serving.
//! 3. **Catch up** in position order to the new horizon, until the copy is a few events
//!    behind. Whatever the live projector applied meanwhile is in the copy as well.
//! 4. **Switch**: point the catalog of collection names ([`read_model::Collections`], one
//!    document) at the new copies, in one single-document update, atomic in any MongoDB. A
//!    reader sees the old complete model or the new one, never a half-built one. The switch
//!    does not rely on `renameCollection` with `dropTarget`: SecantusDB's rename leaves a
//!    moment in which the target holds nothing (`bench/examples/rename_switch.rs`).
//!    Projectors keep writing both copies for [`read_model::READERS_NOTICE`] while readers
//!    (which look at the catalog every few hundred milliseconds) move over.
//! 5. **Settle**: replay from where the copy stopped to the horizon taken after the switch
//!    into the now live collections (a safety net for a projector that did not write both;
//!    every fold is idempotent and version-guarded, so what is in place is skipped). Then
//!    leave the `building` phase, wait for projectors to notice, drop the replaced
//!    collections, release the lock.
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
use projector::projections::{self, GENERATION_SEPARATOR, Outcome, Store};
use shared::read_model::{
    self, Collections, REBUILD_BUILDING, REBUILD_LOCK_ID as LOCK_ID, REBUILDS, REBUILT,
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::progress::Progress;

/// Events read and applied at a time.
const CHUNK: i64 = 1000;
/// Catch up until the shadow is at most this far behind, then switch.
const CLOSE_ENOUGH: i64 = 100;
/// Longer than a projector takes to notice a phase change and finish the batch in hand.
const NOTICE: Duration = Duration::from_secs(3);
/// A lock whose holder has not shown signs of life for this long may be broken.
const STALE_AFTER: Duration = Duration::from_secs(read_model::REBUILD_STALE_SECS.unsigned_abs());

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
    let lock = Lock::take(db, models).await?;
    let outcome = run(pool, db, models, progress, &lock).await;
    if outcome.is_err() {
        // Projectors stop writing the shadows before the lock goes.
        let _ = lock.phase("failed").await;
    }
    let unlocked = lock.release().await;
    let report = outcome?;
    unlocked.context("releasing the rebuild lock")?;
    let rebuilds = db.collection::<Document>(REBUILDS);
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

/// The rebuild lock: one document, owned by one run, with a heartbeat.
struct Lock {
    rebuilds: mongodb::Collection<Document>,
    owner: String,
}

impl Lock {
    async fn take(db: &Database, models: &[&Model]) -> anyhow::Result<Self> {
        let rebuilds = db.collection::<Document>(REBUILDS);
        let owner = Uuid::new_v4().to_string();
        let now = bson::DateTime::now();
        let lock = doc! {
            "_id": LOCK_ID,
            "owner": &owner,
            "phase": "preparing",
            "since": now,
            "alive_at": now,
            "host": hostname(),
            "pid": i64::from(std::process::id()),
            "models": models.iter().map(|m| m.name).collect::<Vec<_>>(),
        };
        if let Err(e) = rebuilds.insert_one(lock).await {
            if let Some(holder) = rebuilds.find_one(doc! { "_id": LOCK_ID }).await? {
                return Err(Busy::from(&holder).into());
            }
            return Err(e).context("taking the rebuild lock");
        }
        Ok(Self { rebuilds, owner })
    }

    async fn phase(&self, phase: &str) -> anyhow::Result<()> {
        self.set(doc! { "phase": phase, "alive_at": bson::DateTime::now() })
            .await
    }

    async fn heartbeat(&self) -> anyhow::Result<()> {
        self.set(doc! { "alive_at": bson::DateTime::now() }).await
    }

    /// After the switch, a projector giving up on the replaced copies changes nothing: the
    /// new models are in place.
    async fn phase_after_switch(&self, phase: &str) -> anyhow::Result<()> {
        self.rebuilds
            .update_one(
                doc! { "_id": LOCK_ID, "owner": &self.owner },
                doc! { "$set": { "phase": phase, "alive_at": bson::DateTime::now() } },
            )
            .await?;
        Ok(())
    }

    async fn set(&self, fields: Document) -> anyhow::Result<()> {
        let updated = self
            .rebuilds
            .update_one(
                doc! { "_id": LOCK_ID, "owner": &self.owner, "phase": { "$ne": ABANDONED } },
                doc! { "$set": fields },
            )
            .await?;
        if updated.matched_count == 1 {
            return Ok(());
        }
        let holder = self.rebuilds.find_one(doc! { "_id": LOCK_ID }).await?;
        match holder {
            Some(lock) if lock.get_str("owner") == Ok(self.owner.as_str()) => anyhow::bail!(
                "a projector could not write the new models and abandoned this rebuild (see its \
                 log); nothing was switched in"
            ),
            _ => anyhow::bail!(
                "the rebuild lock was taken away (camctl projections rebuild --break-lock?)"
            ),
        }
    }

    /// Deletes the lock if it is still ours.
    async fn release(self) -> anyhow::Result<()> {
        self.rebuilds
            .delete_one(doc! { "_id": LOCK_ID, "owner": &self.owner })
            .await?;
        Ok(())
    }
}

impl From<&Document> for Busy {
    fn from(holder: &Document) -> Self {
        Busy {
            since: holder
                .get_datetime("since")
                .map(|t| t.to_string())
                .unwrap_or_default(),
            host: holder.get_str("host").unwrap_or_default().to_owned(),
            pid: holder.get_i64("pid").unwrap_or(0),
        }
    }
}

/// Breaks a lock left by a rebuild that died (killed, or its machine gone): only one whose
/// holder has shown no sign of life for a minute. `Ok(false)`: there was no lock.
pub async fn break_lock(db: &Database) -> anyhow::Result<bool> {
    let rebuilds = db.collection::<Document>(REBUILDS);
    let Some(holder) = rebuilds.find_one(doc! { "_id": LOCK_ID }).await? else {
        return Ok(false);
    };
    let alive_at = holder
        .get_datetime("alive_at")
        .map(|t| t.timestamp_millis())
        .unwrap_or(0);
    let silent = bson::DateTime::now().timestamp_millis() - alive_at;
    if silent < STALE_AFTER.as_millis() as i64 {
        return Err(Busy::from(&holder).into());
    }
    // Exactly the lock looked at, not one taken meanwhile.
    let since = holder.get("since").cloned().unwrap_or(bson::Bson::Null);
    rebuilds
        .delete_one(doc! { "_id": LOCK_ID, "since": since })
        .await?;
    Ok(true)
}

async fn run(
    pool: &PgPool,
    db: &Database,
    models: &[&Model],
    progress: &mut Progress,
    lock: &Lock,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let scope = Scope::detect(pool).await?;
    let previous = Collections::current(db).await?;
    drop_leftovers(db, &previous).await?;
    let generation = format!("g{:x}", bson::DateTime::now().timestamp_millis());
    let mut new = Collections::default();
    for base in REBUILT {
        new = new.with(base, format!("{base}{GENERATION_SEPARATOR}{generation}"));
    }
    let shadow = Store::new(db.clone(), new.clone());
    projections::ensure_indexes(&shadow).await?;
    // From here on, projectors write every batch to the new copies too.
    lock.set(doc! {
        "phase": REBUILD_BUILDING,
        "alive_at": bson::DateTime::now(),
        "previous": previous.to_document(),
        "shadow": new.to_document(),
    })
    .await?;
    tokio::time::sleep(NOTICE).await;

    // Build: everything settled now (what projectors applied before they noticed included).
    let mut failed = Vec::new();
    let horizon = settled_horizon(pool, scope, 0, lock).await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE position <= $1")
        .bind(horizon)
        .fetch_one(pool)
        .await?;
    progress.start("replaying", "events", total.unsigned_abs());
    build(pool, &shadow, horizon, progress, &mut failed, lock).await?;
    let mut at = horizon;

    // Catch up with what arrived meanwhile, until close.
    for _ in 0..10 {
        let horizon = settled_horizon(pool, scope, at, lock).await?;
        if horizon - at <= CLOSE_ENOUGH {
            break;
        }
        progress.extend_to(progress.done() + count_between(pool, at, horizon).await?);
        at = replay(pool, &shadow, at, horizon, progress, &mut failed, lock).await?;
    }
    let horizon = settled_horizon(pool, scope, at, lock).await?;
    progress.extend_to(progress.done() + count_between(pool, at, horizon).await?);
    at = replay(pool, &shadow, at, horizon, progress, &mut failed, lock).await?;
    let events = progress.done();
    progress.finish();

    // Switch: one single-document update of the catalog. Still ours, and nobody gave up on
    // the new copies: only then replace a live model.
    let mut switched = previous.clone();
    let mut replaced = Vec::new();
    for model in models {
        for &base in model.collections {
            switched = switched.with(base, new.name(base));
            replaced.push(previous.name(base).to_owned());
        }
    }
    // The copies built but not switched in (only some models were named) go too.
    for base in REBUILT {
        if switched.name(base) != new.name(base) {
            replaced.push(new.name(base).to_owned());
        }
    }
    lock.heartbeat().await?;
    // Only over the names this rebuild started from: a rebuild that lost its lock to
    // `--break-lock` (and whose copies the new one dropped) switches nothing in.
    let switch = db
        .collection::<Document>(read_model::COLLECTIONS)
        .update_one(
            doc! { "_id": read_model::COLLECTIONS_ID, "names": previous.to_document() },
            doc! { "$set": { "names": switched.to_document(), "switched_at": bson::DateTime::now() } },
        )
        .upsert(true)
        .await;
    match switch {
        Ok(_) => {}
        Err(e) if is_duplicate_key(&e) => anyhow::bail!(
            "the read models were switched by someone else meanwhile; nothing was switched in"
        ),
        Err(e) => return Err(e).context("switching in the rebuilt models"),
    }
    let switched_at = Instant::now();

    // Settle, at once: a batch a projector had in hand at the switch, written to the new
    // copies as "not yet" and acknowledged on the old ones, is in the store below this
    // horizon (it was published, so committed, before the switch). Batches after the switch
    // count their outcomes in the new copies (projectors look afresh per batch meanwhile).
    let live = Store::new(db.clone(), switched);
    let mut settle_failed = Vec::new();
    let horizon = settled_horizon(pool, scope, at, lock).await?;
    let behind = count_between(pool, at, horizon).await?;
    progress.start("settling", "events", behind);
    let settled_to = replay(pool, &live, at, horizon, progress, &mut settle_failed, lock).await?;
    // Readers move over while projectors still write both copies.
    tokio::time::sleep(read_model::READERS_NOTICE.saturating_sub(switched_at.elapsed())).await;
    lock.phase_after_switch("switched").await?;
    // And once more: a safety net for whatever was written to the old collections alone.
    let horizon = settled_horizon(pool, scope, settled_to, lock).await?;
    progress.extend_to(progress.done() + count_between(pool, settled_to, horizon).await?);
    replay(
        pool,
        &live,
        settled_to,
        horizon,
        progress,
        &mut settle_failed,
        lock,
    )
    .await?;
    let settled = progress.done();
    progress.finish();
    // Racing the live projector, an event may be "not yet" here and done there a moment
    // later; only an event that fails on its own counts.
    failed.extend(
        settle_failed
            .into_iter()
            .filter(|(_, reason)| reason != NOT_YET),
    );
    // Projectors stop writing the replaced collections, and readers' last requests on them
    // end, before they are dropped.
    tokio::time::sleep((read_model::READERS_NOTICE + NOTICE).saturating_sub(switched_at.elapsed()))
        .await;
    for name in &replaced {
        db.collection::<Document>(name).drop().await?;
    }
    Ok(Report {
        events,
        switched_at: at,
        settled,
        failed,
        elapsed: started.elapsed(),
    })
}

const NOT_YET: &str = "an earlier version of this aggregate could not be applied";
/// The phase a projector sets when it cannot write the shadows: the rebuild must not switch.
const ABANDONED: &str = shared::read_model::REBUILD_ABANDONED;

/// Applies every event up to `through` to the empty `store`, an aggregate at a time (each
/// document is folded completely and written once; products come before the reviews whose
/// statistics they carry).
async fn build(
    pool: &PgPool,
    store: &Store,
    through: i64,
    progress: &mut Progress,
    failed: &mut Vec<(i64, String)>,
    lock: &Lock,
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
        lock.heartbeat().await?;
    }
}

async fn apply(
    store: &Store,
    chunk: &[shared::EventEnvelope],
    failed: &mut Vec<(i64, String)>,
) -> anyhow::Result<()> {
    let mut pending: Vec<shared::EventEnvelope> = chunk.to_vec();
    // "Not yet" here means a projector wrote an aggregate's document into the shadow at the
    // same moment (it writes every batch there too): folding again on what is there now
    // applies the rest. What is still "not yet" after that follows an event that failed.
    for round in 0..3 {
        let outcomes = projections::apply_batch(store, &pending)
            .await
            .context("writing the read models")?;
        let mut again = Vec::new();
        for (envelope, outcome) in pending.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Done => {}
                Outcome::NotYet if round < 2 => again.push(envelope),
                Outcome::NotYet => failed.push((envelope.position, NOT_YET.into())),
                Outcome::Failed(e) => failed.push((envelope.position, format!("{e:#}"))),
            }
        }
        if again.is_empty() {
            break;
        }
        pending = again;
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
    lock: &Lock,
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
        lock.heartbeat().await?;
        after = last;
    }
    Ok(after.max(through))
}

async fn settled_horizon(
    pool: &PgPool,
    scope: Scope,
    after: i64,
    lock: &Lock,
) -> anyhow::Result<i64> {
    loop {
        if let Some(horizon) =
            high_water::safe_horizon(pool, scope, after, Duration::from_secs(1)).await?
        {
            return Ok(horizon);
        }
        // A long transaction elsewhere holds the horizon back: show we are alive meanwhile.
        lock.heartbeat().await?;
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

/// Drops the copies a rebuild that died left behind: every copy of a read model
/// (`<name>`, `<name>__g<id>`) the catalog does not name, and the `rebuild__` copies of
/// earlier versions.
async fn drop_leftovers(db: &Database, current: &Collections) -> anyhow::Result<()> {
    let names = db.list_collection_names().await?;
    // A copy of a read model is its base name, or the base name, the separator and a
    // generation; every one the catalog does not name is left over (also a base name that a
    // late write recreated after a switch).
    let leftover = |name: &str| {
        name.starts_with("rebuild__")
            || REBUILT.iter().any(|base| {
                let copy =
                    name == *base || name.starts_with(&format!("{base}{GENERATION_SEPARATOR}g"));
                copy && current.name(base) != name
            })
    };
    for name in names.iter().filter(|n| leftover(n)) {
        db.collection::<Document>(name).drop().await?;
    }
    Ok(())
}

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match &*error.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == 11000,
        ErrorKind::Command(e) => e.code == 11000,
        _ => false,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}
