//! `reviews` (one document per review, with its images: [`ReviewDoc`]), `images` (image
//! metadata by id, for serving the bytes: [`ImageDoc`]) and the per-product review statistics
//! on `products` ([`RatingStats`]).
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
    bson::{self, Document, doc},
};
use shared::{
    EventEnvelope,
    events::{EventCatalog, ImageMeta, ReviewEvent},
    read_model::{
        self, IMAGES, ImageDoc, PRODUCTS, REVIEWS, RatingStats, ReviewDoc, ReviewImage,
        image_fields, product_fields, review_fields,
    },
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
    use review_fields::{AUTHOR_ID, CREATED_POSITION, DELETED, PRODUCT_SKU, RATING, REGION};
    let index = |keys: Document| IndexModel::builder().keys(keys).build();
    reviews(db)
        .create_indexes([
            // Ascending keys: MongoDB walks them backwards for the descending sorts.
            index(doc! { DELETED: 1, CREATED_POSITION: 1 }),
            index(doc! { DELETED: 1, PRODUCT_SKU: 1, CREATED_POSITION: 1 }),
            index(doc! { DELETED: 1, AUTHOR_ID: 1, CREATED_POSITION: 1 }),
            index(doc! { DELETED: 1, REGION: 1, CREATED_POSITION: 1 }),
            index(doc! { DELETED: 1, RATING: 1, CREATED_POSITION: 1 }),
            // The statistics read every review of a product.
            index(doc! { PRODUCT_SKU: 1 }),
        ])
        .await?;
    images(db)
        .create_index(index(doc! { image_fields::REVIEW_ID: 1 }))
        .await?;
    Ok(())
}

fn fold(current: Option<&Document>, envelope: &EventEnvelope) -> anyhow::Result<Fold> {
    let version = envelope.aggregate_version;
    if let Some(not_now) = guard(current, version) {
        return Ok(not_now);
    }
    let at = read_model::date(envelope.occurred_at);
    let position = envelope.position;
    let event = envelope.decode::<ReviewEvent>()?;
    let Some(mut review) = super::stored::<ReviewDoc>(current, "review")? else {
        let ReviewEvent::ReviewPublished {
            product_sku,
            author_id,
            region,
            title,
            body,
            rating,
        } = event
        else {
            anyhow::bail!(
                "{} at version {version} before the review was published",
                event.event_type()
            );
        };
        return Fold::next(&ReviewDoc {
            id: envelope.aggregate_id.to_string(),
            product_sku: product_sku.to_string(),
            author_id: author_id.to_string(),
            region,
            search_text: search_text(&title, &body),
            title,
            body,
            rating: i64::from(rating),
            images: Vec::new(),
            created_position: position,
            created_at: at,
            updated_at: at,
            position,
            version,
            deleted: false,
        });
    };
    match event {
        ReviewEvent::ReviewPublished { .. } => {
            anyhow::bail!("ReviewPublished at version {version}")
        }
        ReviewEvent::ReviewEdited {
            title,
            body,
            rating,
        } => {
            if let Some(title) = title {
                review.title = title;
            }
            if let Some(body) = body {
                review.body = body;
            }
            if let Some(rating) = rating {
                review.rating = i64::from(rating);
            }
            review.search_text = search_text(&review.title, &review.body);
        }
        ReviewEvent::ReviewImageAttached(image) => review.images.push(review_image(&image)),
        ReviewEvent::ReviewImageRemoved { image_id } => {
            let id = image_id.to_string();
            review.images.retain(|image| image.image_id != id);
        }
        ReviewEvent::ReviewDeleted {} => review.deleted = true,
    }
    review.updated_at = at;
    review.position = position;
    review.version = version;
    Fold::next(&review)
}

