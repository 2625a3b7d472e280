//! Product names as the events left them (`notifier_products`), so that a mail names the
//! product even when its event does not (an update of the price, a deletion).

use mongodb::{
    Collection, Database,
    bson::{Document, doc},
};
use shared::events::ProductEvent;

pub const PRODUCTS: &str = "notifier_products";

pub struct ProductNames {
    names: Collection<Document>,
}

impl ProductNames {
    pub fn of(db: &Database) -> Self {
        Self {
            names: db.collection(PRODUCTS),
        }
    }

    /// The product's name after `event`, remembered for the events that follow.
    pub async fn after(&self, sku: &str, event: &ProductEvent) -> anyhow::Result<String> {
        let known = self.names.find_one(doc! { "_id": sku }).await?;
        let known = known.as_ref().and_then(|p| p.get_str("name").ok());
        let name = name_after(event, known, sku);
        self.names
            .update_one(doc! { "_id": sku }, doc! { "$set": { "name": &name } })
            .upsert(true)
            .await?;
        Ok(name)
    }
}

/// The name an event gives the product, else the one `known` before it, else the SKU.
fn name_after(event: &ProductEvent, known: Option<&str>, sku: &str) -> String {
    let given = match event {
        ProductEvent::ProductCreated(created) => return created.name.clone(),
        ProductEvent::ProductUpdated(update) => {
            update.changes.get("name").and_then(|c| c.after.as_str())
        }
        ProductEvent::ProductDeleted(_) => None,
    };
    given.or(known).unwrap_or(sku).to_owned()
}

#[cfg(test)]
mod tests {
    use shared::events::{FieldChange, ProductDeleted, ProductUpdated};

    use super::*;

    fn update(field: &str, after: &str) -> ProductEvent {
        let change = FieldChange {
            before: "old".into(),
            after: after.into(),
        };
        ProductEvent::ProductUpdated(ProductUpdated {
            changes: [(field.to_owned(), change)].into(),
        })
    }

    #[test]
    fn a_renaming_update_gives_the_new_name() {
        assert_eq!(
            name_after(&update("name", "New"), Some("Old"), "sku-1"),
            "New"
        );
    }

    #[test]
    fn an_update_of_something_else_keeps_the_known_name() {
        assert_eq!(
            name_after(&update("price", "2.00"), Some("Old"), "sku-1"),
            "Old"
        );
    }

    #[test]
    fn a_product_never_named_is_called_by_its_sku() {
        let deleted = ProductEvent::ProductDeleted(ProductDeleted {});
        assert_eq!(name_after(&deleted, None, "sku-1"), "sku-1");
        assert_eq!(name_after(&deleted, Some("Old"), "sku-1"), "Old");
    }
}
