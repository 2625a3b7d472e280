//! `products` (the catalog as readers see it, [`ProductDoc`]) and `product_history` (every
//! change, for admins, [`HistoryDoc`]).
//!
//! A product document's `_id` is its SKU and `version` the last applied aggregate version; a
//! deleted product stays as a tombstone. The keys its query paths use (`price_cents`,
//! `brand_key`, `name_sort`, `search_text`) are derived here from the fields an admin sets.
//! Review statistics ([`RatingStats`]) belong to the review projection; product events never
//! change them, and a product written back keeps them.
//! `changed_position` is at least the position of the latest event that changed the document
//! (product or review statistics): query-api's in-memory list index reads what changed after
//! the position it reflects by it.

use anyhow::Context as _;
use mongodb::{
    Collection, IndexModel,
    bson::{self, Document, doc},
    options::IndexOptions,
};
use serde_json::Value;
use shared::{
    EventEnvelope,
    events::{EventCatalog, ProductCreated, ProductEvent},
    read_model::{
        self, HistoryActor, HistoryChange, HistoryDoc, ProductDoc, RatingStats, history_fields,
        product_fields,
    },
};

use super::{Fold, Model, Store, guard};

pub const MODEL: Model = Model {
    aggregate_type: "product",
    collection: PRODUCTS,
    fold,
};

pub use shared::read_model::{PRODUCT_HISTORY as HISTORY, PRODUCTS};

fn products(db: &Store) -> Collection<Document> {
    db.collection(PRODUCTS)
}

fn history(db: &Store) -> Collection<Document> {
    db.collection(HISTORY)
}

