//! Browsing the catalog: a page of products, from the in-memory index or the store.

use axum::{extract::State, http::HeaderMap, response::Response};
use mongodb::bson::Document;
use serde_json::Value;
use shared::{
    ApiError,
    http::QueryParams,
    read_model::{self, ProductDoc},
};

use super::{
    answers::{ProductView, product_view},
    listing::Listing,
    tallies::views_of,
};
use crate::http::{
    Depends, Page, Paging, QueryState, ReadYourWrites, Reader, read_through, to_json,
};

/// Browse the catalog: filters, search, sorts, pages
#[utoipa::path(
    get,
    path = "/api/v1/products",
    description = "Who may call it: anyone.",
    params(
        ("brand" = Option<String>, Query, max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$", description = "exactly this brand (any case)", example = "Leica"),
        ("q" = Option<String>, Query, max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$", description = "words in the name, brand or description (matched literally)", example = "compact"),
        ("min_price" = Option<String>, Query, pattern = "^\\s*[0-9]{1,12}(\\.[0-9]{1,2})?\\s*$", description = "at least this price", example = "1000.00"),
        ("max_price" = Option<String>, Query, pattern = "^\\s*[0-9]{1,12}(\\.[0-9]{1,2})?\\s*$", description = "at most this price", example = "6000.00"),
        ("sort" = Option<String>, Query, pattern = "^(newest|price_asc|price_desc|name|rating)$", description = "newest (default), price_asc, price_desc, name or rating", example = "price_asc"),
        Paging, ReadYourWrites,
    ),
    responses(
        (status = 200, description = "a page of products (ETag, Cache-Control)", body = Page<ProductView>),
        (status = 304, description = "not modified (If-None-Match)"),
    )
)]
pub(super) async fn list(
    State(state): State<QueryState>,
    reader: Reader,
    headers: HeaderMap,
    params: QueryParams,
) -> Result<Response, ApiError> {
    let cache_key = format!("products?{}", params.canonical());
    let listing = Listing::parse(params)?;
    let filter = listing.order.resume(
        listing.filter.clone(),
        &listing.scope,
        listing.cursor.as_deref(),
    )?;
    let page = read_through(
        &state,
        &headers,
        cache_key,
        "listing",
        Depends::Products,
        async { page_of_products(&state, filter, &listing).await.map(Some) },
    )
    .await?;
    Ok(page.respond(&headers, reader.0.is_none()))
}

/// A page from the in-memory index when it has caught up with the read models; else from
/// the store's sort.
async fn page_of_products(
    state: &QueryState,
    filter: Document,
    listing: &Listing,
) -> mongodb::error::Result<Value> {
    let collections = state.collections.current().await?;
    let after: Option<Value> = listing
        .cursor
        .as_deref()
        .and_then(|c| listing.scope.decode(c).ok());
    let limit = usize::try_from(listing.limit).unwrap_or(0);
    let indexed = state
        .index
        .page(
            &collections,
            state.projection.current(),
            &listing.criteria,
            after.as_ref(),
            limit,
        )
        .await;
    let (documents, next_cursor): (Vec<ProductDoc>, _) = match indexed {
        Some((entries, more)) => {
            metrics::counter!("query_list_pages_total", "from" => "index").increment(1);
            let next_cursor = more
                .then(|| entries.last())
                .flatten()
                .map(|last| listing.scope.encode(&listing.order.key_of(&last.document)));
            let documents = entries
                .iter()
                .map(|e| read_model::decode(e.document.clone()))
                .collect::<Result<_, _>>()?;
            (documents, next_cursor)
        }
        None => {
            metrics::counter!("query_list_pages_total", "from" => "store").increment(1);
            let page = listing
                .order
                .fetch(
                    &collections.collection(&state.db, read_model::PRODUCTS),
                    filter,
                    &listing.scope,
                    listing.limit,
                )
                .await?;
            (page.documents, page.next_cursor)
        }
    };
    let skus: Vec<&str> = documents.iter().map(|d| d.sku.as_str()).collect();
    let views = views_of(state, &skus).await?;
    let items: Vec<ProductView> = documents
        .iter()
        .map(|d| product_view(d, views.get(&d.sku).copied().unwrap_or(0)))
        .collect();
    Ok(to_json(Page { items, next_cursor }))
}
