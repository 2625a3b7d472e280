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

use std::{
    collections::{BTreeMap, HashMap},
    ops::Bound,
    sync::{Arc, RwLock},
    time::Duration,
};

use futures::TryStreamExt as _;
use mongodb::{
    Database,
    bson::{Bson, Document, doc},
};
use shared::read_model::{
    Collections, CollectionsFollower, PRODUCTS,
    product_fields::{
        BRAND_KEY, CHANGED_POSITION, CREATED_POSITION, DELETED, ID, NAME_SORT, PRICE_CENTS,
        RATING_SORT, SEARCH_TEXT,
    },
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::projection::ProjectionWatch;

/// `QUERY_LIST_INDEX_PRODUCTS`' default.
pub const MAX_PRODUCTS: usize = 200_000;
/// How long a request waits for the index to catch up with its position before it reads the
/// store instead.
const CATCH_UP: Duration = Duration::from_millis(100);

/// The orders of the list endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Newest,
    PriceAsc,
    PriceDesc,
    Name,
    Rating,
}

impl Sort {
    pub fn parse(raw: &str) -> Result<Self, String> {
        Ok(match raw {
            "newest" => Sort::Newest,
            "price_asc" => Sort::PriceAsc,
            "price_desc" => Sort::PriceDesc,
            "name" => Sort::Name,
            "rating" => Sort::Rating,
            _ => return Err("must be newest, price_asc, price_desc, name or rating".into()),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Sort::Newest => "newest",
            Sort::PriceAsc => "price_asc",
            Sort::PriceDesc => "price_desc",
            Sort::Name => "name",
            Sort::Rating => "rating",
        }
    }
}

/// What a list page asks for (text filters lower-cased, as the documents' keys are).
#[derive(Debug, Clone)]
pub struct Criteria {
    pub sort: Sort,
    pub brand: Option<String>,
    pub q: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
}

/// One product as the index holds it: its document and the keys it is found by.
#[derive(Debug)]
pub struct Entry {
    pub document: Document,
    sku: String,
    created: i64,
    price: i64,
    name: String,
    rating: Rating,
    brand: String,
    search: String,
}

impl Entry {
    fn of(document: Document) -> Option<Self> {
        let text = |field: &str| document.get_str(field).ok().map(str::to_owned);
        let int = |field: &str| match document.get(field) {
            Some(Bson::Int64(n)) => Some(*n),
            Some(Bson::Int32(n)) => Some(i64::from(*n)),
            _ => None,
        };
        Some(Self {
            sku: text(ID)?,
            created: int(CREATED_POSITION)?,
            price: int(PRICE_CENTS)?,
            name: text(NAME_SORT)?,
            rating: Rating(document.get_f64(RATING_SORT).unwrap_or(-1.0)),
            brand: text(BRAND_KEY).unwrap_or_default(),
            search: text(SEARCH_TEXT).unwrap_or_default(),
            document,
        })
    }

