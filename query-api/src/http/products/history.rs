//! A product's history (admins): every change, oldest first, in cursor pages.

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};
use mongodb::bson::doc;
use shared::{
    ApiError, Role,
    cursor::Scope,
    http::QueryParams,
    openapi::{Forbidden, NotFound, Unauthorized, ids::SKU},
    read_model::{self, HistoryDoc, history_fields},
};

use super::answers::{HistoryEntry, history_entry};
use crate::http::{
    Page, Paging, QueryState, ReadYourWrites, Reader,
    caching::json_answer,
    keyset::{Key, Order},
    path_id, to_json,
};

/// Every change to a product
#[utoipa::path(
    get,
    path = "/api/v1/products/{sku}/history",
    description = "Who may call it: admin.",
    security(("bearer" = [])),
    params(
        ("sku" = String, Path, description = "the product (a UUID)", example = json!(SKU)),
        Paging, ReadYourWrites,
    ),
    responses(
        (status = 200, description = "the changes, oldest first", body = Page<HistoryEntry>),
        (status = 304, description = "not modified (If-None-Match)"),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, response = inline(NotFound)),
    )
)]
pub(super) async fn history(
    State(state): State<QueryState>,
    reader: Reader,
    headers: HeaderMap,
    Path(sku): Path<String>,
    params: QueryParams,
) -> Result<Response, ApiError> {
    reader.require(&[Role::Admin], "product history")?;
    let params = params.only(&["limit", "cursor"])?;
    let sku = path_id::parse(&sku, "product")?.to_string();
    let limit = params.limit()?;
    let scope = Scope::new("product_history").with("sku", &sku);
    let order = Order {
        field: history_fields::VERSION,
        key: Key::Int,
        ascending: true,
        tiebreak: None,
    };
    let cursor = params.get("cursor");
    let filter = order.resume(doc! { history_fields::SKU: &sku }, &scope, cursor)?;
    let page = state
        .breaker
        .run(async {
            let history = state.collection(read_model::PRODUCT_HISTORY).await?;
            order
                .fetch(
                    &history.clone_with_type::<HistoryDoc>(),
                    filter,
                    &scope,
                    limit,
                )
                .await
        })
        .await?;
    if page.documents.is_empty() && cursor.is_none() {
        return Err(ApiError::NotFound("product"));
    }
    let items: Vec<HistoryEntry> = page.documents.iter().map(history_entry).collect();
    Ok(json_answer(
        &headers,
        false,
        &to_json(Page {
            items,
            next_cursor: page.next_cursor,
        }),
    ))
}
