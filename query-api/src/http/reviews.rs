//! Reviews (list with filters and sorts, one by id, a product's reviews) and their images.

use std::collections::HashMap;

use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use serde::Serialize;
use serde_json::Value;
use shared::{
    ApiError,
    cursor::Scope,
    http::QueryParams,
    openapi::{
        NotFound,
        ids::{IMAGE, REVIEW, SKU, USER},
    },
    read_model::{
        self, ImageDoc, ReviewDoc, ReviewImage, image_fields, review_fields, user_fields,
    },
};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr,
        schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type},
    },
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    Depends, Page, Paging, QueryState, ReadYourWrites, Reader,
    keyset::{Key, Order},
    products::{escape_regex, plain_text, rfc3339},
    read_through, to_json,
};

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
        .routes(routes!(of_product))
        .routes(routes!(image))
}

/// A review as readers see it.
#[derive(Serialize, ToSchema)]
#[schema(as = Review)]
struct ReviewView<'a> {
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

/// An image's bytes, as stored.
struct ImageBytes;

impl PartialSchema for ImageBytes {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for ImageBytes {}

const NEWEST: Order = Order {
    field: review_fields::CREATED_POSITION,
    key: Key::Int,
    ascending: false,
    tiebreak: None,
};

const BEST_RATED: Order = Order {
    field: review_fields::RATING,
    key: Key::Int,
    ascending: false,
    tiebreak: Some((review_fields::CREATED_POSITION, Key::Int)),
};

fn uuid(raw: &str) -> Result<String, String> {
    Uuid::parse_str(raw)
        .map(|id| id.to_string())
        .map_err(|_| "must be a UUID".to_owned())
}

/// Browse reviews
#[utoipa::path(
    get,
    path = "/api/v1/reviews",
    description = "Who may call it: anyone.",
    params(
        ("product_sku" = Option<uuid::Uuid>, Query, description = "of one product", example = json!(SKU)),
        ("author_id" = Option<uuid::Uuid>, Query, description = "by one author", example = json!(USER)),
        ("region" = Option<String>, Query, max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$", description = "from one region", example = "south-america"),
        ("min_rating" = Option<i64>, Query, minimum = 1, maximum = 5, description = "at least this rating (1 to 5)", example = 4),
        ("q" = Option<String>, Query, max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$", description = "words in the title or body (matched literally)", example = "lens"),
        ("sort" = Option<String>, Query, pattern = "^(newest|rating)$", description = "newest (default) or rating", example = "newest"),
        Paging, ReadYourWrites,
    ),
    responses(
        (status = 200, description = "a page of reviews (ETag, Cache-Control)", body = Page<ReviewView>),
        (status = 304, description = "not modified (If-None-Match)"),
    )
)]
async fn list(
    State(state): State<QueryState>,
    reader: Reader,
    headers: HeaderMap,
    params: QueryParams,
) -> Result<Response, ApiError> {
    let params = params.only(&[
        "limit",
        "cursor",
        "product_sku",
        "author_id",
        "region",
        "min_rating",
        "q",
        "sort",
    ])?;
    let (order, sort) = match params.get("sort").unwrap_or("newest") {
        "newest" => (NEWEST, "newest"),
        "rating" => (BEST_RATED, "rating"),
        _ => {
            return Err(ApiError::InvalidParameter(
                "sort: must be newest or rating".into(),
            ));
        }
    };
    let mut filter = doc! { review_fields::DELETED: false };
    let mut scope = Scope::new("reviews").with("sort", sort);
    for (name, field) in [
        ("product_sku", review_fields::PRODUCT_SKU),
        ("author_id", review_fields::AUTHOR_ID),
    ] {
        if let Some(id) = params.parsed(name, uuid)? {
            scope = scope.with(name, &id);
            filter.insert(field, id);
        }
    }
    if let Some(region) = params
        .parsed("region", plain_text)?
        .filter(|r| !r.is_empty())
    {
        scope = scope.with("region", &region);
        filter.insert(review_fields::REGION, region);
    }
    let min_rating = params.parsed("min_rating", |raw| match raw.parse::<i64>() {
        Ok(n) if (1..=5).contains(&n) => Ok(n),
        _ => Err("must be a whole number from 1 to 5".to_owned()),
    })?;
    if let Some(min) = min_rating {
        scope = scope.with("min_rating", min);
        filter.insert(review_fields::RATING, doc! { "$gte": min });
    }
    if let Some(q) = params.parsed("q", plain_text)?.filter(|q| !q.is_empty()) {
        scope = scope.with("q", &q);
        filter.insert(
            review_fields::SEARCH_TEXT,
            mongodb::bson::Regex {
                pattern: escape_regex(&q),
                options: String::new(),
            },
        );
    }
    let key = format!("reviews?{}", params.canonical());
    page(
        &state, &reader, &headers, &params, order, scope, filter, key,
    )
    .await
}

/// A product's reviews
#[utoipa::path(
    get,
    path = "/api/v1/products/{sku}/reviews",
    description = "Who may call it: anyone.",
    params(
        ("sku" = String, Path, description = "the product (a UUID)", example = json!(SKU)),
        Paging, ReadYourWrites,
    ),
    responses(
        (status = 200, description = "a page of reviews, newest first (ETag, Cache-Control)", body = Page<ReviewView>),
        (status = 304, description = "not modified (If-None-Match)"),
        (status = 404, response = inline(NotFound)),
    )
)]
async fn of_product(
    State(state): State<QueryState>,
    reader: Reader,
    headers: HeaderMap,
    Path(sku): Path<String>,
    params: QueryParams,
) -> Result<Response, ApiError> {
    let params = params.only(&["limit", "cursor"])?;
    let sku = Uuid::parse_str(&sku)
        .map_err(|_| ApiError::NotFound("product"))?
        .to_string();
    let scope = Scope::new("product_reviews").with("sku", &sku);
    let filter = doc! { review_fields::DELETED: false, review_fields::PRODUCT_SKU: &sku };
    let key = format!("product-reviews:{sku}?{}", params.canonical());
    page(
        &state, &reader, &headers, &params, NEWEST, scope, filter, key,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn page(
    state: &QueryState,
    reader: &Reader,
    headers: &HeaderMap,
    params: &QueryParams,
    order: Order,
    scope: Scope,
    filter: Document,
    cache_key: String,
) -> Result<Response, ApiError> {
    let limit = params.limit()?;
    let filter = order.resume(filter, &scope, params.get("cursor"))?;
    let page = read_through(
        state,
        headers,
        cache_key,
        "listing",
        Depends::Reviews,
        async {
            let reviews = state.collection(read_model::REVIEWS).await?;
            let page = order
                .fetch(
                    &reviews.clone_with_type::<ReviewDoc>(),
                    filter,
                    &scope,
                    limit,
                )
                .await?;
            let names = display_names(state, &page.documents).await?;
            let items: Vec<ReviewView> = page
                .documents
                .iter()
                .map(|r| review_view(r, &names))
                .collect();
            Ok(Some(to_json(Page {
                items,
                next_cursor: page.next_cursor,
            })))
        },
    )
    .await?;
    Ok(page.respond(headers, reader.0.is_none()))
}

/// One review
#[utoipa::path(
    get,
    path = "/api/v1/reviews/{id}",
    description = "Who may call it: anyone.",
    params(
        ("id" = String, Path, description = "the review (a UUID)", example = json!(REVIEW)),
        ReadYourWrites,
    ),
    responses(
        (status = 200, description = "the review (ETag, Cache-Control)", body = ReviewView),
        (status = 304, description = "not modified (If-None-Match)"),
        (status = 404, response = inline(NotFound)),
    )
)]
async fn one(
    State(state): State<QueryState>,
    reader: Reader,
    headers: HeaderMap,
    Path(id): Path<String>,
    params: QueryParams,
) -> Result<Response, ApiError> {
    params.only(&[])?;
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::NotFound("review"))?
        .to_string();
    let key = format!("review:{id}");
    let review = read_through(&state, &headers, key, "review", Depends::Reviews, async {
        let found = state
            .collection(read_model::REVIEWS)
            .await?
            .clone_with_type::<ReviewDoc>()
            .find_one(doc! { review_fields::ID: &id, review_fields::DELETED: false })
            .await?;
        let Some(review) = found else {
            return Ok(None);
        };
        let names = display_names(&state, std::slice::from_ref(&review)).await?;
        Ok(Some(to_json(review_view(&review, &names))))
    })
    .await?;
    Ok(review.respond(&headers, reader.0.is_none()))
}

