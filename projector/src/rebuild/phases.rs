//! One rebuild, phase by phase: prepare, build, catch up, switch, settle (the protocol is
//! described in `rebuild/mod.rs`).

use std::time::{Duration, Instant};

use crate::projections::Store;
use mongodb::{Database, bson::doc};
use shared::read_model::{self, Collections, REBUILD_BUILDING};
use sqlx::PgPool;

use super::{
    Model, Progress, Report,
    lock::Lock,
    replay::{Events, NOT_YET},
    shadow,
};

/// Catch up until the shadow is at most this far behind, then switch.
const CLOSE_ENOUGH: i64 = 100;
/// Catch-up rounds at most: under a write load faster than the replay, switch anyway (what
/// is left is settled after the switch).
const CATCH_UP_ROUNDS: usize = 10;
/// Longer than a projector takes to notice a phase change and finish the batch in hand.
const NOTICE: Duration = Duration::from_secs(3);

pub(super) async fn run(
    pool: &PgPool,
    db: &Database,
    models: &[&Model],
    progress: &mut dyn Progress,
    lock: &Lock,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut events = Events::new(pool, lock, progress).await?;

    // Prepare.
    let previous = Collections::current(db).await?;
    shadow::drop_leftovers(db, &previous).await?;
    let new = shadow::create(db).await?;
    // From here on, projectors write every batch to the new copies too.
    lock.set(doc! {
        "phase": REBUILD_BUILDING,
        "alive_at": mongodb::bson::DateTime::now(),
        "previous": previous.to_document(),
        "shadow": new.names().to_document(),
    })
    .await?;
    tokio::time::sleep(NOTICE).await;

    // Build: everything settled now (what projectors applied before they noticed included).
    let mut failed = Vec::new();
    let horizon = events.horizon(0).await?;
    let total = events.count_between(0, horizon).await?;
    events.start("replaying", total);
    events.build(&new, horizon, &mut failed).await?;
    let mut at = horizon;

    // Catch up with what arrived meanwhile, until close.
    for _ in 0..CATCH_UP_ROUNDS {
        let horizon = events.horizon(at).await?;
        if horizon - at <= CLOSE_ENOUGH {
            break;
        }
        events.expect(at, horizon).await?;
        at = events.replay(&new, at, horizon, &mut failed).await?;
    }
    let horizon = events.horizon(at).await?;
    events.expect(at, horizon).await?;
    at = events.replay(&new, at, horizon, &mut failed).await?;
    let replayed = events.finish();

    // Switch: one single-document update of the catalog. Still ours, and nobody gave up on
    // the new copies: only then replace a live model.
    lock.heartbeat().await?;
    let (switched, replaced) = shadow::switch_in(db, &previous, new.names(), models).await?;
    let switched_at = Instant::now();

    // Settle, at once: a batch a projector had in hand at the switch, written to the new
    // copies as "not yet" and acknowledged on the old ones, is in the store below this
    // horizon (it was published, so committed, before the switch). Batches after the switch
    // count their outcomes in the new copies (projectors look afresh per batch meanwhile).
    let live = Store::new(db.clone(), switched);
    let mut settle_failed = Vec::new();
    let horizon = events.horizon(at).await?;
    let behind = events.count_between(at, horizon).await?;
    events.start("settling", behind);
    let settled_to = events
        .replay(&live, at, horizon, &mut settle_failed)
        .await?;
    // Readers move over while projectors still write both copies.
    tokio::time::sleep(read_model::READERS_NOTICE.saturating_sub(switched_at.elapsed())).await;
    lock.phase_after_switch("switched").await?;
    // And once more: a safety net for whatever was written to the old collections alone.
    let horizon = events.horizon(settled_to).await?;
    events.expect(settled_to, horizon).await?;
    events
        .replay(&live, settled_to, horizon, &mut settle_failed)
        .await?;
    let settled = events.finish();
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
        db.collection::<mongodb::bson::Document>(name)
            .drop()
            .await?;
    }
    Ok(Report {
        events: replayed,
        switched_at: at,
        settled,
        failed,
        elapsed: started.elapsed(),
    })
}
