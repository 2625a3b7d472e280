//! `products`: the catalog as readers see it, one document per SKU, and the review statistics
//! the review projection keeps on it.

use indexmap::IndexMap;
use mongodb::bson::DateTime;
use serde::{Deserialize, Serialize};

/// The names filters, sorts, indexes and updates of `products` use.
pub mod product_fields {
    pub use super::super::{CHANGED_POSITION, DELETED, ID, VERSION};

    pub const NAME: &str = "name";
    pub const BRAND: &str = "brand";
    pub const PRICE: &str = "price";
    pub const CURRENCY: &str = "currency";
    pub const DESCRIPTION: &str = "description";
    pub const SPECS: &str = "specs";
    pub const PRICE_CENTS: &str = "price_cents";
    pub const BRAND_KEY: &str = "brand_key";
    pub const NAME_SORT: &str = "name_sort";
    pub const SEARCH_TEXT: &str = "search_text";
    pub const RATING_SORT: &str = "rating_sort";
    pub const CREATED_POSITION: &str = "created_position";
    pub const STATS_VERSION: &str = "stats_version";
}

/// A product. The fields are stored in this order. A deleted product stays as a tombstone
/// (`deleted: true`) so a replayed `ProductCreated` cannot bring it back.
///
/// Besides what readers see, it keeps the keys its query paths use: `price_cents` (price
/// filters and sorts), `brand_key`, `name_sort`, `search_text` (the `q` search, lower-cased)
/// and `created_position` (newest first; unique, so a stable order). The product projection
/// writes everything but [`RatingStats`] and `stats_version`, which belong to the review
/// projection: they are carried here so that a product written back keeps them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductDoc {
    #[serde(rename = "_id")]
    pub sku: String,
    pub name: String,
    pub brand: String,
    /// A decimal string with at most two decimals.
    pub price: String,
    pub currency: String,
    pub description: String,
    /// In the order the event that set them gave them (the event store's order).
    pub specs: IndexMap<String, String>,
    pub price_cents: i64,
    pub brand_key: String,
    pub name_sort: String,
    pub search_text: String,
    #[serde(flatten)]
    pub stats: RatingStats,
    pub created_position: i64,
    pub created_at: DateTime,
    pub updated_at: DateTime,
    pub version: i64,
    /// At least the position of the latest event that changed the document, this product's
    /// or its statistics' (never lowered); absent (0) from documents no event has changed
    /// since it was introduced.
    #[serde(default)]
    pub changed_position: i64,
    pub deleted: bool,
    /// The review events the statistics include (absent before the first review event):
    /// the guard that keeps a slower projector instance from overwriting newer statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_version: Option<i64>,
}

/// A product's statistics over its reviews that are not deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingStats {
    #[serde(default)]
    pub review_count: i64,
    #[serde(default)]
    pub rating_sum: i64,
    /// The average rating; null without reviews.
    #[serde(default)]
    pub rating_avg: Option<f64>,
    /// The average, or -1 without reviews, so that the best rated sort puts unrated products
    /// last.
    #[serde(default = "RatingStats::unrated")]
    pub rating_sort: f64,
}

impl RatingStats {
    /// The statistics of `count` reviews whose ratings add up to `sum`.
    pub fn of(count: i64, sum: i64) -> Self {
        let average = (count > 0).then(|| sum as f64 / count as f64);
        Self {
            review_count: count,
            rating_sum: sum,
            rating_avg: average,
            rating_sort: average.unwrap_or_else(Self::unrated),
        }
    }

    fn unrated() -> f64 {
        -1.0
    }
}

