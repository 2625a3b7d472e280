//! `products` (the catalog as readers see it) and `product_history` (every change, for admins).
//!
//! A product document's `_id` is its SKU and `version` the last applied aggregate version; a
//! deleted product stays as a tombstone (`deleted: true`) so a replayed `ProductCreated` cannot
//! bring it back. Besides the fields readers see, each document keeps the keys its query paths
//! use: `price_cents` (price filters and sorts), `brand_key`, `name_sort`, `search_text` (the
//! `q` search, lower-cased) and `created_position` (newest first; unique, so a stable order).
//! Review statistics (`review_count`, `rating_avg`, `rating_sort`) belong to the review
//! projection; product events never touch them.

use mongodb::{
    Collection, Database, IndexModel,
    bson::{self, Bson, Document, doc},
    options::IndexOptions,
};
use serde_json::{Value, json};
use shared::{
    EventEnvelope,
    events::{ProductCreated, ProductEvent},
};

use super::{Applied, is_duplicate_key};

pub use shared::read_model::{PRODUCT_HISTORY as HISTORY, PRODUCTS};

/// The fields an admin can change, in the order they are stored.
const FIELDS: [&str; 6] = ["name", "brand", "price", "currency", "description", "specs"];

fn products(db: &Database) -> Collection<Document> {
    db.collection(PRODUCTS)
}

fn history(db: &Database) -> Collection<Document> {
    db.collection(HISTORY)
}

pub async fn ensure_indexes(db: &Database) -> anyhow::Result<()> {
    let index = |keys: Document| IndexModel::builder().keys(keys).build();
    products(db)
        .create_indexes([
            index(doc! { "deleted": 1, "created_position": -1 }),
            index(doc! { "deleted": 1, "brand_key": 1, "created_position": -1 }),
            index(doc! { "deleted": 1, "price_cents": 1, "_id": 1 }),
            index(doc! { "deleted": 1, "name_sort": 1, "_id": 1 }),
            index(doc! { "deleted": 1, "rating_sort": -1, "_id": -1 }),
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

pub async fn apply(db: &Database, envelope: &EventEnvelope) -> anyhow::Result<Applied> {
    let sku = envelope.aggregate_id.to_string();
    let at = bson::DateTime::from_millis(envelope.occurred_at.timestamp_millis());
    let event = envelope.decode::<ProductEvent>()?;
    let applied = match &event {
        ProductEvent::ProductCreated(created) => create(db, envelope, &sku, created, at).await?,
        ProductEvent::ProductUpdated(update) => {
            let after = update
                .changes
                .iter()
                .map(|(field, change)| (field.clone(), change.after.clone()))
                .collect();
            change(db, envelope, &sku, after, at).await?
        }
        ProductEvent::ProductDeleted(_) => {
            change(db, envelope, &sku, serde_json::Map::new(), at).await?
        }
    };
    if applied == Applied::Done {
        record_history(db, envelope, &sku, &event, at).await?;
    }
    Ok(applied)
}

async fn create(
    db: &Database,
    envelope: &EventEnvelope,
    sku: &str,
    created: &ProductCreated,
    at: bson::DateTime,
) -> anyhow::Result<Applied> {
    if envelope.aggregate_version != 1 {
        anyhow::bail!(
            "ProductCreated at version {} (expected 1)",
            envelope.aggregate_version
        );
    }
    let mut document = doc! { "_id": sku };
    let fields = serde_json::to_value(created)?;
    for field in FIELDS {
        document.insert(field, bson::to_bson(&fields[field])?);
    }
    document.extend(derived(&document)?);
    document.extend(doc! {
        "review_count": 0_i64, "rating_sum": 0_i64, "rating_avg": Bson::Null, "rating_sort": -1.0,
        "created_position": envelope.position, "created_at": at, "updated_at": at,
        "version": 1_i64, "deleted": false,
    });
    match products(db).insert_one(document).await {
        Ok(_) => Ok(Applied::Done),
        Err(e) if is_duplicate_key(&e) => Ok(Applied::Done), // applied before
        Err(e) => Err(e.into()),
    }
}

/// Applies an update (`after` holds the changed fields) or, with no fields, a deletion, if the
/// document is at the version just before this event.
async fn change(
    db: &Database,
    envelope: &EventEnvelope,
    sku: &str,
    after: serde_json::Map<String, Value>,
    at: bson::DateTime,
) -> anyhow::Result<Applied> {
    let version = envelope.aggregate_version;
    let Some(current) = products(db).find_one(doc! { "_id": sku }).await? else {
        return Ok(Applied::NotYet);
    };
    match current.get_i64("version")? {
        seen if seen >= version => return Ok(Applied::Done), // a redelivery
        seen if seen < version - 1 => return Ok(Applied::NotYet),
        _ => {}
    }
    let deletion = envelope.event_type == "ProductDeleted";
    let mut set = Document::new();
    if !deletion {
        for field in FIELDS {
            if let Some(value) = after.get(field) {
                set.insert(field, bson::to_bson(value)?);
            }
        }
        let mut merged = current.clone();
        merged.extend(set.clone());
        set.extend(derived(&merged)?);
    }
    set.insert("updated_at", at);
    set.insert("version", version);
    if deletion {
        set.insert("deleted", true);
    }
    let updated = products(db)
        .update_one(
            doc! { "_id": sku, "version": version - 1 },
            doc! { "$set": set },
        )
        .await?;
    if updated.matched_count == 1 {
        return Ok(Applied::Done);
    }
    // Another projector instance applied it in between.
    let seen = products(db)
        .find_one(doc! { "_id": sku })
        .await?
        .and_then(|d| d.get_i64("version").ok())
        .unwrap_or(0);
    Ok(if seen >= version {
        Applied::Done
    } else {
        Applied::NotYet
    })
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

async fn record_history(
    db: &Database,
    envelope: &EventEnvelope,
    sku: &str,
    event: &ProductEvent,
    at: bson::DateTime,
) -> anyhow::Result<()> {
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
    let entry = doc! {
        "_id": envelope.event_id.to_string(),
        "sku": sku,
        "version": envelope.aggregate_version,
        "position": envelope.position,
        "event_type": &envelope.event_type,
        "occurred_at": at,
        "actor": actor,
        "changes": bson::to_bson(&Value::Object(changes))?,
    };
    match history(db).insert_one(entry).await {
        Ok(_) => Ok(()),
        Err(e) if is_duplicate_key(&e) => Ok(()), // recorded before
        Err(e) => Err(e.into()),
    }
}