/// After the review documents (idempotent, so it runs again on a redelivery): the image index
/// and the statistics of the products whose reviews changed.
pub async fn follow_up(db: &Store, events: &[&EventEnvelope]) -> anyhow::Result<()> {
    use image_fields::{ID, REMOVED, REVIEW_ID};
    let mut new_images = Vec::new();
    let mut image_updates = Vec::new();
    // Reviews whose rating may have changed, with their latest position in the batch.
    let mut rated: BTreeMap<String, i64> = BTreeMap::new();
    for envelope in events {
        let id = envelope.aggregate_id.to_string();
        match envelope.decode::<ReviewEvent>()? {
            ReviewEvent::ReviewImageAttached(image) => {
                new_images.push(bson::to_document(&ImageDoc {
                    id: image.image_id.to_string(),
                    image: review_image(&image),
                    review_id: id,
                    removed: false,
                })?);
            }
            ReviewEvent::ReviewImageRemoved { image_id } => image_updates.push(doc! {
                "q": { ID: image_id.to_string() }, "u": { "$set": { REMOVED: true } },
            }),
            ReviewEvent::ReviewDeleted {} => {
                image_updates.push(doc! {
                    "q": { REVIEW_ID: &id }, "u": { "$set": { REMOVED: true } }, "multi": true,
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
        .find(doc! { review_fields::ID: { "$in": ids } })
        .projection(doc! { review_fields::PRODUCT_SKU: 1 })
        .await?
        .try_collect()
        .await?;
    for review in &found {
        let id = review.get_str(review_fields::ID);
        if let (Ok(id), Ok(sku)) = (id, review.get_str(review_fields::PRODUCT_SKU)) {
            let position = rated.get(id).copied().unwrap_or(0);
            let at = skus.entry(sku.to_owned()).or_default();
            *at = (*at).max(position);
        }
    }
    recompute_stats(db, &skus).await
}

fn review_image(image: &ImageMeta) -> ReviewImage {
    ReviewImage {
        image_id: image.image_id.to_string(),
        sha256: image.sha256.clone(),
        content_type: image.content_type.clone(),
        bytes: i64::try_from(image.bytes).unwrap_or(i64::MAX),
        width: i64::from(image.width),
        height: i64::from(image.height),
    }
}

/// What `q` searches in a review: title and body, lower-cased.
pub fn search_text(title: &str, body: &str) -> String {
    format!("{title}\n{body}").to_lowercase()
}

/// Sets each product's [`RatingStats`] from its reviews that are not deleted, and raises its
/// `changed_position` to the position given with its SKU: that of the latest event of this
/// batch that changed the statistics (never lowered, so the field ends at the latest event
/// that touched the product, however the events were batched).
pub async fn recompute_stats(db: &Store, positions: &BTreeMap<String, i64>) -> anyhow::Result<()> {
    use product_fields::{CHANGED_POSITION, STATS_VERSION};
    use review_fields::{DELETED, PRODUCT_SKU, RATING, VERSION};
    let skus: Vec<&String> = positions.keys().collect();
    if skus.is_empty() {
        return Ok(());
    }
    let all: Vec<Document> = reviews(db)
        .find(doc! { PRODUCT_SKU: { "$in": skus } })
        .projection(doc! { PRODUCT_SKU: 1, RATING: 1, DELETED: 1, VERSION: 1 })
        .await?
        .try_collect()
        .await?;
    // sku → (review events included, count, sum)
    let mut stats: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    for review in &all {
        let Ok(sku) = review.get_str(PRODUCT_SKU) else {
            continue;
        };
        let entry = stats.entry(sku).or_default();
        entry.0 += review.get_i64(VERSION).unwrap_or(0);
        if !review.get_bool(DELETED).unwrap_or(false) {
            entry.1 += 1;
            entry.2 += review.get_i64(RATING).unwrap_or(0);
        }
    }
    let mut statements = Vec::with_capacity(stats.len());
    for (sku, (included, count, sum)) in stats {
        let position = positions.get(sku).copied().unwrap_or(0);
        let mut set = bson::to_document(&RatingStats::of(count, sum))?;
        set.insert(STATS_VERSION, included);
        statements.push(doc! {
            "q": { product_fields::ID: sku, "$or": [
                { STATS_VERSION: { "$exists": false } },
                { STATS_VERSION: { "$lt": included } },
            ] },
            "u": { "$set": set, "$max": { CHANGED_POSITION: position } },
        });
    }
    super::update_all(db, PRODUCTS, statements).await
}

#[cfg(test)]
mod tests {
    use mongodb::bson::DateTime;
    use uuid::Uuid;

    use super::*;
    use crate::projections::given::{bytes, envelope, millis, next};

    const REVIEW: Uuid = Uuid::from_u128(0xc1d2_e3f4_0000_4000_8000_0000_0000_0001);
    const IMAGE: Uuid = Uuid::from_u128(0x5a0d_8c1e_2b7f_4e61_8a3c_9f4e_2d1b_7c60);

    fn at(version: i64) -> DateTime {
        DateTime::from_millis(millis(version))
    }

    fn image() -> ImageMeta {
        ImageMeta {
            image_id: IMAGE,
            sha256: "9f86d081".into(),
            content_type: "image/jpeg".into(),
            bytes: 48_213,
            width: 1200,
            height: 800,
        }
    }

    fn stored_image() -> Document {
        doc! {
            "image_id": IMAGE.to_string(), "sha256": "9f86d081", "content_type": "image/jpeg",
            "bytes": 48_213_i64, "width": 1200_i64, "height": 800_i64,
        }
    }

    #[test]
    fn a_review_s_events_are_stored_as_before() {
        let (sku, author) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let published = ReviewEvent::ReviewPublished {
            product_sku: sku,
            author_id: author,
            region: "eu".into(),
            title: "Sharp".into(),
            body: "Good lens.".into(),
            rating: 4,
        };
        let review = next(fold(None, &envelope(REVIEW, 1, &published)));
        let mut expected = doc! {
            "_id": REVIEW.to_string(), "product_sku": sku.to_string(),
            "author_id": author.to_string(), "region": "eu", "search_text": "sharp\ngood lens.",
            "title": "Sharp", "body": "Good lens.", "rating": 4_i64, "images": [],
            "created_position": 101_i64, "created_at": at(1), "updated_at": at(1),
            "position": 101_i64, "version": 1_i64, "deleted": false,
        };
        assert_eq!(bytes(&review), bytes(&expected));

        let attached = ReviewEvent::ReviewImageAttached(image());
        let review = next(fold(Some(&review), &envelope(REVIEW, 2, &attached)));
        expected.extend(doc! {
            "images": [stored_image()], "updated_at": at(2), "position": 102_i64, "version": 2_i64,
        });
        assert_eq!(bytes(&review), bytes(&expected));

        let edited = ReviewEvent::ReviewEdited {
            title: Some("Very sharp".into()),
            body: None,
            rating: Some(5),
        };
        let review = next(fold(Some(&review), &envelope(REVIEW, 3, &edited)));
        expected.extend(doc! {
            "search_text": "very sharp\ngood lens.", "title": "Very sharp", "rating": 5_i64,
            "updated_at": at(3), "position": 103_i64, "version": 3_i64,
        });
        assert_eq!(bytes(&review), bytes(&expected));

        let removed = ReviewEvent::ReviewImageRemoved { image_id: IMAGE };
        let review = next(fold(Some(&review), &envelope(REVIEW, 4, &removed)));
        let deleted = ReviewEvent::ReviewDeleted {};
        let review = next(fold(Some(&review), &envelope(REVIEW, 5, &deleted)));
        expected.extend(doc! {
            "images": [], "updated_at": at(5), "position": 105_i64, "version": 5_i64,
            "deleted": true,
        });
        assert_eq!(bytes(&review), bytes(&expected));
    }

    #[test]
    fn a_deletion_before_the_review_was_published_is_refused() {
        let deleted = ReviewEvent::ReviewDeleted {};
        assert!(fold(None, &envelope(REVIEW, 1, &deleted)).is_err());
    }

    #[test]
    fn an_attached_image_is_indexed_as_before() {
        let indexed = bson::to_document(&ImageDoc {
            id: IMAGE.to_string(),
            image: review_image(&image()),
            review_id: REVIEW.to_string(),
            removed: false,
        })
        .unwrap();
        let mut expected = doc! { "_id": IMAGE.to_string() };
        expected.extend(stored_image());
        expected.extend(doc! { "review_id": REVIEW.to_string(), "removed": false });
        assert_eq!(bytes(&indexed), bytes(&expected));
    }
}
