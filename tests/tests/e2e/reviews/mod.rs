//! Reviews end to end: publishers write them, readers browse them, products show their
//! ratings; images uploaded, judged by their bytes and served back.

mod images;
mod lifecycle;
mod replay;
mod storage;

use serde_json::{Value, json};

use crate::catalog::Catalog;
use camreviews_tests::{Api, Reply, Tokens};

/// A publisher from a region that may publish (the tests' `PUBLISH_REGIONS` is
/// `south-america`).
pub async fn publisher(catalog: &Catalog, name: &str, region: &str) -> Tokens {
    let registered = catalog
        .command
        .post(
            "/api/v1/auth/register",
            json!({ "username": name, "email": format!("{name}@example.com"), "password": "publisher-password", "region": region, "display_name": format!("{name} D.") }),
            None,
        )
        .await;
    assert_eq!(registered.status, 201, "{:?}", registered.body);
    catalog.command.login(name, "publisher-password").await
}

pub async fn publish(api: &Api, token: &Tokens, sku: &str, rating: u8) -> Reply {
    api.post(
        "/api/v1/reviews",
        json!({ "product_sku": sku, "title": format!("{rating} stars"), "body": "Tried it for a week.", "rating": rating }),
        Some(&token.access),
    )
    .await
}

pub fn position(reply: &Reply) -> i64 {
    reply
        .header("x-event-position")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no X-Event-Position: {:?}", reply.body))
}

pub fn id(reply: &Reply) -> String {
    reply.body["id"].as_str().unwrap().to_owned()
}

pub fn items(reply: &Reply) -> Vec<Value> {
    reply.body["items"].as_array().unwrap().clone()
}
