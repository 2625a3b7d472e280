//! What the review reads answer: a review, its author and its images, as readers see them.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use shared::{
    openapi::ids::{IMAGE, REVIEW, SKU, USER},
    read_model::{ReviewDoc, ReviewImage},
};
use utoipa::ToSchema;

use crate::http::timestamps::rfc3339;

/// A review as readers see it.
#[derive(Serialize, ToSchema)]
#[schema(as = Review)]
pub(super) struct ReviewView<'a> {
    #[schema(value_type = uuid::Uuid, example = json!(REVIEW))]
    id: &'a str,
    #[schema(value_type = uuid::Uuid, example = json!(SKU))]
    product_sku: &'a str,
    author: Author<'a>,
    #[schema(example = "Sharp and small")]
    title: &'a str,
    #[schema(example = "The lens is superb.")]
    body: &'a str,
    /// 1 to 5.
    #[schema(minimum = 1, maximum = 5, example = 5)]
    rating: i64,
    /// The author's region when they wrote it.
    #[schema(example = "south-america")]
    region: &'a str,
    images: Vec<ImageView<'a>>,
    #[schema(example = 2)]
    version: i64,
    #[schema(value_type = chrono::DateTime<chrono::Utc>, example = "2026-11-20T18:00:00.000Z")]
    created_at: Value,
    #[schema(value_type = chrono::DateTime<chrono::Utc>, example = "2026-11-21T08:00:00.000Z")]
    updated_at: Value,
}

#[derive(Serialize, ToSchema)]
struct Author<'a> {
    #[schema(value_type = uuid::Uuid, example = json!(USER))]
    id: &'a str,
    /// Their name now; null once the account is erased.
    #[schema(example = "Ana")]
    display_name: Option<&'a String>,
}

/// An image of a review (its bytes at `url`).
#[derive(Serialize, ToSchema)]
#[schema(as = Image)]
struct ImageView<'a> {
    #[schema(value_type = uuid::Uuid, example = json!(IMAGE))]
    image_id: &'a str,
    #[schema(example = "/api/v1/images/0192f5a8-3333-7c3d-9f10-3a4b5c6d7e8f")]
    url: String,
    /// `image/jpeg`, `image/png` or `image/webp`.
    #[schema(example = "image/jpeg")]
    content_type: &'a str,
    #[schema(example = 48213)]
    bytes: i64,
    #[schema(example = 1200)]
    width: i64,
    #[schema(example = 800)]
    height: i64,
}

/// The review as readers see it, with its author's display name from `names`.
pub(super) fn review_view<'a>(
    review: &'a ReviewDoc,
    names: &'a HashMap<String, String>,
) -> ReviewView<'a> {
    ReviewView {
        id: &review.id,
        product_sku: &review.product_sku,
        author: Author {
            id: &review.author_id,
            display_name: names.get(&review.author_id),
        },
        title: &review.title,
        body: &review.body,
        rating: review.rating,
        region: &review.region,
        images: review.images.iter().map(image_view).collect(),
        version: review.version,
        created_at: rfc3339(review.created_at),
        updated_at: rfc3339(review.updated_at),
    }
}

fn image_view(image: &ReviewImage) -> ImageView<'_> {
    ImageView {
        image_id: &image.image_id,
        url: format!("/api/v1/images/{}", image.image_id),
        content_type: &image.content_type,
        bytes: image.bytes,
        width: image.width,
        height: image.height,
    }
}