/// No reviews.
impl Default for RatingStats {
    fn default() -> Self {
        Self::of(0, 0)
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{self, Bson, Document, doc};

    use super::*;
    use crate::read_model::decode;

    /// A product as the projector stores it.
    fn stored(stats: Document) -> Document {
        let at = DateTime::from_millis(1_763_700_000_123);
        let mut product = doc! {
            "_id": "0b5f1c9e-7d43-4a59-9c55-2f3a1e7b9d10", "name": "Q3", "brand": "Leica",
            "price": "5995.00", "currency": "USD", "description": "Full-frame compact",
            // As an update left them: in the event store's order, not alphabetical.
            "specs": { "iso": "100", "sensor": "60 MP", "autofocus": "hybrid" },
            "price_cents": 599_500_i64,
            "brand_key": "leica", "name_sort": "q3", "search_text": "q3\nleica\nfull-frame compact",
        };
        product.extend(stats);
        product.extend(doc! {
            "created_position": 42_i64, "created_at": at, "updated_at": at, "version": 3_i64,
            "changed_position": 57_i64, "deleted": false,
        });
        product
    }

    fn round_trip(document: &Document) {
        let product: ProductDoc = decode(document.clone()).unwrap();
        let back = bson::to_document(&product).unwrap();
        let bytes = |d: &Document| bson::to_vec(d).unwrap();
        assert_eq!(bytes(&back), bytes(document), "{back}\n{document}");
        // The driver reads typed collections from the raw bytes.
        assert_eq!(
            bson::from_slice::<ProductDoc>(&bytes(document)).unwrap(),
            product
        );
    }

    #[test]
    fn a_new_product_round_trips_to_the_same_bytes() {
        round_trip(&stored(doc! {
            "review_count": 0_i64, "rating_sum": 0_i64, "rating_avg": Bson::Null,
            "rating_sort": -1.0,
        }));
    }

    #[test]
    fn a_reviewed_product_keeps_the_review_projection_s_statistics() {
        let mut document = stored(doc! {
            "review_count": 2_i64, "rating_sum": 9_i64, "rating_avg": 4.5, "rating_sort": 4.5,
        });
        // The review projection's `$set` adds `stats_version` at the end.
        document.insert("stats_version", 5_i64);
        round_trip(&document);
        let product: ProductDoc = decode(document).unwrap();
        assert_eq!(product.stats, RatingStats::of(2, 9));
        assert_eq!(product.stats_version, Some(5));
    }

    #[test]
    fn unrated_statistics_are_stored_as_before() {
        let stored = doc! {
            "review_count": 0_i64, "rating_sum": 0_i64, "rating_avg": Bson::Null, "rating_sort": -1.0,
        };
        assert_eq!(
            bson::to_vec(&unrated()).unwrap(),
            bson::to_vec(&stored).unwrap()
        );
    }

    #[test]
    fn a_product_stored_before_changed_position_reads_as_changed_at_zero() {
        let mut document = stored(unrated());
        document.remove("changed_position");
        assert_eq!(decode::<ProductDoc>(document).unwrap().changed_position, 0);
    }

    fn unrated() -> Document {
        bson::to_document(&RatingStats::default()).unwrap()
    }

    #[test]
    fn a_field_that_does_not_fit_is_named() {
        let mut document = stored(unrated());
        document.insert("price", 12.5);
        let error = decode::<ProductDoc>(document).unwrap_err().to_string();
        assert!(error.starts_with("price: "), "{error}");
    }

    #[test]
    fn every_field_name_is_a_stored_field() {
        use product_fields::*;
        let mut document = stored(unrated());
        document.insert("stats_version", 1_i64);
        let product: ProductDoc = decode(document).unwrap();
        let written = bson::to_document(&product).unwrap();
        for name in [
            ID,
            VERSION,
            DELETED,
            NAME,
            BRAND,
            PRICE,
            CURRENCY,
            DESCRIPTION,
            SPECS,
            PRICE_CENTS,
            BRAND_KEY,
            NAME_SORT,
            SEARCH_TEXT,
            RATING_SORT,
            CREATED_POSITION,
            CHANGED_POSITION,
            STATS_VERSION,
        ] {
            assert!(written.contains_key(name), "{name}");
        }
    }
}