/// The authors' display names, read at answer time so a renamed author shows the new name on
/// every review at once.
async fn display_names(
    state: &QueryState,
    reviews: &[ReviewDoc],
) -> mongodb::error::Result<HashMap<String, String>> {
    use user_fields::{DISPLAY_NAME, ID};
    let mut ids: Vec<&str> = reviews.iter().map(|r| r.author_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let users: Vec<Document> = state
        .collection(read_model::USERS)
        .await?
        .find(doc! { ID: { "$in": ids } })
        .projection(doc! { DISPLAY_NAME: 1 })
        .await?
        .try_collect()
        .await?;
    Ok(users
        .into_iter()
        .filter_map(|u| {
            Some((
                u.get_str(ID).ok()?.to_owned(),
                u.get_str(DISPLAY_NAME).ok()?.to_owned(),
            ))
        })
        .collect())
}

fn review_view<'a>(review: &'a ReviewDoc, names: &'a HashMap<String, String>) -> ReviewView<'a> {
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

/// The image's bytes: content-addressed, so they never change under one id.
///
/// The bytes stream from the blob store in chunks (a 5 MB image costs a reader 64 KiB of
/// memory, not 5 MB). Query parameters are refused: `?n=1`, `?n=2`, … would each be another
/// entry in the gateway's cache for the same bytes.
/// An image's bytes
///
/// Content-addressed: cached for a year (immutable).
#[utoipa::path(
    get,
    path = "/api/v1/images/{image_id}",
    description = "Who may call it: anyone. Takes no query parameters (400).",
    params(
        ("image_id" = String, Path, description = "the image (a UUID)", example = json!(IMAGE)),
        ("If-None-Match" = Option<String>, Header, description = "the ETag you have: 304 if unchanged"),
        ReadYourWrites,
    ),
    responses(
        (status = 200, description = "the bytes (JPEG, PNG or WebP) with their content type; ETag, Cache-Control: public, max-age=31536000, immutable",
            content(
                (ImageBytes = "image/jpeg", example = "<JPEG bytes>"),
                (ImageBytes = "image/png", example = "<PNG bytes>"),
                (ImageBytes = "image/webp", example = "<WebP bytes>"),
            )),
        (status = 304, description = "not modified (If-None-Match)"),
        (status = 404, response = inline(NotFound)),
    )
)]
async fn image(
    State(state): State<QueryState>,
    headers: HeaderMap,
    params: QueryParams,
    Path(image_id): Path<String>,
) -> Result<Response, ApiError> {
    params.only(&[])?;
    let id = Uuid::parse_str(&image_id)
        .map_err(|_| ApiError::NotFound("image"))?
        .to_string();
    let meta = state
        .breaker
        .run(async {
            state
                .collection(read_model::IMAGES)
                .await?
                .clone_with_type::<ImageDoc>()
                .find_one(doc! { image_fields::ID: &id, image_fields::REMOVED: false })
                .await
        })
        .await?
        .ok_or(ApiError::NotFound("image"))?;
    // The review is the authority: an image is served while a review that is not deleted
    // lists it (the `removed` flag can lag behind when projector instances race).
    let listed = state
        .breaker
        .run(async {
            state
                .collection(read_model::REVIEWS)
                .await?
                .find_one(doc! {
                    review_fields::ID: &meta.review_id,
                    review_fields::DELETED: false,
                    review_fields::IMAGE_IDS: &id,
                })
                .await
        })
        .await?;
    if listed.is_none() {
        return Err(ApiError::NotFound("image"));
    }
    let sha256 = meta.image.sha256.as_str();
    let content_type = meta.image.content_type.as_str();
    let tag = HeaderValue::from_str(&format!("\"{sha256}\""))
        .map_err(|e| anyhow::anyhow!("a stored image has a bad key: {e}"))?;
    let caching = [
        (header::ETAG, tag.clone()),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ),
    ];
    let revalidated = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == tag)
        });
    if revalidated {
        return Ok((StatusCode::NOT_MODIFIED, caching).into_response());
    }
    let blob = state.blobs.open(sha256).await?.ok_or_else(|| {
        tracing::error!(image = %id, sha256, "an image's bytes are missing from the blob store");
        ApiError::NotFound("image")
    })?;
    let content_type = HeaderValue::from_str(content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        caching,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_LENGTH, HeaderValue::from(blob.len)),
        ],
        Body::from_stream(blob.chunks),
    )
        .into_response())
}
