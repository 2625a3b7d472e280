//! Events of the product aggregate (id = SKU).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::EventCatalog;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ProductEvent {
    ProductCreated(ProductCreated),
    ProductUpdated(ProductUpdated),
    ProductDeleted(ProductDeleted),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductCreated {
    pub name: String,
    pub brand: String,
    /// Decimal string with at most two decimals.
    pub price: String,
    pub currency: String,
    pub description: String,
    pub specs: BTreeMap<String, String>,
}

/// What changed, field by field, before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductUpdated {
    pub changes: BTreeMap<String, FieldChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub before: Value,
    pub after: Value,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProductDeleted {}

impl EventCatalog for ProductEvent {
    const AGGREGATE_TYPE: &'static str = "product";

    fn event_type(&self) -> &'static str {
        match self {
            ProductEvent::ProductCreated(_) => "ProductCreated",
            ProductEvent::ProductUpdated(_) => "ProductUpdated",
            ProductEvent::ProductDeleted(_) => "ProductDeleted",
        }
    }

    fn current_version(event_type: &str) -> Option<i32> {
        match event_type {
            "ProductCreated" | "ProductUpdated" | "ProductDeleted" => Some(1),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created() -> ProductEvent {
        ProductEvent::ProductCreated(ProductCreated {
            name: "X100VI".into(),
            brand: "Fujifilm".into(),
            price: "1599.00".into(),
            currency: "USD".into(),
            description: String::new(),
            specs: BTreeMap::from([("sensor".into(), "APS-C".into())]),
        })
    }

    #[test]
    fn an_event_round_trips_through_its_stored_form() {
        let event = created();
        let data = event.to_data().unwrap();
        assert_eq!(data["brand"], "Fujifilm");
        let back = ProductEvent::from_stored(event.event_type(), event.schema_version(), data);
        assert_eq!(back.unwrap(), event);
    }

    #[test]
    fn an_unknown_type_is_a_decode_error() {
        let err = ProductEvent::from_stored("ProductExploded", 1, Value::Null).unwrap_err();
        assert!(matches!(err, super::super::DecodeError::UnknownType(_)));
    }

    #[test]
    fn a_version_from_the_future_is_refused() {
        let data = created().to_data().unwrap();
        let err = ProductEvent::from_stored("ProductCreated", 7, data).unwrap_err();
        assert!(matches!(
            err,
            super::super::DecodeError::FromTheFuture { .. }
        ));
    }
}
