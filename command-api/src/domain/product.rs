//! The product aggregate (id = SKU): creation, partial updates that record each change with
//! its before and after, deletion. A deleted product stays deleted.

use std::collections::BTreeMap;

use serde_json::Value;
use shared::{
    EventEnvelope,
    events::{FieldChange, ProductCreated, ProductDeleted, ProductEvent, ProductUpdated},
};

/// What a product is, folded from its events.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub fields: ProductCreated,
    pub deleted: bool,
    pub version: i64,
}

/// A partial update: only the fields present change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductChanges {
    pub name: Option<String>,
    pub brand: Option<String>,
    pub price: Option<String>,
    pub currency: Option<String>,
    pub description: Option<String>,
    pub specs: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone)]
pub enum ProductCommand {
    Create(ProductCreated),
    Update(ProductChanges),
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductRejection {
    #[error("a product with this SKU exists already")]
    AlreadyExists,
    #[error("product not found")]
    NotFound,
}

impl From<ProductRejection> for shared::ApiError {
    fn from(r: ProductRejection) -> Self {
        match r {
            ProductRejection::AlreadyExists => shared::ApiError::Conflict(r.to_string()),
            ProductRejection::NotFound => shared::ApiError::NotFound("product"),
        }
    }
}

pub fn handle(
    state: Option<&Product>,
    command: ProductCommand,
) -> Result<Vec<ProductEvent>, ProductRejection> {
    match (state, command) {
        (None, ProductCommand::Create(fields)) => Ok(vec![ProductEvent::ProductCreated(fields)]),
        (Some(_), ProductCommand::Create(_)) => Err(ProductRejection::AlreadyExists),
        (None, _) => Err(ProductRejection::NotFound),
        (Some(p), _) if p.deleted => Err(ProductRejection::NotFound),
        (Some(p), ProductCommand::Update(changes)) => {
            let changes = diff(&p.fields, changes);
            if changes.is_empty() {
                return Ok(Vec::new());
            }
            Ok(vec![ProductEvent::ProductUpdated(ProductUpdated {
                changes,
            })])
        }
        (Some(_), ProductCommand::Delete) => {
            Ok(vec![ProductEvent::ProductDeleted(ProductDeleted {})])
        }
    }
}

/// The fields that really change, with before and after.
fn diff(current: &ProductCreated, changes: ProductChanges) -> BTreeMap<String, FieldChange> {
    let mut out = BTreeMap::new();
    let mut note = |field: &str, before: Value, after: Value| {
        if before != after {
            out.insert(field.to_owned(), FieldChange { before, after });
        }
    };
    if let Some(v) = changes.name {
        note("name", current.name.clone().into(), v.into());
    }
    if let Some(v) = changes.brand {
        note("brand", current.brand.clone().into(), v.into());
    }
    if let Some(v) = changes.price {
        note("price", current.price.clone().into(), v.into());
    }
    if let Some(v) = changes.currency {
        note("currency", current.currency.clone().into(), v.into());
    }
    if let Some(v) = changes.description {
        note("description", current.description.clone().into(), v.into());
    }
    if let Some(v) = changes.specs {
        let as_json = |m: &BTreeMap<String, String>| serde_json::to_value(m).unwrap_or_default();
        note("specs", as_json(&current.specs), as_json(&v));
    }
    out
}

pub fn apply(
    state: Option<Product>,
    envelope: &EventEnvelope,
    event: &ProductEvent,
) -> Option<Product> {
    let mut product = match (state, event) {
        (None, ProductEvent::ProductCreated(fields)) => Product {
            fields: fields.clone(),
            deleted: false,
            version: 0,
        },
        (Some(mut p), ProductEvent::ProductUpdated(update)) => {
            for (field, change) in &update.changes {
                let text = || change.after.as_str().unwrap_or_default().to_owned();
                match field.as_str() {
                    "name" => p.fields.name = text(),
                    "brand" => p.fields.brand = text(),
                    "price" => p.fields.price = text(),
                    "currency" => p.fields.currency = text(),
                    "description" => p.fields.description = text(),
                    "specs" => {
                        p.fields.specs =
                            serde_json::from_value(change.after.clone()).unwrap_or_default()
                    }
                    _ => {}
                }
            }
            p
        }
        (Some(mut p), ProductEvent::ProductDeleted(_)) => {
            p.deleted = true;
            p
        }
        (state, _) => return state,
    };
    product.version = envelope.aggregate_version;
    Some(product)
}

pub fn rehydrate(stream: &[EventEnvelope]) -> Result<Option<Product>, shared::events::DecodeError> {
    let mut state = None;
    for envelope in stream {
        let event: ProductEvent = envelope.decode()?;
        state = apply(state, envelope, &event);
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> ProductCreated {
        ProductCreated {
            name: "Q3".into(),
            brand: "Leica".into(),
            price: "5995.00".into(),
            currency: "USD".into(),
            description: String::new(),
            specs: BTreeMap::from([("sensor".into(), "full frame".into())]),
        }
    }

    fn existing() -> Product {
        Product {
            fields: fields(),
            deleted: false,
            version: 1,
        }
    }

    #[test]
    fn given_nothing_when_creating_then_product_created() {
        let events = handle(None, ProductCommand::Create(fields())).unwrap();
        assert_eq!(events, vec![ProductEvent::ProductCreated(fields())]);
    }

    #[test]
    fn given_a_product_when_creating_the_same_sku_then_already_exists() {
        assert_eq!(
            handle(Some(&existing()), ProductCommand::Create(fields())),
            Err(ProductRejection::AlreadyExists)
        );
    }

    #[test]
    fn given_a_product_when_updating_then_only_real_changes_are_recorded_with_before_and_after() {
        let changes = ProductChanges {
            price: Some("5795.00".into()),
            brand: Some("Leica".into()),
            ..Default::default()
        };
        let events = handle(Some(&existing()), ProductCommand::Update(changes)).unwrap();
        let [ProductEvent::ProductUpdated(update)] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(update.changes.keys().collect::<Vec<_>>(), ["price"]);
        assert_eq!(update.changes["price"].before, "5995.00");
        assert_eq!(update.changes["price"].after, "5795.00");
    }

    #[test]
    fn given_a_product_when_nothing_changes_then_no_event() {
        let same = ProductChanges {
            name: Some("Q3".into()),
            ..Default::default()
        };
        assert!(
            handle(Some(&existing()), ProductCommand::Update(same))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn given_a_deleted_product_when_updating_or_deleting_then_not_found() {
        let deleted = Product {
            deleted: true,
            ..existing()
        };
        let update = ProductCommand::Update(ProductChanges {
            name: Some("X".into()),
            ..Default::default()
        });
        assert_eq!(
            handle(Some(&deleted), update),
            Err(ProductRejection::NotFound)
        );
        assert_eq!(
            handle(Some(&deleted), ProductCommand::Delete),
            Err(ProductRejection::NotFound)
        );
        assert_eq!(
            handle(None, ProductCommand::Delete),
            Err(ProductRejection::NotFound)
        );
    }
}
