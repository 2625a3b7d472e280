//! The view tallies the notifier keeps from `VIEWS`: `product_views` (per product) and
//! `product_views_hourly` (per product and hour). They are not a projection of the event store,
//! so a rebuild leaves them alone.

use mongodb::bson::DateTime;
use serde::{Deserialize, Serialize};

/// The names filters, indexes and updates of the tallies use.
pub mod views_fields {
    pub use super::super::ID;

    pub const SKU: &str = "sku";
    pub const BUCKET_START: &str = "bucket_start";
    pub const VIEWS: &str = "views";
    pub const LAST_SEQ: &str = "last_seq";
}

/// A product's views (`_id` is the SKU). `last_seq` is the `VIEWS` stream sequence counted up
/// to: a batch adds only the views after it, so each view is counted once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductViewsDoc {
    #[serde(rename = "_id")]
    pub sku: String,
    pub views: i64,
    pub last_seq: i64,
}

/// A product's views in the hour from `bucket_start`; `_id` is `<sku>|<hour, RFC 3339>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourlyViewsDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub sku: String,
    pub bucket_start: DateTime,
    pub views: i64,
    pub last_seq: i64,
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{self, Document, doc};

    use super::*;
    use crate::read_model::decode;

    const SKU: &str = "0b5f1c9e-7d43-4a59-9c55-2f3a1e7b9d10";

    /// Tallies as the notifier has stored them: the upsert's `_id`, then `$setOnInsert`.
    fn stored() -> (Document, Document) {
        let product = doc! { "_id": SKU, "views": 7_i64, "last_seq": 90_i64 };
        let hourly = doc! {
            "_id": format!("{SKU}|2026-11-21T10:00:00+00:00"), "sku": SKU,
            "bucket_start": DateTime::from_millis(1_763_719_200_000), "views": 3_i64,
            "last_seq": 88_i64,
        };
        (product, hourly)
    }

    fn bytes(document: &Document) -> Vec<u8> {
        bson::to_vec(document).unwrap()
    }

    #[test]
    fn the_tallies_round_trip_to_the_same_bytes() {
        let (product, hourly) = stored();
        let tally: ProductViewsDoc = decode(product.clone()).unwrap();
        assert_eq!(bytes(&bson::to_document(&tally).unwrap()), bytes(&product));
        let hour: HourlyViewsDoc = decode(hourly.clone()).unwrap();
        assert_eq!(bytes(&bson::to_document(&hour).unwrap()), bytes(&hourly));
        assert_eq!(
            bson::from_slice::<HourlyViewsDoc>(&bytes(&hourly)).unwrap(),
            hour
        );
    }

    #[test]
    fn a_tally_counted_up_by_inc_from_32_bits_reads_as_before() {
        let tally: ProductViewsDoc =
            decode(doc! { "_id": SKU, "views": 7_i32, "last_seq": 90_i64 }).unwrap();
        assert_eq!(tally.views, 7);
    }

    #[test]
    fn every_field_name_is_a_stored_field() {
        use views_fields::*;
        let (product, hourly) = stored();
        let product = bson::to_document(&decode::<ProductViewsDoc>(product).unwrap()).unwrap();
        let hourly = bson::to_document(&decode::<HourlyViewsDoc>(hourly).unwrap()).unwrap();
        for name in [ID, VIEWS, LAST_SEQ] {
            assert!(
                product.contains_key(name) && hourly.contains_key(name),
                "{name}"
            );
        }
        for name in [SKU, BUCKET_START] {
            assert!(hourly.contains_key(name), "{name}");
        }
    }
}
