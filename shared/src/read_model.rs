//! Names the projector (which writes the read models) and the read side (which reads them)
//! share, and the projector's checkpoint: the position up to which every event has been
//! applied.

use mongodb::{Database, bson::doc};

/// Collections.
pub const PRODUCTS: &str = "products";
pub const PRODUCT_HISTORY: &str = "product_history";
/// View tallies, kept apart from `products` so rebuilding the catalog does not lose them.
pub const PRODUCT_VIEWS: &str = "product_views";
/// View tallies per product and hour (`bucket_start`), for the views report.
pub const PRODUCT_VIEWS_HOURLY: &str = "product_views_hourly";
pub const USERS: &str = "users";
pub const REVIEWS: &str = "reviews";
/// Image metadata by image id (the bytes are in the blob store).
pub const IMAGES: &str = "images";
pub const CHECKPOINTS: &str = "projector_checkpoints";

/// The checkpoint document: `position` is a low-water mark — every event at or below it has
/// been applied (or parked in `DLQ`), whichever projector instance handled it.
pub const CHECKPOINT_ID: &str = "projector";

/// The applied position recorded in `db`, 0 before the first event.
pub async fn applied_position(db: &Database) -> mongodb::error::Result<i64> {
    let checkpoint = db
        .collection::<mongodb::bson::Document>(CHECKPOINTS)
        .find_one(doc! { "_id": CHECKPOINT_ID })
        .await?;
    Ok(checkpoint
        .and_then(|c| c.get_i64("position").ok())
        .unwrap_or(0))
}

/// Rebuilds record their lock and results here (`camctl projections rebuild`).
pub const REBUILDS: &str = "projector_rebuilds";
/// The lock document's `_id`. While its `phase` is [`REBUILD_BUILDING`], projectors apply
/// every batch to the rebuild's shadow collections too, so nothing they apply is missing from
/// the new models when those are switched in.
pub const REBUILD_LOCK_ID: &str = "lock";
pub const REBUILD_BUILDING: &str = "building";
/// The phase a projector sets when it could not write a batch to the shadows: the rebuild
/// stops without switching anything in.
pub const REBUILD_ABANDONED: &str = "abandoned";
/// A rebuild whose heartbeat (`alive_at`) is older than this is taken for dead.
pub const REBUILD_STALE_SECS: i64 = 60;
