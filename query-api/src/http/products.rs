//! The catalog: list (filters, search, sorts, cursor pages), detail (counting anonymous views),
//! and history (admins).

use std::collections::HashMap;

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};
use futures::TryStreamExt;
use mongodb::{
    Collection,
    bson::{self, Document, doc},
};
use serde::Serialize;
use serde_json::Value;
use shared::{
    ApiError, Role,
    cursor::Scope,
    http::QueryParams,
    openapi::{
        Forbidden, NotFound, Unauthorized,
        ids::{SKU, USER},
    },
    read_model::{
        self, HistoryDoc, IndexMap, ProductDoc, ProductViewsDoc, history_fields, product_fields,
        views_fields,
    },
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::listing::{Criteria, Sort};

use super::{
    Depends, Page, Paging, QueryState, ReadYourWrites, Reader,
    caching::json_answer,
    keyset::{Key, Order},
    read_through, to_json,
};

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(detail))
        .routes(routes!(history))
}

/// A product as readers see it.
#[derive(Serialize, ToSchema)]
#[schema(as = Product)]
pub(super) struct ProductView<'a> {
    #[schema(value_type = uuid::Uuid, example = json!(SKU))]
    sku: &'a str,
    #[schema(example = "Leica Q3")]
    name: &'a str,
    #[schema(example = "Leica")]
    brand: &'a str,
    /// A decimal string with at most two decimals.
    #[schema(example = "5995.00")]
    price: &'a str,
    /// ISO 4217.
    #[schema(example = "USD")]
    currency: &'a str,
    #[schema(example = "Full-frame compact")]
    description: &'a str,
    /// Name → value, in the order they were given.
    #[schema(value_type = std::collections::HashMap<String, String>, example = json!({ "sensor": "60 MP" }))]
    specs: &'a IndexMap<String, String>,
    /// Anonymous views (may lag by a second).
    #[schema(example = 1204)]
    views: i64,
    #[schema(example = 12)]
    review_count: i64,
    /// The average rating; null without reviews.
    #[schema(example = 4.5)]
    rating_avg: Option<f64>,
    #[schema(example = 3)]
    version: i64,
    #[schema(value_type = chrono::DateTime<chrono::Utc>, example = "2026-11-01T09:00:00.000Z")]
    created_at: Value,
    #[schema(value_type = chrono::DateTime<chrono::Utc>, example = "2026-11-21T10:00:00.000Z")]
    updated_at: Value,
}

/// One change of a product: the event that made it, who caused it, and each field it changed.
#[derive(Serialize, ToSchema)]
pub(super) struct HistoryEntry<'a> {
    /// The event's global position.
    #[schema(example = 1042)]
    position: i64,
    /// The product's version after the event.
    #[schema(example = 2)]
    version: i64,
    #[schema(example = "ProductUpdated")]
    event_type: &'a str,
    #[schema(value_type = chrono::DateTime<chrono::Utc>, example = "2026-11-21T10:00:00.000Z")]
    occurred_at: Value,
    /// Null for an event no user caused.
    actor: Option<HistoryActorView<'a>>,
    /// The fields the event changed, by name: all of them on creation, none on deletion.
    #[schema(
        value_type = std::collections::HashMap<String, HistoryChangeView>,
        example = json!({ "price": { "before": "5995.00", "after": "5795.00" } })
    )]
    changes: IndexMap<&'a str, HistoryChangeView>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = HistoryActor)]
pub(super) struct HistoryActorView<'a> {
    #[schema(value_type = uuid::Uuid, example = json!(USER))]
    id: &'a str,
    role: Role,
}

/// A field's value before and after the event (before is null on creation).
#[derive(Serialize, ToSchema)]
#[schema(as = HistoryChange)]
pub(super) struct HistoryChangeView {
    /// Any JSON value; null when the field had none.
    #[schema(example = "5995.00")]
    before: Value,
    /// Any JSON value.
    #[schema(example = "5795.00")]
    after: Value,
}

/// The longest `q` (or other text filter) accepted.
const MAX_TEXT: usize = 200;

