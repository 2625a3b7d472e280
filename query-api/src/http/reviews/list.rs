//! Pages of reviews: all reviews (filters and sorts) and one product's, newest first.

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};
use mongodb::bson::{Document, doc};
use shared::{
    ApiError,
    cursor::Scope,
    http::QueryParams,
    openapi::{
        NotFound,
        ids::{SKU, USER},
    },
    read_model::{self, ReviewDoc, review_fields},
};
use uuid::Uuid;

use super::{
    answers::{ReviewView, review_view},
    authors::display_names,
};
use crate::http::{
    Depends, Page, Paging, QueryState, ReadYourWrites, Reader,
    keyset::{Key, Order},
    path_id, read_through,
    text_filter::{literal, plain_text},
    to_json,
};

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
pub(super) async fn list(
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
        filter.insert(review_fields::SEARCH_TEXT, literal(&q));
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
pub(super) async fn of_product(
    State(state): State<QueryState>,
    reader: Reader,
    headers: HeaderMap,
    Path(sku): Path<String>,
    params: QueryParams,
) -> Result<Response, ApiError> {
    let params = params.only(&["limit", "cursor"])?;
    let sku = path_id::parse(&sku, "product")?.to_string();
    let scope = Scope::new("product_reviews").with("sku", &sku);
    let filter = doc! { review_fields::DELETED: false, review_fields::PRODUCT_SKU: &sku };
    let key = format!("product-reviews:{sku}?{}", params.canonical());
    page(
        &state, &reader, &headers, &params, NEWEST, scope, filter, key,
    )
    .await
}

/// A page of the reviews `filter` selects, in `order`, read through the kept answers.
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
