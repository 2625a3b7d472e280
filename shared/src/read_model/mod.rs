//! What the projector (which writes the read models) and the read side (which reads them)
//! share: one serde type per read model document, with the names of the fields that filters,
//! sorts, indexes and updates use (a field name is written here and nowhere else); the
//! collection names and their catalog; and the projector's checkpoint: the position up to
//! which every event has been applied.

mod history;
mod products;
mod reviews;
mod users;
mod views;

pub use history::{HistoryActor, HistoryChange, HistoryDoc, history_fields};
/// The map the read models keep in stored order (specs, a change's fields), for the answers
/// that show them in that order.
pub use indexmap::IndexMap;
pub use products::{ProductDoc, RatingStats, product_fields};
pub use reviews::{ImageDoc, ReviewDoc, ReviewImage, image_fields, review_fields};
pub use users::{UserDoc, user_fields};
pub use views::{HourlyViewsDoc, ProductViewsDoc, views_fields};

use mongodb::{
    Database,
    bson::{self, Bson, Document, doc},
};
use serde::de::{DeserializeOwned, Error as _};

/// Every read model document's key.
pub const ID: &str = "_id";
/// The last aggregate version applied to a document (the projector's guard).
pub const VERSION: &str = "version";
/// A deleted aggregate's document stays, as a tombstone, with this set.
pub const DELETED: &str = "deleted";

/// A stored document as the read model type `T`. Unlike `bson::from_document`, the error names
/// the field that does not fit (`price: invalid type: ...`), so a document changed by hand
/// is found from the reason its event was parked for.
pub fn decode<T: DeserializeOwned>(document: Document) -> Result<T, bson::de::Error> {
    serde_path_to_error::deserialize(bson::Deserializer::new(Bson::Document(document))).map_err(
        |error| {
            let path = error.path().to_string();
            match error.into_inner() {
                inner if path == "." => inner,
                inner => bson::de::Error::custom(format!("{path}: {inner}")),
            }
        },
    )
}

/// A date as the read models store it: a BSON date, in milliseconds.
pub fn date(at: chrono::DateTime<chrono::Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(at.timestamp_millis())
}

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

/// On a product document: at least the position of the latest event that changed it (its own
/// or its review statistics), never lowered, so "what changed after position P" is a query.
pub const CHANGED_POSITION: &str = "changed_position";

/// The checkpoint document: `position` is a low-water mark — every event at or below it has
/// been applied (or parked in `DLQ`), whichever projector instance handled it.
pub const CHECKPOINT_ID: &str = "projector";

/// The applied position recorded in `db`, 0 before the first event.
pub async fn applied_position(db: &Database) -> mongodb::error::Result<i64> {
    let checkpoint = db
        .collection::<Document>(CHECKPOINTS)
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

/// Where the catalog of physical collection names lives: one document, [`COLLECTIONS_ID`].
pub const COLLECTIONS: &str = "read_model_collections";
pub const COLLECTIONS_ID: &str = "current";

/// The physical collection each read model's collection is kept in right now.
///
/// A rebuild builds new copies under new names (`products__<id>`) and switches them in by
/// updating this one document, which is atomic in any MongoDB; readers and writers look it
/// up (every few hundred milliseconds) instead of relying on `renameCollection`, which not
/// every MongoDB-wire server makes atomic for readers (docs/architecture.md). A name with no
/// entry is kept under its own name, so a database that was never rebuilt needs no catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collections {
    names: std::collections::BTreeMap<String, String>,
}

impl Collections {
    /// The physical name of the read model collection `base`.
    pub fn name<'a>(&'a self, base: &'a str) -> &'a str {
        self.names.get(base).map_or(base, String::as_str)
    }

    /// The same names, with `base` kept under `physical`.
    pub fn with(mut self, base: &str, physical: impl Into<String>) -> Self {
        self.names.insert(base.to_owned(), physical.into());
        self
    }

    /// The catalog in `db` now.
    pub async fn current(db: &Database) -> mongodb::error::Result<Self> {
        let catalog = db
            .collection::<Document>(COLLECTIONS)
            .find_one(doc! { ID: COLLECTIONS_ID })
            .await?;
        Ok(catalog
            .and_then(|c| c.get_document("names").ok().map(Self::from_document))
            .unwrap_or_default())
    }

    pub fn from_document(names: &Document) -> Self {
        Self {
            names: names
                .iter()
                .filter_map(|(base, physical)| Some((base.clone(), physical.as_str()?.to_owned())))
                .collect(),
        }
    }

    pub fn to_document(&self) -> Document {
        self.names
            .iter()
            .map(|(base, physical)| (base.clone(), physical.clone().into()))
            .collect()
    }

    /// The collection `base` of `db` as these names place it.
    pub fn collection<T: Send + Sync>(&self, db: &Database, base: &str) -> mongodb::Collection<T> {
        db.collection(self.name(base))
    }
}

/// How long after switching the catalog a rebuild keeps the replaced collections written
/// (readers never go by a catalog older than [`CATALOG_FRESH_FOR`]).
pub const READERS_NOTICE: std::time::Duration = std::time::Duration::from_secs(3);

/// Every read model collection a rebuild replaces (view tallies are not among them: they are
/// not a projection of the event store).
pub const REBUILT: [&str; 5] = [USERS, PRODUCTS, PRODUCT_HISTORY, REVIEWS, IMAGES];

/// How old a catalog a reader may go by; older, it reads the catalog again first.
pub const CATALOG_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The catalog as a reader last read it, and when.
#[derive(Debug, Clone)]
pub struct SeenCollections {
    pub names: std::sync::Arc<Collections>,
    pub read_at: Option<std::time::Instant>,
}

/// A reader's view of the catalog of `db`: followed in the background (every `every`), and
/// read afresh by [`CollectionsFollower::current`] whenever what was followed is older than
/// [`CATALOG_FRESH_FOR`] (the store slow or away, or not read yet). A rebuild keeps the
/// replaced collections written for [`READERS_NOTICE`] after a switch and drops them later
/// still, so a reader never reads a stale or a dropped copy.
#[derive(Clone)]
pub struct CollectionsFollower {
    db: Database,
    seen: tokio::sync::watch::Receiver<SeenCollections>,
}

impl CollectionsFollower {
    pub fn spawn(
        db: Database,
        every: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Self {
        let (sender, seen) = tokio::sync::watch::channel(SeenCollections {
            names: std::sync::Arc::default(),
            read_at: None,
        });
        let follower = db.clone();
        tokio::spawn(async move {
            loop {
                let read = tokio::time::timeout(every * 4, Collections::current(&follower)).await;
                if let Ok(Ok(current)) = read {
                    sender.send_modify(|seen| {
                        if *seen.names != current {
                            tracing::info!(?current, "read model collections switched");
                            seen.names = std::sync::Arc::new(current);
                        }
                        seen.read_at = Some(std::time::Instant::now());
                    });
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        });
        Self { db, seen }
    }

    /// The catalog, read within the last [`CATALOG_FRESH_FOR`]; else read now.
    pub async fn current(&self) -> mongodb::error::Result<std::sync::Arc<Collections>> {
        let seen = self.seen.borrow().clone();
        if seen
            .read_at
            .is_some_and(|at| at.elapsed() < CATALOG_FRESH_FOR)
        {
            return Ok(seen.names);
        }
        Ok(std::sync::Arc::new(Collections::current(&self.db).await?))
    }
}