/// A text filter: trimmed, at most [`MAX_TEXT`] characters, no control characters;
/// lower-cased (the read models keep lower-cased copies to match against).
pub(super) fn plain_text(raw: &str) -> Result<String, String> {
    let text = raw.trim();
    if text.chars().count() > MAX_TEXT {
        Err(format!("must be at most {MAX_TEXT} characters"))
    } else if text.chars().any(char::is_control) {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(text.to_lowercase())
    }
}

/// How a sort is read from the store.
fn order(sort: Sort) -> Order {
    use product_fields::{CREATED_POSITION, ID, NAME_SORT, PRICE_CENTS, RATING_SORT};
    let (field, key, ascending) = match sort {
        Sort::Newest => (CREATED_POSITION, Key::Int, false),
        Sort::PriceAsc => (PRICE_CENTS, Key::Int, true),
        Sort::PriceDesc => (PRICE_CENTS, Key::Int, false),
        Sort::Name => (NAME_SORT, Key::Text, true),
        Sort::Rating => (RATING_SORT, Key::Float, false),
    };
    // `created_position` is unique; the other keys are not.
    let tiebreak = (field != CREATED_POSITION).then_some((ID, Key::Text));
    Order {
        field,
        key,
        ascending,
        tiebreak,
    }
}

/// Parsed list parameters: the filter and the cursor scope they define.
struct Listing {
    filter: Document,
    /// The same filter and sort, for the in-memory index.
    criteria: Criteria,
    scope: Scope,
    order: Order,
    limit: i64,
    cursor: Option<String>,
}

impl Listing {
    fn parse(params: QueryParams) -> Result<Self, ApiError> {
        let params = params.only(&[
            "limit",
            "cursor",
            "brand",
            "q",
            "min_price",
            "max_price",
            "sort",
        ])?;
        let text = plain_text;
        let price = |raw: &str| {
            shared::money::cents(raw.trim())
                .ok_or_else(|| "must be a non-negative amount like 1299.99".to_owned())
        };
        let sort = params.parsed("sort", Sort::parse)?.unwrap_or(Sort::Newest);
        let brand = params.parsed("brand", text)?.filter(|b| !b.is_empty());
        let q = params.parsed("q", text)?.filter(|q| !q.is_empty());
        let min = params.parsed("min_price", price)?;
        let max = params.parsed("max_price", price)?;
        if let (Some(min), Some(max)) = (min, max) {
            if min > max {
                return Err(ApiError::InvalidParameter(
                    "min_price: is above max_price".into(),
                ));
            }
        }

        let mut filter = doc! { product_fields::DELETED: false };
        let mut scope = Scope::new("products").with("sort", sort.name());
        if let Some(brand) = &brand {
            filter.insert(product_fields::BRAND_KEY, brand);
            scope = scope.with("brand", brand);
        }
        if let Some(q) = &q {
            // A literal, escaped: no character of `q` can act as a pattern or an operator.
            filter.insert(
                product_fields::SEARCH_TEXT,
                bson::Regex {
                    pattern: escape_regex(q),
                    options: String::new(),
                },
            );
            scope = scope.with("q", q);
        }
        if min.is_some() || max.is_some() {
            let mut range = doc! {};
            if let Some(min) = min {
                range.insert("$gte", min);
                scope = scope.with("min_price", min);
            }
            if let Some(max) = max {
                range.insert("$lte", max);
                scope = scope.with("max_price", max);
            }
            filter.insert(product_fields::PRICE_CENTS, range);
        }
        Ok(Self {
            filter,
            criteria: Criteria {
                sort,
                brand,
                q,
                min_price: min,
                max_price: max,
            },
            scope,
            order: order(sort),
            limit: params.limit()?,
            cursor: params
                .get("cursor")
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
        })
    }
}

/// `text` as a regular expression that matches exactly that text.
pub fn escape_regex(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if c.is_ascii_punctuation() || c == ' ' {
            pattern.push('\\');
            pattern.push(c);
        } else {
            pattern.push(c);
        }
    }
    pattern
}

