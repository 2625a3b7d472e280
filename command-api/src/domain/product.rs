//! The product aggregate (id = SKU): creation, partial updates that record each change with
//! its before and after, deletion. A deleted product stays deleted.

use std::collections::BTreeMap;

use serde_json::Value;
use shared::{
    Actor, EventEnvelope,
    events::{FieldChange, ProductCreated, ProductDeleted, ProductEvent, ProductUpdated},
};

use super::aggregate::Aggregate;

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

/// A new product, validated; what is not given takes its default (currency USD, no
/// description, no specs).
#[derive(Debug, Clone, PartialEq)]
pub struct NewProduct {
    pub name: String,
    pub brand: String,
    pub price: String,
    pub currency: Option<String>,
    pub description: Option<String>,
    pub specs: Option<BTreeMap<String, String>>,
}

/// The currency of a product created without one.
pub const DEFAULT_CURRENCY: &str = "USD";

#[derive(Debug, Clone)]
pub enum ProductCommand {
    Create(NewProduct),
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

impl Aggregate for Product {
    type Event = ProductEvent;
    type Command = ProductCommand;
    type Rejection = ProductRejection;
    const NAME: &'static str = "product";

    fn creates(command: &ProductCommand) -> bool {
        matches!(command, ProductCommand::Create(_))
    }

    fn handle(
        state: Option<&Product>,
        _actor: Option<&Actor>,
        command: ProductCommand,
    ) -> Result<Vec<ProductEvent>, ProductRejection> {
        match (state, command) {
            (None, ProductCommand::Create(new)) => {
                Ok(vec![ProductEvent::ProductCreated(ProductCreated {
                    name: new.name,
                    brand: new.brand,
                    price: new.price,
                    currency: new.currency.unwrap_or_else(|| DEFAULT_CURRENCY.to_owned()),
                    description: new.description.unwrap_or_default(),
                    specs: new.specs.unwrap_or_default(),
                })])
            }
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

    fn apply(
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

    fn version(&self) -> i64 {
        self.version
    }

    fn deleted(&self) -> bool {
        self.deleted
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

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::aggregate::scenario::given;

    fn created() -> ProductCreated {
        ProductCreated {
            name: "Q3".into(),
            brand: "Leica".into(),
            price: "5995.00".into(),
            currency: "USD".into(),
            description: String::new(),
            specs: BTreeMap::from([("sensor".into(), "full frame".into())]),
        }
    }

    fn new_product() -> NewProduct {
        NewProduct {
            name: "Q3".into(),
            brand: "Leica".into(),
            price: "5995.00".into(),
            currency: None,
            description: None,
            specs: Some(BTreeMap::from([("sensor".into(), "full frame".into())])),
        }
    }

    fn a_product() -> Vec<ProductEvent> {
        vec![ProductEvent::ProductCreated(created())]
    }

    #[test]
    fn given_nothing_when_creating_then_product_created_in_the_default_currency() {
        given::<Product>(Uuid::now_v7(), vec![])
            .when(None, ProductCommand::Create(new_product()))
            .then(vec![ProductEvent::ProductCreated(created())]);
    }

    #[test]
    fn given_a_product_when_creating_the_same_sku_then_already_exists() {
        given::<Product>(Uuid::now_v7(), a_product())
            .when(None, ProductCommand::Create(new_product()))
            .then_rejected(ProductRejection::AlreadyExists);
    }

    #[test]
    fn given_a_product_when_updating_then_only_real_changes_are_recorded_with_before_and_after() {
        let changes = ProductChanges {
            price: Some("5795.00".into()),
            brand: Some("Leica".into()),
            ..Default::default()
        };
        given::<Product>(Uuid::now_v7(), a_product())
            .when(None, ProductCommand::Update(changes))
            .then(vec![ProductEvent::ProductUpdated(ProductUpdated {
                changes: BTreeMap::from([(
                    "price".to_owned(),
                    FieldChange {
                        before: "5995.00".into(),
                        after: "5795.00".into(),
                    },
                )]),
            })]);
    }

    #[test]
    fn given_a_product_when_nothing_changes_then_no_event() {
        let same = ProductChanges {
            name: Some("Q3".into()),
            ..Default::default()
        };
        given::<Product>(Uuid::now_v7(), a_product())
            .when(None, ProductCommand::Update(same))
            .then_nothing();
    }

    #[test]
    fn given_an_updated_product_when_updating_back_then_the_change_starts_from_the_update() {
        let mut events = a_product();
        events.push(ProductEvent::ProductUpdated(ProductUpdated {
            changes: BTreeMap::from([(
                "name".to_owned(),
                FieldChange {
                    before: "Q3".into(),
                    after: "Q3 Monochrom".into(),
                },
            )]),
        }));
        let back = ProductChanges {
            name: Some("Q3".into()),
            ..Default::default()
        };
        given::<Product>(Uuid::now_v7(), events)
            .when(None, ProductCommand::Update(back))
            .then(vec![ProductEvent::ProductUpdated(ProductUpdated {
                changes: BTreeMap::from([(
                    "name".to_owned(),
                    FieldChange {
                        before: "Q3 Monochrom".into(),
                        after: "Q3".into(),
                    },
                )]),
            })]);
    }

    #[test]
    fn given_a_deleted_product_when_updating_or_deleting_then_not_found() {
        let mut deleted = a_product();
        deleted.push(ProductEvent::ProductDeleted(ProductDeleted {}));
        let update = ProductCommand::Update(ProductChanges {
            name: Some("X".into()),
            ..Default::default()
        });
        given::<Product>(Uuid::now_v7(), deleted.clone())
            .when(None, update)
            .then_rejected(ProductRejection::NotFound);
        given::<Product>(Uuid::now_v7(), deleted)
            .when(None, ProductCommand::Delete)
            .then_rejected(ProductRejection::NotFound);
        given::<Product>(Uuid::now_v7(), vec![])
            .when(None, ProductCommand::Delete)
            .then_rejected(ProductRejection::NotFound);
    }
}
