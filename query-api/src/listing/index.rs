//! The products at one position, held in every order of the list endpoint, and how a product
//! document (a new one, a changed one, a deleted one) is put in place of the one kept for it.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use mongodb::bson::Document;
use shared::read_model::{
    Collections,
    product_fields::{DELETED, ID},
};

use super::entry::{Entry, Rating};

/// The products at one position, in every order.
pub(super) struct Indexed {
    pub(super) collections: Arc<Collections>,
    pub(super) position: i64,
    pub(super) by_sku: HashMap<String, Arc<Entry>>,
    pub(super) newest: BTreeMap<(i64, String), Arc<Entry>>,
    pub(super) price: BTreeMap<(i64, String), Arc<Entry>>,
    pub(super) name: BTreeMap<(String, String), Arc<Entry>>,
    pub(super) rating: BTreeMap<(Rating, String), Arc<Entry>>,
}

impl Indexed {
    pub(super) fn new(collections: Arc<Collections>, position: i64) -> Self {
        Self {
            collections,
            position,
            by_sku: HashMap::new(),
            newest: BTreeMap::new(),
            price: BTreeMap::new(),
            name: BTreeMap::new(),
            rating: BTreeMap::new(),
        }
    }

    fn remove(&mut self, sku: &str) {
        if let Some(old) = self.by_sku.remove(sku) {
            let id = old.sku.clone();
            self.newest.remove(&(old.created, id.clone()));
            self.price.remove(&(old.price, id.clone()));
            self.name.remove(&(old.name.clone(), id.clone()));
            self.rating.remove(&(old.rating, id));
        }
    }

    /// Puts the document in place of the one kept for its SKU (a deleted one is taken out).
    pub(super) fn put(&mut self, document: Document) {
        let Ok(sku) = document.get_str(ID).map(str::to_owned) else {
            return;
        };
        self.remove(&sku);
        if document.get_bool(DELETED).unwrap_or(false) {
            return;
        }
        let Some(entry) = Entry::of(document) else {
            tracing::warn!(
                sku,
                "a product document without its sort keys is not listed"
            );
            return;
        };
        let entry = Arc::new(entry);
        let id = entry.sku.clone();
        self.newest
            .insert((entry.created, id.clone()), entry.clone());
        self.price.insert((entry.price, id.clone()), entry.clone());
        self.name
            .insert((entry.name.clone(), id.clone()), entry.clone());
        self.rating
            .insert((entry.rating, id.clone()), entry.clone());
        self.by_sku.insert(id, entry);
    }
}
