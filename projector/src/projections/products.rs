//! `products` (the catalog as readers see it) and `product_history` (every change, for admins).
//!
//! A product document's `_id` is its SKU and `version` the last applied aggregate version; a
//! deleted product stays as a tombstone (`deleted: true`) so a replayed `ProductCreated` cannot
//! bring it back. Besides the fields readers see, each document keeps the keys its query paths
//! use: `price_cents` (price filters and sorts), `brand_key`, `name_sort`, `search_text` (the
//! `q` search, lower-cased) and `created_position` (newest first; unique, so a stable order).
//! Review statistics (`review_count`, `rating_avg`, `rating_sort`) belong to the review
//! projection; product events never touch them. `changed_position` is at least the position of
//! the latest event that changed the document (product or review statistics): query-api's
//! in-memory list index reads what changed after the position it reflects by it.

use mongodb::{
    Collection, IndexModel,
    bson::{self, Bson, Document, doc},
    options::IndexOptions,
};
use serde_json::{Value, json};
use shared::{
    EventEnvelope,
    events::{EventCatalog, ProductEvent},
};

use super::{Fold, Model, Store, guard};

pub const MODEL: Model = Model {
    aggregate_type: "product",
    collection: PRODUCTS,
    fold,
};

use shared::read_model::CHANGED_POSITION;
pub use shared::read_model::{PRODUCT_HISTORY as HISTORY, PRODUCTS};

/// The fields an admin can change, in the order they are stored.
const FIELDS: [&str; 6] = ["name", "brand", "price", "currency", "description", "specs"];

fn products(db: &Store) -> Collection<Document> {
    db.collection(PRODUCTS)
}

fn history(db: &Store) -> Collection<Document> {
    db.collection(HISTORY)
}

pub async fn ensure_indexes(db: &Store) -> anyhow::Result<()> {
    let index = |keys: Document| IndexModel::builder().keys(keys).build();
    products(db)
        .create_indexes([
            // Ascending keys throughout: MongoDB walks an index backwards for a descending
            // sort just as well.
            index(doc! { "deleted": 1, "created_position": 1 }),
            index(doc! { "deleted": 1, "brand_key": 1, "created_position": 1 }),
            index(doc! { "deleted": 1, "price_cents": 1, "_id": 1 }),
            index(doc! { "deleted": 1, "name_sort": 1, "_id": 1 }),
            index(doc! { "deleted": 1, "rating_sort": 1, "_id": 1 }),
            // What changed after a position (query-api's list index catches up by it).
            index(doc! { CHANGED_POSITION: 1 }),
        ])
        .await?;
    history(db)
        .create_index(
            IndexModel::builder()
                .keys(doc! { "sku": 1, "version": 1 })
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
    let at = bson::DateTime::from_millis(envelope.occurred_at.timestamp_millis());
    let mut product = match (current, envelope.decode::<ProductEvent>()?) {
        (None, ProductEvent::ProductCreated(created)) => {
            let mut document = doc! { "_id": envelope.aggregate_id.to_string() };
            let fields = serde_json::to_value(&created)?;
            for field in FIELDS {
                document.insert(field, bson::to_bson(&fields[field])?);
            }
            document.extend(derived(&document)?);
            document.extend(doc! {
                "review_count": 0_i64, "rating_sum": 0_i64, "rating_avg": Bson::Null,
                "rating_sort": -1.0, "created_position": envelope.position, "created_at": at,
            });
            document
        }
        (Some(current), ProductEvent::ProductUpdated(update)) => {
            let mut document = current.clone();
            for field in FIELDS {
                if let Some(change) = update.changes.get(field) {
                    document.insert(field, bson::to_bson(&change.after)?);
                }
            }
            document.extend(derived(&document)?);
            document
        }
        (Some(current), ProductEvent::ProductDeleted(_)) => {
            let mut document = current.clone();
            document.insert("deleted", true);
            document
        }
        (_, event) => anyhow::bail!(
            "{} at version {} does not fit the product",
            event.event_type(),
            envelope.aggregate_version
        ),
    };
    product.insert("updated_at", at);
    product.insert("version", envelope.aggregate_version);
    // Never lowered: the review statistics may have raised it past this event.
    let changed = current
        .and_then(|c| c.get_i64(CHANGED_POSITION).ok())
        .unwrap_or(0)
        .max(envelope.position);
    product.insert(CHANGED_POSITION, changed);
    if !product.contains_key("deleted") {
        product.insert("deleted", false);
    }
    Ok(Fold::Next(product))
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
fn derived(fields: &Document) -> anyhow::Result<Document> {
    let text = |name: &str| fields.get_str(name).unwrap_or_default();
    let price = text("price");
    let cents = shared::money::cents(price)
        .ok_or_else(|| anyhow::anyhow!("price {price:?} is not a decimal amount"))?;
    Ok(doc! {
        "price_cents": cents,
        "brand_key": text("brand").to_lowercase(),
        "name_sort": text("name").to_lowercase(),
        "search_text": search_text(text("name"), text("brand"), text("description")),
    })
}

/// What `q` searches: name, brand and description, lower-cased, one per line.
pub fn search_text(name: &str, brand: &str, description: &str) -> String {
    format!("{name}\n{brand}\n{description}").to_lowercase()
}

fn history_entry(envelope: &EventEnvelope, event: &ProductEvent) -> anyhow::Result<Document> {
    let changes = match event {
        ProductEvent::ProductCreated(created) => {
            let fields = serde_json::to_value(created)?;
            FIELDS
                .iter()
                .map(|f| {
                    (
                        (*f).to_owned(),
                        json!({ "before": null, "after": fields[*f] }),
                    )
                })
                .collect::<serde_json::Map<_, _>>()
        }
        ProductEvent::ProductUpdated(update) => match serde_json::to_value(&update.changes)? {
            Value::Object(changes) => changes,
            _ => serde_json::Map::new(),
        },
        ProductEvent::ProductDeleted(_) => serde_json::Map::new(),
    };
    let actor = match &envelope.actor {
        Some(actor) => bson::to_bson(&json!({ "id": actor.user_id, "role": actor.role }))?,
        None => Bson::Null,
    };
    Ok(doc! {
        "_id": envelope.event_id.to_string(),
        "sku": envelope.aggregate_id.to_string(),
        "version": envelope.aggregate_version,
        "position": envelope.position,
        "event_type": &envelope.event_type,
        "occurred_at": bson::DateTime::from_millis(envelope.occurred_at.timestamp_millis()),
        "actor": actor,
        "changes": bson::to_bson(&Value::Object(changes))?,
    })
}
