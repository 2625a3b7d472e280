//! `reviews` (one document per review, with its images), `images` (image metadata by id, for
//! serving the bytes) and the per-product review statistics on `products`.
//!
//! The statistics are recomputed from the product's reviews after each review event rather
//! than incremented, so they are exact whatever is redelivered or replayed. `stats_version`,
//! the sum of the versions of the product's reviews, counts the review events a result
//! includes (each event raises it by one): it keeps a slower instance from overwriting a newer
//! result, whatever order different reviews' events were applied in.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use mongodb::{
    Collection, IndexModel,
    bson::{self, Bson, Document, doc},
};
use shared::{
    EventEnvelope,
    events::{EventCatalog, ImageMeta, ReviewEvent},
    read_model::{CHANGED_POSITION, IMAGES, PRODUCTS, REVIEWS},
};

use super::{Fold, Model, Store, guard};

pub const MODEL: Model = Model {
    aggregate_type: "review",
    collection: REVIEWS,
    fold,
};

fn reviews(db: &Store) -> Collection<Document> {
    db.collection(REVIEWS)
}

fn images(db: &Store) -> Collection<Document> {
    db.collection(IMAGES)
}

pub async fn ensure_indexes(db: &Store) -> anyhow::Result<()> {
    let index = |keys: Document| IndexModel::builder().keys(keys).build();
    reviews(db)
        .create_indexes([
            // Ascending keys: MongoDB walks them backwards for the descending sorts.
            index(doc! { "deleted": 1, "created_position": 1 }),
            index(doc! { "deleted": 1, "product_sku": 1, "created_position": 1 }),
            index(doc! { "deleted": 1, "author_id": 1, "created_position": 1 }),
            index(doc! { "deleted": 1, "region": 1, "created_position": 1 }),
            index(doc! { "deleted": 1, "rating": 1, "created_position": 1 }),
            // The statistics read every review of a product.
            index(doc! { "product_sku": 1 }),
        ])
        .await?;
    images(db)
        .create_index(index(doc! { "review_id": 1 }))
        .await?;
    Ok(())
}

fn fold(current: Option<&Document>, envelope: &EventEnvelope) -> anyhow::Result<Fold> {
    let version = envelope.aggregate_version;
    if let Some(not_now) = guard(current, version) {
        return Ok(not_now);
    }
    let at = bson::DateTime::from_millis(envelope.occurred_at.timestamp_millis());
    let position = envelope.position;
    let event = envelope.decode::<ReviewEvent>()?;
    let mut review = match (current, event) {
        (
            None,
            ReviewEvent::ReviewPublished {
                product_sku,
                author_id,
                region,
                title,
                body,
                rating,
            },
        ) => {
            return Ok(Fold::Next(doc! {
                "_id": envelope.aggregate_id.to_string(),
                "product_sku": product_sku.to_string(), "author_id": author_id.to_string(),
                "region": region, "search_text": search_text(&title, &body), "title": title,
                "body": body, "rating": i64::from(rating), "images": [],
                "created_position": position, "created_at": at, "updated_at": at,
                "position": position, "version": version, "deleted": false,
            }));
        }
        (Some(current), event) => (current.clone(), event),
        (None, event) => anyhow::bail!(
            "{} at version {version} before the review was published",
            event.event_type()
        ),
    };
    let (document, event) = &mut review;
    match event {
        ReviewEvent::ReviewPublished { .. } => {
            anyhow::bail!("ReviewPublished at version {version}")
        }
        ReviewEvent::ReviewEdited {
            title,
            body,
            rating,
        } => {
            if let Some(title) = title.take() {
                document.insert("title", title);
            }
            if let Some(body) = body.take() {
                document.insert("body", body);
            }
            if let Some(rating) = rating {
                document.insert("rating", i64::from(*rating));
            }
            let text = search_text(
                document.get_str("title").unwrap_or_default(),
                document.get_str("body").unwrap_or_default(),
            );
            document.insert("search_text", text);
        }
        ReviewEvent::ReviewImageAttached(image) => {
            let mut list = document.get_array("images").cloned().unwrap_or_default();
            list.push(Bson::Document(image_document(image)));
            document.insert("images", list);
        }
        ReviewEvent::ReviewImageRemoved { image_id } => {
            let id = image_id.to_string();
            let list: Vec<Bson> = document
                .get_array("images")
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|i| {
                    i.as_document().and_then(|d| d.get_str("image_id").ok()) != Some(id.as_str())
                })
                .collect();
            document.insert("images", list);
        }
        ReviewEvent::ReviewDeleted {} => {
            document.insert("deleted", true);
        }
    }
    document.insert("updated_at", at);
    document.insert("position", position);
    document.insert("version", version);
    Ok(Fold::Next(review.0))
}