async fn products(state: &QueryState) -> mongodb::error::Result<Collection<ProductDoc>> {
    Ok(state
        .collection(read_model::PRODUCTS)
        .await?
        .clone_with_type())
}

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
async fn list(
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

/// View tallies by SKU (kept by the notifier): from memory when read within
/// [`crate::TALLY_FRESH_FOR`], the others in one read of the store.
async fn views_of(
    state: &QueryState,
    skus: &[&str],
) -> mongodb::error::Result<HashMap<String, i64>> {
    let mut views = HashMap::with_capacity(skus.len());
    let mut unknown = Vec::new();
    for sku in skus {
        match state.tallies.get(*sku) {
            Some(count) => {
                views.insert((*sku).to_owned(), count);
            }
            None => unknown.push(*sku),
        }
    }
    if unknown.is_empty() {
        return Ok(views);
    }
    let tallies: Vec<ProductViewsDoc> = state
        .db
        .collection(read_model::PRODUCT_VIEWS)
        .find(doc! { views_fields::ID: { "$in": &unknown } })
        .await?
        .try_collect()
        .await?;
    for tally in tallies {
        views.insert(tally.sku, tally.views);
    }
    for sku in unknown {
        let count = *views.entry(sku.to_owned()).or_insert(0);
        state.tallies.insert(sku.to_owned(), count);
    }
    Ok(views)
}

/// A stored date as answers show it: RFC 3339 in milliseconds, UTC.
pub(super) fn rfc3339(at: bson::DateTime) -> Value {
    chrono::DateTime::from_timestamp_millis(at.timestamp_millis())
        .map(|at| Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

/// The product as readers see it.
fn product_view(product: &ProductDoc, views: i64) -> ProductView<'_> {
    ProductView {
        sku: &product.sku,
        name: &product.name,
        brand: &product.brand,
        price: &product.price,
        currency: &product.currency,
        description: &product.description,
        specs: &product.specs,
        views,
        review_count: product.stats.review_count,
        rating_avg: product.stats.rating_avg,
        version: product.version,
        created_at: rfc3339(product.created_at),
        updated_at: rfc3339(product.updated_at),
    }
}

/// SKUs are UUIDs: anything else is a product that does not exist.
fn parse_sku(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("product"))
}

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
async fn detail(
    State(state): State<QueryState>,
    reader: Reader,
    headers: HeaderMap,
    Path(sku): Path<String>,
    params: QueryParams,
) -> Result<Response, ApiError> {
    params.only(&[])?;
    let sku = parse_sku(&sku)?;
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
async fn history(
    State(state): State<QueryState>,
    reader: Reader,
    headers: HeaderMap,
    Path(sku): Path<String>,
    params: QueryParams,
) -> Result<Response, ApiError> {
    reader.require(&[Role::Admin], "product history")?;
    let params = params.only(&["limit", "cursor"])?;
    let sku = parse_sku(&sku)?.to_string();
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
    let entries = &page.documents;
    let next_cursor = page.next_cursor;
    let items: Vec<HistoryEntry> = entries
        .iter()
        .map(|e| HistoryEntry {
            position: e.position,
            version: e.version,
            event_type: &e.event_type,
            occurred_at: rfc3339(e.occurred_at),
            actor: e.actor.as_ref().map(|a| HistoryActorView {
                id: &a.id,
                role: a.role,
            }),
            changes: e
                .changes
                .iter()
                .map(|(field, change)| {
                    let change = HistoryChangeView {
                        before: change.before.clone().into_relaxed_extjson(),
                        after: change.after.clone().into_relaxed_extjson(),
                    };
                    (field.as_str(), change)
                })
                .collect(),
        })
        .collect();
    Ok(json_answer(
        &headers,
        false,
        &to_json(Page { items, next_cursor }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_has_no_pattern_characters_left() {
        assert_eq!(escape_regex(".*"), "\\.\\*");
        assert_eq!(escape_regex("a+b (c)"), "a\\+b\\ \\(c\\)");
        assert_eq!(escape_regex("{\"$ne\":null}"), "\\{\\\"\\$ne\\\"\\:null\\}");
        assert_eq!(escape_regex("é^$|"), "é\\^\\$\\|");
    }

    #[test]
    fn unknown_or_operator_shaped_parameters_are_refused() {
        for query in [
            "brand[$ne]=x",
            "q[$regex]=.",
            "sort=random",
            "limit=0",
            "min_price=-1",
            "min_price=5&max_price=4",
        ] {
            let params = QueryParams::parse(query).unwrap();
            assert!(Listing::parse(params).is_err(), "{query}");
        }
    }
}
