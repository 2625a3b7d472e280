//! One product, read through the kept answers; an anonymous read counts a view.

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};
use mongodb::{Collection, bson::doc};
use serde_json::Value;
use shared::{
    ApiError,
    http::QueryParams,
    openapi::{NotFound, ids::SKU},
    read_model::{self, ProductDoc, product_fields},
};
use uuid::Uuid;

use super::{
    answers::{ProductView, product_view},
    tallies::views_of,
};
use crate::http::{Depends, QueryState, ReadYourWrites, Reader, path_id, read_through, to_json};

/// One product (an anonymous read counts a view)
#[utoipa::path(
    get,
    path = "/api/v1/products/{sku}",
    description = "Who may call it: anyone.",
    params(
        ("sku" = String, Path, description = "the product (a UUID)", example = json!(SKU)),
        ("If-None-Match" = Option<String>, Header, description = "the ETag you have: 304 if unchanged"),
        ReadYourWrites,
    ),
    responses(
        (status = 200, description = "the product (ETag, Cache-Control)", body = ProductView),
        (status = 304, description = "not modified (If-None-Match)"),
        (status = 404, response = inline(NotFound)),
    )
)]
pub(super) async fn detail(
    State(state): State<QueryState>,
    reader: Reader,
    headers: HeaderMap,
    Path(sku): Path<String>,
    params: QueryParams,
) -> Result<Response, ApiError> {
    params.only(&[])?;
    let sku = path_id::parse(&sku, "product")?;
    let key = crate::fresh::product_key(&sku);
    let product = read_through(
        &state,
        &headers,
        key,
        "product",
        Depends::Product(sku),
        load_product(&state, sku),
    )
    .await?;
    if reader.0.is_none() {
        state.views.record(sku);
    }
    // The tally moves with every anonymous view: it is read apart from the product, at most
    // once a second per product, and may lag by that much. When the store cannot say, the
    // tally kept with the product is shown.
    let sku = sku.to_string();
    let views = state
        .breaker
        .run(views_of(&state, &[&sku]))
        .await
        .ok()
        .and_then(|views| views.get(&sku).copied());
    let anonymous = reader.0.is_none();
    Ok(match views {
        Some(views) => {
            product.respond_with(&headers, anonymous, &product.kept.counted("views", views))
        }
        None => product.respond(&headers, anonymous),
    })
}

async fn products(state: &QueryState) -> mongodb::error::Result<Collection<ProductDoc>> {
    Ok(state
        .collection(read_model::PRODUCTS)
        .await?
        .clone_with_type())
}

/// The product with its tally: one read of the store when the tally is in memory.
async fn load_product(state: &QueryState, sku: Uuid) -> mongodb::error::Result<Option<Value>> {
    let sku = sku.to_string();
    let collection = products(state).await?;
    let skus = [sku.as_str()];
    // By `_id` alone, the read every MongoDB answers from its primary index; a tombstone is
    // told apart here.
    let (product, views) = tokio::try_join!(
        collection.find_one(doc! { product_fields::ID: &sku }),
        views_of(state, &skus),
    )?;
    Ok(product
        .filter(|p| !p.deleted)
        .map(|p| to_json(product_view(&p, views.get(&sku).copied().unwrap_or(0)))))
}
