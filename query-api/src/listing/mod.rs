//! The catalog's list pages from memory: every product's document, ordered by each sort of the
//! list endpoint, so a page is a walk of an ordered map whatever the store's query planner
//! does (the MongoDB-wire stand-in sorts 20,000 products without its indexes: 60 ms a page).
//!
//! The index is exact at its *position*: it reflects every event up to it. It is loaded whole
//! (at start, after a rebuild's switch of collections, after an error), then kept current by
//! reading the products whose `changed_position` is past the position it reflects, each time
//! the projector's checkpoint moves. Every write of a product document raises that field to
//! at least its event's position (never lowering it), so once the checkpoint says `P`, one
//! read of "changed after the last `P`" brings every change up to the new `P`.
//!
//! A page is taken from the index only when it reflects at least the position the request is
//! answered at; otherwise (still loading, too many products, the store failing) the list is
//! read from the store as before. Memory is bounded by `QUERY_LIST_INDEX_PRODUCTS`: a catalog
//! larger than that is not indexed.
//!
//! Here is the handle the requests share; what a page asks for is in `criteria`, one
//! product's keys in `entry`, the ordered maps in `index`, the walk that makes a page in
//! `page`, and the task that loads and follows the store in `keeper`.

mod criteria;
mod entry;
mod index;
mod keeper;
mod page;

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use mongodb::Database;
use shared::read_model::{Collections, CollectionsFollower};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::projection::ProjectionWatch;

pub use criteria::{Criteria, Sort};
pub use entry::Entry;
use index::Indexed;
use keeper::Keeper;

/// `QUERY_LIST_INDEX_PRODUCTS`' default.
pub const MAX_PRODUCTS: usize = 200_000;
/// How long a request waits for the index to catch up with its position before it reads the
/// store instead.
const CATCH_UP: Duration = Duration::from_millis(100);

/// The index, shared by the requests and the task that keeps it.
#[derive(Clone)]
pub struct ProductIndex {
    state: Arc<RwLock<Option<Indexed>>>,
    /// The position the index reflects (0 while it has none).
    position: watch::Receiver<i64>,
}

impl ProductIndex {
    /// Loads the index and keeps it current until `shutdown`.
    pub fn spawn(
        db: Database,
        collections: CollectionsFollower,
        projection: ProjectionWatch,
        max_products: usize,
        shutdown: CancellationToken,
    ) -> Self {
        let (sender, position) = watch::channel(0);
        let index = Self {
            state: Arc::new(RwLock::new(None)),
            position,
        };
        let keeper = Keeper {
            db,
            collections,
            projection,
            max_products,
            state: index.state.clone(),
            position: sender,
        };
        tokio::spawn(keeper.run(shutdown));
        index
    }

    /// A page from memory reflecting at least position `at_least` of the read models in
    /// `collections`; `None` when the index cannot give one (read the store instead).
    pub async fn page(
        &self,
        collections: &Collections,
        at_least: i64,
        criteria: &Criteria,
        after: Option<&serde_json::Value>,
        limit: usize,
    ) -> Option<(Vec<Arc<Entry>>, bool)> {
        let mut position = self.position.clone();
        // Usually there already; else the keeper is reading the last changes.
        tokio::time::timeout(CATCH_UP, position.wait_for(|p| *p >= at_least))
            .await
            .ok()?
            .ok()?;
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let indexed = state.as_ref()?;
        if indexed.position < at_least || *indexed.collections != *collections {
            return None;
        }
        indexed.page(criteria, after, limit)
    }
}
