//! A list page from the index: a walk of the order's map strictly after the cursor key, keeping
//! the products that match the page's filters.

use std::{collections::BTreeMap, ops::Bound, sync::Arc};

use super::{
    Criteria, Sort,
    entry::{Entry, Rating},
    index::Indexed,
};

impl Indexed {
    /// Up to `limit` products matching `criteria` strictly after the cursor key `after` (as
    /// the store path decodes it), in order; and whether more follow.
    pub(super) fn page(
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

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{Document, doc};
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