/// After the review documents (idempotent, so it runs again on a redelivery): the image index
/// and the statistics of the products whose reviews changed.
pub async fn follow_up(db: &Store, events: &[&EventEnvelope]) -> anyhow::Result<()> {
    let mut new_images = Vec::new();
    let mut image_updates = Vec::new();
    // Reviews whose rating may have changed, with their latest position in the batch.
    let mut rated: BTreeMap<String, i64> = BTreeMap::new();
    for envelope in events {
        let id = envelope.aggregate_id.to_string();
        match envelope.decode::<ReviewEvent>()? {
            ReviewEvent::ReviewImageAttached(image) => {
                let mut document = doc! { "_id": image.image_id.to_string() };
                document.extend(image_document(&image));
                document.insert("review_id", &id);
                document.insert("removed", false);
                new_images.push(document);
            }
            ReviewEvent::ReviewImageRemoved { image_id } => image_updates.push(doc! {
                "q": { "_id": image_id.to_string() }, "u": { "$set": { "removed": true } },
            }),
            ReviewEvent::ReviewDeleted {} => {
                image_updates.push(doc! {
                    "q": { "review_id": &id }, "u": { "$set": { "removed": true } }, "multi": true,
                });
                rated.insert(id, envelope.position);
            }
            ReviewEvent::ReviewPublished { .. } | ReviewEvent::ReviewEdited { .. } => {
                rated.insert(id, envelope.position);
            }
        }
    }
    super::insert_new(db, IMAGES, new_images).await?;
    super::update_all(db, IMAGES, image_updates).await?;
    if rated.is_empty() {
        return Ok(());
    }
    let ids: Vec<&String> = rated.keys().collect();
    let mut skus: BTreeMap<String, i64> = BTreeMap::new();
    let found: Vec<Document> = reviews(db)
        .find(doc! { "_id": { "$in": ids } })
        .projection(doc! { "product_sku": 1 })
        .await?
        .try_collect()
        .await?;
    for review in &found {
        if let (Ok(id), Ok(sku)) = (review.get_str("_id"), review.get_str("product_sku")) {
            let position = rated.get(id).copied().unwrap_or(0);
            let at = skus.entry(sku.to_owned()).or_default();
            *at = (*at).max(position);
        }
    }
    recompute_stats(db, &skus).await
}

fn image_document(image: &ImageMeta) -> Document {
    doc! {
        "image_id": image.image_id.to_string(),
        "sha256": &image.sha256,
        "content_type": &image.content_type,
        "bytes": i64::try_from(image.bytes).unwrap_or(i64::MAX),
        "width": i64::from(image.width),
        "height": i64::from(image.height),
    }
}

/// What `q` searches in a review: title and body, lower-cased.
pub fn search_text(title: &str, body: &str) -> String {
    format!("{title}\n{body}").to_lowercase()
}

/// Sets each product's `review_count`, `rating_sum`, `rating_avg` and `rating_sort` from its
/// reviews that are not deleted, and raises its `changed_position` to the position given with
/// its SKU: that of the latest event of this batch that changed the statistics (never
/// lowered, so the field ends at the latest event that touched the product, however the
/// events were batched).
pub async fn recompute_stats(db: &Store, positions: &BTreeMap<String, i64>) -> anyhow::Result<()> {
    let skus: Vec<&String> = positions.keys().collect();
    if skus.is_empty() {
        return Ok(());
    }
    let all: Vec<Document> = reviews(db)
        .find(doc! { "product_sku": { "$in": skus } })
        .projection(doc! { "product_sku": 1, "rating": 1, "deleted": 1, "version": 1 })
        .await?
        .try_collect()
        .await?;
    // sku → (review events included, count, sum)
    let mut stats: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    for review in &all {
        let Ok(sku) = review.get_str("product_sku") else {
            continue;
        };
        let entry = stats.entry(sku).or_default();
        entry.0 += review.get_i64("version").unwrap_or(0);
        if !review.get_bool("deleted").unwrap_or(false) {
            entry.1 += 1;
            entry.2 += review.get_i64("rating").unwrap_or(0);
        }
    }
    let statements = stats
        .into_iter()
        .map(|(sku, (included, count, sum))| {
            let position = positions.get(sku).copied().unwrap_or(0);
            let average = (count > 0).then(|| sum as f64 / count as f64);
            doc! {
                "q": { "_id": sku, "$or": [
                    { "stats_version": { "$exists": false } },
                    { "stats_version": { "$lt": included } },
                ] },
                "u": { "$set": {
                    "review_count": count,
                    "rating_sum": sum,
                    "rating_avg": average.map_or(Bson::Null, Bson::Double),
                    "rating_sort": average.unwrap_or(-1.0),
                    "stats_version": included,
                }, "$max": { CHANGED_POSITION: position } },
            }
        })
        .collect();
    super::update_all(db, PRODUCTS, statements).await
}