    fn matches(&self, criteria: &Criteria) -> bool {
        criteria.brand.as_ref().is_none_or(|b| *b == self.brand)
            && criteria
                .q
                .as_ref()
                .is_none_or(|q| self.search.contains(q.as_str()))
            && criteria.min_price.is_none_or(|min| self.price >= min)
            && criteria.max_price.is_none_or(|max| self.price <= max)
    }
}

/// A rating key ordered as MongoDB orders doubles.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rating(f64);

impl Eq for Rating {}

impl PartialOrd for Rating {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Rating {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The products at one position, in every order.
struct Indexed {
    collections: Arc<Collections>,
    position: i64,
    by_sku: HashMap<String, Arc<Entry>>,
    newest: BTreeMap<(i64, String), Arc<Entry>>,
    price: BTreeMap<(i64, String), Arc<Entry>>,
    name: BTreeMap<(String, String), Arc<Entry>>,
    rating: BTreeMap<(Rating, String), Arc<Entry>>,
}

impl Indexed {
    fn new(collections: Arc<Collections>, position: i64) -> Self {
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
    fn put(&mut self, document: Document) {
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

    /// Up to `limit` products matching `criteria` strictly after the cursor key `after` (as
    /// the store path decodes it), in order; and whether more follow.
    fn page(
        &self,
        criteria: &Criteria,
        after: Option<&serde_json::Value>,
        limit: usize,
    ) -> Option<(Vec<Arc<Entry>>, bool)> {
        let int = |v: &serde_json::Value| v.as_i64();
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        let key = |n: usize| after.map(|a| &a[n]);
        let entries: Box<dyn Iterator<Item = &Arc<Entry>>> = match criteria.sort {
            Sort::Newest => {
                let after = match key(0) {
                    Some(v) => Some((int(v)?, String::new())),
                    None => None,
                };
                walk(&self.newest, after, false)
            }
            Sort::PriceAsc | Sort::PriceDesc => {
                let after = match (key(0), key(1)) {
                    (Some(v), Some(id)) => Some((int(v)?, text(id)?)),
                    _ => None,
                };
                walk(&self.price, after, criteria.sort == Sort::PriceAsc)
            }
            Sort::Name => {
                let after = match (key(0), key(1)) {
                    (Some(v), Some(id)) => Some((text(v)?, text(id)?)),
                    _ => None,
                };
                walk(&self.name, after, true)
            }
            Sort::Rating => {
                let after = match (key(0), key(1)) {
                    (Some(v), Some(id)) => Some((Rating(v.as_f64()?), text(id)?)),
                    _ => None,
                };
                walk(&self.rating, after, false)
            }
        };
        let mut page: Vec<Arc<Entry>> = entries
            .filter(|e| e.matches(criteria))
            .take(limit + 1)
            .cloned()
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        Some((page, more))
    }
}

/// The entries of `map` strictly after `after` (before it, walking down), in order.
fn walk<'a, K: Ord>(
    map: &'a BTreeMap<K, Arc<Entry>>,
    after: Option<K>,
    ascending: bool,
) -> Box<dyn Iterator<Item = &'a Arc<Entry>> + 'a> {
    match (after, ascending) {
        (None, true) => Box::new(map.values()),
        (None, false) => Box::new(map.values().rev()),
        (Some(k), true) => Box::new(
            map.range((Bound::Excluded(k), Bound::Unbounded))
                .map(|e| e.1),
        ),
        (Some(k), false) => Box::new(
            map.range((Bound::Unbounded, Bound::Excluded(k)))
                .rev()
                .map(|e| e.1),
        ),
    }
}

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

/// Keeps the index: loads it whole, then reads what changed each time the checkpoint moves.
struct Keeper {
    db: Database,
    collections: CollectionsFollower,
    projection: ProjectionWatch,
    max_products: usize,
    state: Arc<RwLock<Option<Indexed>>>,
    position: watch::Sender<i64>,
}

impl Keeper {
    async fn run(self, shutdown: CancellationToken) {
        if self.max_products == 0 {
            return; // turned off: lists are read from the store
        }
        let mut moved = self.projection.subscribe();
        let mut backoff = Duration::from_millis(200);
        loop {
            let pause = match self.refresh().await {
                Ok(()) => {
                    backoff = Duration::from_millis(200);
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = moved.changed() => {}
                        // A rebuild's switch moves no position: look at the collections too.
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
                Err(e) if e.is::<TooMany>() => {
                    tracing::warn!(error = %e, "the list index is off for now");
                    TOO_MANY_PAUSE
                }
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "the list index could not be read");
                    metrics::counter!("query_list_index_failures_total").increment(1);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    backoff
                }
            };
            self.forget();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn product(sku: &str, created: i64, price: i64, name: &str, brand: &str) -> Document {
        doc! {
            "_id": sku, "created_position": created, "price_cents": price,
            "name_sort": name, "brand_key": brand, "search_text": format!("{name}\n{brand}"),
            "rating_sort": -1.0, "deleted": false,
        }
    }

    fn skus(page: &(Vec<Arc<Entry>>, bool)) -> Vec<&str> {
        page.0.iter().map(|e| e.sku.as_str()).collect()
    }

    fn criteria(sort: Sort) -> Criteria {
        Criteria {
            sort,
            brand: None,
            q: None,
            min_price: None,
            max_price: None,
        }
    }

    fn index() -> Indexed {
        let mut index = Indexed::new(Arc::default(), 1);
        index.put(product("a", 1, 300, "zeta", "leica"));
        index.put(product("b", 2, 100, "alpha", "canon"));
        index.put(product("c", 3, 200, "mid", "leica"));
        index.put(product("d", 4, 100, "beta", "canon"));
        index
    }

    #[test]
    fn pages_follow_each_order_and_resume_strictly_after_the_cursor_key() {
        let index = index();
        let newest = index.page(&criteria(Sort::Newest), None, 2).unwrap();
        assert_eq!((skus(&newest), newest.1), (vec!["d", "c"], true));
        let next = index
            .page(&criteria(Sort::Newest), Some(&json!([3])), 2)
            .unwrap();
        assert_eq!((skus(&next), next.1), (vec!["b", "a"], false));
        let cheap = index.page(&criteria(Sort::PriceAsc), None, 10).unwrap();
        assert_eq!(skus(&cheap), vec!["b", "d", "c", "a"]);
        let after_tie = index
            .page(&criteria(Sort::PriceAsc), Some(&json!([100, "b"])), 10)
            .unwrap();
        assert_eq!(skus(&after_tie), vec!["d", "c", "a"]);
        let dear = index
            .page(&criteria(Sort::PriceDesc), Some(&json!([100, "d"])), 10)
            .unwrap();
        assert_eq!(skus(&dear), vec!["b"]);
        let names = index.page(&criteria(Sort::Name), None, 10).unwrap();
        assert_eq!(skus(&names), vec!["b", "d", "c", "a"]);
        assert!(
            index
                .page(&criteria(Sort::Name), Some(&json!([5, "x"])), 10)
                .is_none(),
            "a key of the wrong type gives no page"
        );
    }

    #[test]
    fn filters_narrow_and_changes_move_or_remove_entries() {
        let mut index = index();
        let mut leica = criteria(Sort::Newest);
        leica.brand = Some("leica".into());
        leica.min_price = Some(250);
        assert_eq!(skus(&index.page(&leica, None, 10).unwrap()), vec!["a"]);
        let mut search = criteria(Sort::Name);
        search.q = Some("eta".into());
        assert_eq!(
            skus(&index.page(&search, None, 10).unwrap()),
            vec!["d", "a"]
        );
        // "a" is renamed and repriced; "c" is deleted.
        index.put(product("a", 1, 50, "aardvark", "leica"));
        let mut deleted = product("c", 3, 200, "mid", "leica");
        deleted.insert("deleted", true);
        index.put(deleted);
        let cheap = index.page(&criteria(Sort::PriceAsc), None, 10).unwrap();
        assert_eq!(skus(&cheap), vec!["a", "b", "d"]);
        let names = index.page(&criteria(Sort::Name), None, 10).unwrap();
        assert_eq!(skus(&names), vec!["a", "b", "d"]);
        assert_eq!(index.by_sku.len(), 3);
        assert_eq!(index.newest.len(), 3);
    }
}
