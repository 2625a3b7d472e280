//! Keeps the list index current: loads it whole (at start, after a rebuild's switch of
//! collections, after an error), then reads the products whose `changed_position` is past the
//! position it reflects each time the projector's checkpoint moves.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use futures::TryStreamExt as _;
use mongodb::{
    Database,
    bson::{Document, doc},
};
use shared::read_model::{
    CollectionsFollower, PRODUCTS,
    product_fields::{CHANGED_POSITION, DELETED},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::index::Indexed;
use crate::projection::ProjectionWatch;

/// Keeps the index: loads it whole, then reads what changed each time the checkpoint moves.
pub(super) struct Keeper {
    pub(super) db: Database,
    pub(super) collections: CollectionsFollower,
    pub(super) projection: ProjectionWatch,
    pub(super) max_products: usize,
    pub(super) state: Arc<RwLock<Option<Indexed>>>,
    pub(super) position: watch::Sender<i64>,
}

impl Keeper {
    pub(super) async fn run(self, shutdown: CancellationToken) {
        if self.max_products == 0 {
            return; // turned off: lists are read from the store
        }
        let backoff = shared::service::Backoff {
            first: Duration::from_millis(200),
            max: Duration::from_secs(10),
        };
        shared::service::keep_running_with("the list index", &shutdown, backoff, || async {
            let outcome = self.keep(&shutdown).await;
            if outcome.is_err() {
                metrics::counter!("query_list_index_failures_total").increment(1);
                self.forget();
            }
            outcome
        })
        .await;
    }

    /// Refreshes each time the checkpoint moves (and every second: a rebuild's switch moves
    /// no position), until shutdown (`Ok`) or a failure to read (`Err`).
    async fn keep(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let mut moved = self.projection.subscribe();
        loop {
            match self.refresh().await {
                Ok(()) => {}
                Err(e) if e.is::<TooMany>() => {
                    tracing::warn!(error = %e, "the list index is off for now");
                    self.forget();
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(TOO_MANY_PAUSE) => {}
                    }
                    continue;
                }
                Err(e) => return Err(e.context("reading the list index")),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = moved.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    fn forget(&self) {
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = None;
        self.position.send_replace(0);
        metrics::gauge!("query_list_index_products").set(0.0);
    }

    async fn refresh(&self) -> anyhow::Result<()> {
        let collections = self.collections.current().await?;
        // Read before the store: what is read next reflects at least this much.
        let target = self.projection.current();
        let reflected = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            state
                .as_ref()
                .filter(|i| *i.collections == *collections)
                .map(|i| i.position)
        };
        let products = self.db.collection::<Document>(collections.name(PRODUCTS));
        match reflected {
            Some(position) if position >= target => return Ok(()),
            Some(position) => {
                let changed: Vec<Document> = products
                    .find(doc! { CHANGED_POSITION: { "$gt": position } })
                    .await?
                    .try_collect()
                    .await?;
                let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
                let Some(indexed) = state.as_mut() else {
                    return Ok(());
                };
                for document in changed {
                    indexed.put(document);
                }
                if indexed.by_sku.len() > self.max_products {
                    drop(state);
                    return self.too_many();
                }
                indexed.position = target;
            }
            None => {
                self.forget();
                let mut indexed = Indexed::new(collections.clone(), target);
                let mut all = products.find(doc! { DELETED: false }).await?;
                while let Some(document) = all.try_next().await? {
                    indexed.put(document);
                    if indexed.by_sku.len() > self.max_products {
                        return self.too_many();
                    }
                }
                metrics::counter!("query_list_index_loads_total").increment(1);
                tracing::info!(
                    products = indexed.by_sku.len(),
                    position = target,
                    "list index loaded"
                );
                *self.state.write().unwrap_or_else(|e| e.into_inner()) = Some(indexed);
            }
        }
        let products = self
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |i| i.by_sku.len());
        metrics::gauge!("query_list_index_products").set(products as f64);
        metrics::gauge!("query_list_index_position").set(target as f64);
        self.position.send_replace(target);
        Ok(())
    }

    /// More products than the index may hold: lists are read from the store.
    fn too_many(&self) -> anyhow::Result<()> {
        self.forget();
        Err(TooMany(self.max_products).into())
    }
}

/// How long a catalog too large to index is left alone before it is counted again.
const TOO_MANY_PAUSE: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct TooMany(usize);

impl std::fmt::Display for TooMany {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "more than {} products (QUERY_LIST_INDEX_PRODUCTS): lists are read from the store",
            self.0
        )
    }
}

impl std::error::Error for TooMany {}
