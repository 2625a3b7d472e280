//! `product_history`: every change of a product, for admins; one document per event.

use indexmap::IndexMap;
use mongodb::bson::{Bson, DateTime};
use serde::{Deserialize, Serialize};

use crate::Role;

/// The names filters, sorts and indexes of `product_history` use.
pub mod history_fields {
    pub use super::super::VERSION;

    pub const SKU: &str = "sku";
}

/// One product event, stored in this order; `_id` is the event id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryDoc {
    #[serde(rename = "_id")]
    pub event_id: String,
    pub sku: String,
    pub version: i64,
    pub position: i64,
    pub event_type: String,
    pub occurred_at: DateTime,
    /// Null for an event no user caused.
    pub actor: Option<HistoryActor>,
    /// The fields the event changed, by name, in the event's order: all of them on creation,
    /// none on deletion.
    pub changes: IndexMap<String, HistoryChange>,
}

/// Who caused the event, and in what role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryActor {
    pub id: String,
    pub role: Role,
}

/// A field's value before and after the event, as the event carries them (null before a
/// creation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryChange {
    pub before: Bson,
    pub after: Bson,
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{self, Bson, Document, doc};

    use super::*;
    use crate::read_model::decode;

    fn entry(actor: Bson, changes: Document) -> Document {
        doc! {
            "_id": "e0000000-0000-4000-8000-000000000003",
            "sku": "0b5f1c9e-7d43-4a59-9c55-2f3a1e7b9d10", "version": 2_i64,
            "position": 1042_i64, "event_type": "ProductUpdated",
            "occurred_at": DateTime::from_millis(1_763_700_000_123), "actor": actor,
            "changes": changes,
        }
    }

    /// Entries as the projector has stored them: an update's changes by field name, a
    /// creation's in the event's field order, specs in the event store's order.
    fn stored() -> Vec<Document> {
        let actor = doc! { "id": "a0000000-0000-4000-8000-000000000002", "role": "admin" };
        let update = doc! {
            "price": { "before": "5995.00", "after": "5795.00" },
            "specs": {
                "before": { "sensor": "60 MP" },
                "after": { "iso": "100", "sensor": "60 MP", "autofocus": "hybrid" },
            },
        };
        let creation = doc! {
            "name": { "before": Bson::Null, "after": "Q3" },
            "brand": { "before": Bson::Null, "after": "Leica" },
            "price": { "before": Bson::Null, "after": "5995.00" },
        };
        vec![
            entry(Bson::Document(actor), update),
            entry(Bson::Null, creation),
            entry(Bson::Null, Document::new()),
        ]
    }

    #[test]
    fn an_entry_round_trips_to_the_same_bytes() {
        let bytes = |d: &Document| bson::to_vec(d).unwrap();
        for document in stored() {
            let entry: HistoryDoc = decode(document.clone()).unwrap();
            assert_eq!(bytes(&bson::to_document(&entry).unwrap()), bytes(&document));
            assert_eq!(
                bson::from_slice::<HistoryDoc>(&bytes(&document)).unwrap(),
                entry
            );
        }
    }

    #[test]
    fn every_field_name_is_a_stored_field() {
        let entry: HistoryDoc = decode(stored().remove(0)).unwrap();
        assert_eq!(entry.actor.as_ref().map(|a| a.role), Some(Role::Admin));
        let written = bson::to_document(&entry).unwrap();
        for name in [history_fields::VERSION, history_fields::SKU] {
            assert!(written.contains_key(name), "{name}");
        }
    }
}
