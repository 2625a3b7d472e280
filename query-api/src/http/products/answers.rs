//! What the catalog answers: a product and the changes of its history, as readers see them.

use serde::Serialize;
use serde_json::Value;
use shared::{
    Role,
    openapi::ids::{SKU, USER},
    read_model::{HistoryDoc, IndexMap, ProductDoc},
};
use utoipa::ToSchema;

use crate::http::timestamps::rfc3339;

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

/// The product as readers see it.
pub(super) fn product_view(product: &ProductDoc, views: i64) -> ProductView<'_> {
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

/// The stored change as readers see it.
pub(super) fn history_entry(entry: &HistoryDoc) -> HistoryEntry<'_> {
    HistoryEntry {
        position: entry.position,
        version: entry.version,
        event_type: &entry.event_type,
        occurred_at: rfc3339(entry.occurred_at),
        actor: entry.actor.as_ref().map(|a| HistoryActorView {
            id: &a.id,
            role: a.role,
        }),
        changes: entry
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
    }
}