pub async fn ensure_indexes(db: &Store) -> anyhow::Result<()> {
    use product_fields::{
        BRAND_KEY, CHANGED_POSITION, CREATED_POSITION, DELETED, ID, NAME_SORT, PRICE_CENTS,
        RATING_SORT,
    };
    let index = |keys: Document| IndexModel::builder().keys(keys).build();
    products(db)
        .create_indexes([
            // Ascending keys throughout: MongoDB walks an index backwards for a descending
            // sort just as well.
            index(doc! { DELETED: 1, CREATED_POSITION: 1 }),
            index(doc! { DELETED: 1, BRAND_KEY: 1, CREATED_POSITION: 1 }),
            index(doc! { DELETED: 1, PRICE_CENTS: 1, ID: 1 }),
            index(doc! { DELETED: 1, NAME_SORT: 1, ID: 1 }),
            index(doc! { DELETED: 1, RATING_SORT: 1, ID: 1 }),
            // What changed after a position (query-api's list index catches up by it).
            index(doc! { CHANGED_POSITION: 1 }),
        ])
        .await?;
    history(db)
        .create_index(
            IndexModel::builder()
                .keys(doc! { history_fields::SKU: 1, history_fields::VERSION: 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await?;
    Ok(())
}

fn fold(current: Option<&Document>, envelope: &EventEnvelope) -> anyhow::Result<Fold> {
    if let Some(not_now) = guard(current, envelope.aggregate_version) {
        return Ok(not_now);
    }
    let at = read_model::date(envelope.occurred_at);
    let stored = super::stored::<ProductDoc>(current, "product")?;
    let mut product = match (stored, envelope.decode::<ProductEvent>()?) {
        (None, ProductEvent::ProductCreated(created)) => new_product(envelope, created)?,
        (Some(mut product), ProductEvent::ProductUpdated(update)) => {
            for (field, change) in &update.changes {
                set_field(&mut product, field, &change.after)?;
            }
            derive_keys(&mut product)?;
            product
        }
        (Some(mut product), ProductEvent::ProductDeleted(_)) => {
            product.deleted = true;
            product
        }
        (_, event) => anyhow::bail!(
            "{} at version {} does not fit the product",
            event.event_type(),
            envelope.aggregate_version
        ),
    };
    product.updated_at = at;
    product.version = envelope.aggregate_version;
    // Never lowered: the review statistics may have raised it past this event.
    product.changed_position = product.changed_position.max(envelope.position);
    Fold::next(&product)
}

/// A product as `ProductCreated` makes it: no reviews yet.
fn new_product(envelope: &EventEnvelope, created: ProductCreated) -> anyhow::Result<ProductDoc> {
    let at = read_model::date(envelope.occurred_at);
    let mut product = ProductDoc {
        sku: envelope.aggregate_id.to_string(),
        name: created.name,
        brand: created.brand,
        price: created.price,
        currency: created.currency,
        description: created.description,
        specs: created.specs.into_iter().collect(),
        // Derived below.
        price_cents: 0,
        brand_key: String::new(),
        name_sort: String::new(),
        search_text: String::new(),
        stats: RatingStats::default(),
        created_position: envelope.position,
        created_at: at,
        updated_at: at,
        version: envelope.aggregate_version,
        changed_position: envelope.position,
        deleted: false,
        stats_version: None,
    };
    derive_keys(&mut product)?;
    Ok(product)
}

/// Sets the field a `ProductUpdated` change names (changes are keyed by the field names an
/// admin can change); a change of anything else is not kept in the catalog.
fn set_field(product: &mut ProductDoc, field: &str, after: &Value) -> anyhow::Result<()> {
    use product_fields::{BRAND, CURRENCY, DESCRIPTION, NAME, PRICE, SPECS};
    let text = || {
        serde_json::from_value::<String>(after.clone())
            .with_context(|| format!("{field} changed to {after}, not text"))
    };
    match field {
        NAME => product.name = text()?,
        BRAND => product.brand = text()?,
        PRICE => product.price = text()?,
        CURRENCY => product.currency = text()?,
        DESCRIPTION => product.description = text()?,
        SPECS => {
            product.specs = serde_json::from_value(after.clone())
                .with_context(|| format!("{field} changed to {after}, not a map of text"))?;
        }
        _ => {}
    }
    Ok(())
}

/// After the product documents: their history entries, and the review statistics of new
/// products (their reviews may have been projected first; instances race across aggregates).
pub async fn follow_up(db: &Store, events: &[&EventEnvelope]) -> anyhow::Result<()> {
    let mut entries = Vec::with_capacity(events.len());
    let mut created = std::collections::BTreeMap::new();
    for envelope in events {
        let event = envelope.decode::<ProductEvent>()?;
        if matches!(event, ProductEvent::ProductCreated(_)) {
            created.insert(envelope.aggregate_id.to_string(), envelope.position);
        }
        entries.push(history_entry(envelope, &event)?);
    }
    super::insert_new(db, HISTORY, entries).await?;
    super::reviews::recompute_stats(db, &created).await
}

/// The query keys kept next to the fields they are derived from.
fn derive_keys(product: &mut ProductDoc) -> anyhow::Result<()> {
    product.price_cents = shared::money::cents(&product.price)
        .ok_or_else(|| anyhow::anyhow!("price {:?} is not a decimal amount", product.price))?;
    product.brand_key = product.brand.to_lowercase();
    product.name_sort = product.name.to_lowercase();
    product.search_text = search_text(&product.name, &product.brand, &product.description);
    Ok(())
}

/// What `q` searches: name, brand and description, lower-cased, one per line.
pub fn search_text(name: &str, brand: &str, description: &str) -> String {
    format!("{name}\n{brand}\n{description}").to_lowercase()
}

fn history_entry(envelope: &EventEnvelope, event: &ProductEvent) -> anyhow::Result<Document> {
    let change = |before: &Value, after: &Value| -> anyhow::Result<HistoryChange> {
        Ok(HistoryChange {
            before: bson::to_bson(before)?,
            after: bson::to_bson(after)?,
        })
    };
    let changes = match event {
        // Every field it sets, from nothing, in the event's order.
        ProductEvent::ProductCreated(created) => match serde_json::to_value(created)? {
            Value::Object(fields) => fields
                .iter()
                .map(|(field, after)| Ok((field.clone(), change(&Value::Null, after)?)))
                .collect::<anyhow::Result<_>>()?,
            _ => Default::default(),
        },
        ProductEvent::ProductUpdated(update) => update
            .changes
            .iter()
            .map(|(field, c)| Ok((field.clone(), change(&c.before, &c.after)?)))
            .collect::<anyhow::Result<_>>()?,
        ProductEvent::ProductDeleted(_) => Default::default(),
    };
    let entry = HistoryDoc {
        event_id: envelope.event_id.to_string(),
        sku: envelope.aggregate_id.to_string(),
        version: envelope.aggregate_version,
        position: envelope.position,
        event_type: envelope.event_type.clone(),
        occurred_at: read_model::date(envelope.occurred_at),
        actor: envelope.actor.as_ref().map(|actor| HistoryActor {
            id: actor.user_id.to_string(),
            role: actor.role,
        }),
        changes,
    };
    Ok(bson::to_document(&entry)?)
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{Bson, DateTime};
    use serde_json::json;
    use shared::{
        Actor, Role,
        events::{FieldChange, ProductDeleted, ProductUpdated},
    };
    use uuid::Uuid;

    use super::*;
    use crate::projections::given::{bytes, envelope, millis, next};

    const SKU: Uuid = Uuid::from_u128(0x0b5f_1c9e_7d43_4a59_9c55_2f3a_1e7b_9d10);

    fn at(version: i64) -> DateTime {
        DateTime::from_millis(millis(version))
    }

    fn created() -> ProductEvent {
        ProductEvent::ProductCreated(ProductCreated {
            name: "Q3".into(),
            brand: "Leica".into(),
            price: "5995.00".into(),
            currency: "USD".into(),
            description: "Full-frame compact".into(),
            specs: [("sensor", "60 MP"), ("lens", "28 mm")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
        })
    }

    /// The product as the projector stored it before it had types, after `ProductCreated`.
    fn stored_new() -> Document {
        doc! {
            "_id": SKU.to_string(), "name": "Q3", "brand": "Leica", "price": "5995.00",
            "currency": "USD", "description": "Full-frame compact",
            "specs": { "lens": "28 mm", "sensor": "60 MP" }, "price_cents": 599_500_i64,
            "brand_key": "leica", "name_sort": "q3", "search_text": "q3\nleica\nfull-frame compact",
            "review_count": 0_i64, "rating_sum": 0_i64, "rating_avg": Bson::Null,
            "rating_sort": -1.0, "created_position": 101_i64, "created_at": at(1),
            "updated_at": at(1), "version": 1_i64, "changed_position": 101_i64, "deleted": false,
        }
    }

    #[test]
    fn a_created_product_is_stored_as_before() {
        let product = next(fold(None, &envelope(SKU, 1, &created())));
        assert_eq!(bytes(&product), bytes(&stored_new()));
    }

    #[test]
    fn an_update_changes_its_fields_and_keys_in_place_and_keeps_the_statistics() {
        let mut stored = stored_new();
        stored.extend(doc! {
            "review_count": 2_i64, "rating_sum": 9_i64, "rating_avg": 4.5, "rating_sort": 4.5,
            "stats_version": 3_i64,
        });
        let change = |before, after| FieldChange { before, after };
        let update = ProductEvent::ProductUpdated(ProductUpdated {
            changes: [
                (
                    "name".to_owned(),
                    change(json!("Q3"), json!("Q3 Monochrom")),
                ),
                // The event store's order (shorter keys first), not alphabetical.
                (
                    "specs".to_owned(),
                    change(json!({}), json!({ "iso": "100", "autofocus": "hybrid" })),
                ),
            ]
            .into(),
        });
        let product = next(fold(Some(&stored), &envelope(SKU, 2, &update)));
        let mut expected = stored.clone();
        expected.extend(doc! {
            "name": "Q3 Monochrom", "specs": { "iso": "100", "autofocus": "hybrid" },
            "name_sort": "q3 monochrom", "search_text": "q3 monochrom\nleica\nfull-frame compact",
            "updated_at": at(2), "version": 2_i64, "changed_position": 102_i64,
        });
        assert_eq!(bytes(&product), bytes(&expected));

        let deleted = ProductEvent::ProductDeleted(ProductDeleted {});
        let tombstone = next(fold(Some(&product), &envelope(SKU, 3, &deleted)));
        expected.extend(doc! {
            "updated_at": at(3), "version": 3_i64, "changed_position": 103_i64, "deleted": true,
        });
        assert_eq!(bytes(&tombstone), bytes(&expected));
    }

    #[test]
    fn a_stored_product_that_does_not_fit_fails_its_next_event_naming_the_field() {
        let mut stored = stored_new();
        stored.insert("price", 12.5);
        let deleted = ProductEvent::ProductDeleted(ProductDeleted {});
        let error = fold(Some(&stored), &envelope(SKU, 2, &deleted)).unwrap_err();
        assert!(format!("{error:#}").contains("price: "), "{error:#}");
    }

    #[test]
    fn history_entries_are_stored_as_before() {
        let user = Uuid::from_u128(7);
        let mut creation = envelope(SKU, 1, &created());
        creation.actor = Some(Actor {
            user_id: user,
            role: Role::Admin,
        });
        let entry = history_entry(&creation, &created()).unwrap();
        let from_nothing = |after: Bson| doc! { "before": Bson::Null, "after": after };
        let expected = doc! {
            "_id": creation.event_id.to_string(), "sku": SKU.to_string(), "version": 1_i64,
            "position": 101_i64, "event_type": "ProductCreated", "occurred_at": at(1),
            "actor": { "id": user.to_string(), "role": "admin" },
            "changes": {
                "name": from_nothing("Q3".into()), "brand": from_nothing("Leica".into()),
                "price": from_nothing("5995.00".into()), "currency": from_nothing("USD".into()),
                "description": from_nothing("Full-frame compact".into()),
                "specs": from_nothing(doc! { "lens": "28 mm", "sensor": "60 MP" }.into()),
            },
        };
        assert_eq!(bytes(&entry), bytes(&expected));

        let deletion = envelope(SKU, 2, &ProductEvent::ProductDeleted(ProductDeleted {}));
        let entry = history_entry(&deletion, &deletion.decode().unwrap()).unwrap();
        let expected = doc! {
            "_id": deletion.event_id.to_string(), "sku": SKU.to_string(), "version": 2_i64,
            "position": 102_i64, "event_type": "ProductDeleted", "occurred_at": at(2),
            "actor": Bson::Null, "changes": {},
        };
        assert_eq!(bytes(&entry), bytes(&expected));
    }
}
