//! `reviews` (one document per review, with its images) and `images` (image metadata by image
//! id, for serving the bytes from the blob store).

use mongodb::bson::DateTime;
use serde::{Deserialize, Serialize};

/// The names filters, sorts, indexes and updates of `reviews` use.
pub mod review_fields {
    pub use super::super::{DELETED, ID, VERSION};

    pub const PRODUCT_SKU: &str = "product_sku";
    pub const AUTHOR_ID: &str = "author_id";
    pub const REGION: &str = "region";
    pub const SEARCH_TEXT: &str = "search_text";
    pub const RATING: &str = "rating";
    pub const CREATED_POSITION: &str = "created_position";
    /// The ids of the images a review lists.
    pub const IMAGE_IDS: &str = "images.image_id";
}

/// The names filters, indexes and updates of `images` use.
pub mod image_fields {
    pub use super::super::ID;

    pub const REVIEW_ID: &str = "review_id";
    pub const REMOVED: &str = "removed";
}

/// A review, stored in this order. A deleted review stays as a tombstone (`deleted: true`).
/// `search_text` is what `q` searches (title and body, lower-cased); `created_position` orders
/// the newest first; `position` is that of the last event applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub product_sku: String,
    pub author_id: String,
    pub region: String,
    pub search_text: String,
    pub title: String,
    pub body: String,
    /// 1 to 5.
    pub rating: i64,
    #[serde(default)]
    pub images: Vec<ReviewImage>,
    pub created_position: i64,
    pub created_at: DateTime,
    pub updated_at: DateTime,
    pub position: i64,
    pub version: i64,
    pub deleted: bool,
}

/// An image of a review: metadata only, the bytes are in the blob store under `sha256`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewImage {
    pub image_id: String,
    pub sha256: String,
    pub content_type: String,
    pub bytes: i64,
    pub width: i64,
    pub height: i64,
}

/// An image by id, in `images`: served while `removed` is false and a review that is not
/// deleted lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageDoc {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(flatten)]
    pub image: ReviewImage,
    pub review_id: String,
    pub removed: bool,
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{self, Document, doc};

    use super::*;
    use crate::read_model::decode;

    const IMAGE: &str = "5a0d8c1e-2b7f-4e61-8a3c-9f4e2d1b7c60";

    fn image() -> Document {
        doc! {
            "image_id": IMAGE, "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "content_type": "image/jpeg", "bytes": 48_213_i64, "width": 1200_i64, "height": 800_i64,
        }
    }

    /// A review as the projector has stored it since reviews were first projected.
    fn stored() -> Document {
        let at = DateTime::from_millis(1_763_700_000_123);
        doc! {
            "_id": "c1d2e3f4-0000-4000-8000-000000000001",
            "product_sku": "0b5f1c9e-7d43-4a59-9c55-2f3a1e7b9d10",
            "author_id": "a0000000-0000-4000-8000-000000000002", "region": "eu",
            "search_text": "sharp\ngood lens.", "title": "Sharp", "body": "Good lens.",
            "rating": 5_i64, "images": [image()], "created_position": 50_i64, "created_at": at,
            "updated_at": at, "position": 51_i64, "version": 2_i64, "deleted": false,
        }
    }

    fn bytes(document: &Document) -> Vec<u8> {
        bson::to_vec(document).unwrap()
    }

    #[test]
    fn a_review_round_trips_to_the_same_bytes() {
        let document = stored();
        let review: ReviewDoc = decode(document.clone()).unwrap();
        assert_eq!(
            bytes(&bson::to_document(&review).unwrap()),
            bytes(&document)
        );
        assert_eq!(
            bson::from_slice::<ReviewDoc>(&bytes(&document)).unwrap(),
            review
        );
    }

    #[test]
    fn an_image_round_trips_to_the_same_bytes() {
        let mut document = doc! { "_id": IMAGE };
        document.extend(image());
        document
            .extend(doc! { "review_id": "c1d2e3f4-0000-4000-8000-000000000001", "removed": false });
        let image: ImageDoc = decode(document.clone()).unwrap();
        assert_eq!(bytes(&bson::to_document(&image).unwrap()), bytes(&document));
        assert_eq!(
            bson::from_slice::<ImageDoc>(&bytes(&document)).unwrap(),
            image
        );
    }

    #[test]
    fn every_field_name_is_a_stored_field() {
        use review_fields::*;
        let review: ReviewDoc = decode(stored()).unwrap();
        let written = bson::to_document(&review).unwrap();
        for name in [
            ID,
            VERSION,
            DELETED,
            PRODUCT_SKU,
            AUTHOR_ID,
            REGION,
            SEARCH_TEXT,
            RATING,
            CREATED_POSITION,
        ] {
            assert!(written.contains_key(name), "{name}");
        }
        let (list, id) = IMAGE_IDS.split_once('.').unwrap();
        let listed = &written.get_array(list).unwrap()[0];
        assert!(listed.as_document().unwrap().contains_key(id));
        let image: ImageDoc = decode(doc! {
            "_id": IMAGE, "image_id": IMAGE, "sha256": "x", "content_type": "image/png",
            "bytes": 1_i64, "width": 1_i64, "height": 1_i64, "review_id": "r", "removed": true,
        })
        .unwrap();
        let written = bson::to_document(&image).unwrap();
        for name in [
            image_fields::ID,
            image_fields::REVIEW_ID,
            image_fields::REMOVED,
        ] {
            assert!(written.contains_key(name), "{name}");
        }
    }
}
