//! Zero-downtime rebuild of read models from the event store.
//!
//! 1. **Prepare**: take the lock (one rebuild per database, `lock.rs`), drop copies left by a
//!    rebuild that died, and create new, empty collections under new names
//!    (`products__g<id>`, same database) with their indexes (`shadow.rs`). Record both sets of
//!    names in the lock and set its phase to `building`: from now on every projector applies
//!    each batch to the new copies too (it looks at most once a second; the rebuild waits
//!    longer than that).
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
//! The phases are in `phases.rs`, the reading and applying of events in `replay.rs`. Progress
//! is reported through [`Progress`], which camctl draws as a bar.
//!
//! View tallies (`product_views*`) are not read models of the event store and are never
//! touched. Every model is built (product documents carry review statistics, so they need the
//! reviews), but only the named ones are switched in.

mod lock;
mod phases;
mod replay;
mod shadow;

use std::time::Duration;

use anyhow::Context as _;
use mongodb::{
    Database,
    bson::{self, Document, doc},
};
use shared::read_model::{self, REBUILDS};
use sqlx::PgPool;

pub use lock::{Busy, break_lock};

/// A read model and its collections.
pub struct Model {
    pub name: &'static str,
    pub collections: &'static [&'static str],
}

/// Every read model a rebuild can switch in, in the order `projections status` shows them.
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

/// What a finished rebuild did.
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

/// How a rebuild shows how far it is, phase by phase (camctl draws a progress bar; `()`
/// shows nothing).
pub trait Progress: Send {
    /// A phase of `total` items (counted in `unit`, e.g. "events") begins.
    fn start(&mut self, phase: &str, unit: &'static str, total: u64);
    /// More arrived while catching up: the phase's total grows to `total`.
    fn extend_to(&mut self, total: u64);
    /// `items` more are done.
    fn advance(&mut self, items: u64);
    /// The phase is over.
    fn finish(&mut self);
}

impl Progress for () {
    fn start(&mut self, _: &str, _: &'static str, _: u64) {}
    fn extend_to(&mut self, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
}

/// Rebuilds `models` (see the module documentation) from the event store in `pool` into
/// `db`. Only one rebuild runs at a time per database; a second gets [`Busy`].
pub async fn rebuild(
    pool: &PgPool,
    db: &Database,
    models: &[&Model],
    progress: &mut dyn Progress,
) -> anyhow::Result<Report> {
    let lock = lock::Lock::take(db, models).await?;
    let outcome = phases::run(pool, db, models, progress, &lock).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_selects_every_model_and_a_name_one() {
        let names = |models: Vec<&Model>| models.iter().map(|m| m.name).collect::<Vec<_>>();
        assert_eq!(
            select("all").map(names),
            Some(vec!["users", "products", "reviews"])
        );
        assert_eq!(select("reviews").map(names), Some(vec!["reviews"]));
        assert!(select("everything").is_none());
    }

    #[test]
    fn every_rebuilt_collection_belongs_to_one_model() {
        for base in read_model::REBUILT {
            let owners = MODELS
                .iter()
                .filter(|m| m.collections.contains(&base))
                .count();
            assert_eq!(owners, 1, "{base}");
        }
    }
}
