//! List pages from query-api's in-memory index are the store's pages: every sort and filter,
//! page by page and cursor by cursor, after the index was loaded and after it caught up with
//! renames, price changes, deletes and new ratings.

use camreviews_tests::{Api, Running, Tokens};
use serde_json::{Value, json};

use super::{Catalog, camera};

/// Every page of `path` from `api`, the first read at position `at` or later.
async fn pages(api: &Api, path: &str, at: i64) -> Vec<Value> {
    let mut bodies = Vec::new();
    let mut url = path.to_owned();
    loop {
        let reply = api.get_at(&url, at, None).await;
        assert_eq!(reply.status, 200, "{url}: {:?}", reply.body);
        let next = reply.body["next_cursor"].as_str().map(str::to_owned);
        bodies.push(reply.body);
        match next {
            Some(cursor) => url = format!("{path}&cursor={cursor}"),
            None => return bodies,
        }
    }
}

const LISTINGS: [&str; 10] = [
    "/api/v1/products?limit=7",
    "/api/v1/products?limit=7&sort=price_asc",
    "/api/v1/products?limit=7&sort=price_desc",
    "/api/v1/products?limit=7&sort=name",
    "/api/v1/products?limit=7&sort=rating",
    "/api/v1/products?limit=5&brand=leica",
    "/api/v1/products?limit=5&brand=canon&sort=price_desc",
    "/api/v1/products?limit=4&q=camera%2000",
    "/api/v1/products?limit=6&min_price=200&max_price=600&sort=name",
    "/api/v1/products?limit=3&q=renamed&sort=rating",
];

async fn same_pages(indexed: &Api, from_store: &Api, at: i64) {
    for path in LISTINGS {
        let memory = pages(indexed, path, at).await;
        let store = pages(from_store, path, at).await;
        assert_eq!(memory, store, "{path}");
    }
}

async fn review(catalog: &Catalog, author: &Tokens, sku: &str, rating: usize) -> i64 {
    let reply = catalog
        .command
        .post(
            "/api/v1/reviews",
            json!({ "product_sku": sku, "title": "Seen", "body": "A fair camera.", "rating": rating }),
            Some(&author.access),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    reply.body["position"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_from_memory_are_the_stores_pages_for_every_sort_and_filter() {
    let catalog = Catalog::start().await;
    let mut skus = Vec::new();
    for n in 0..45 {
        skus.push(catalog.create(camera(n)).await.0);
    }
    catalog.command.register("paula", "paula-password").await;
    let paula = catalog.command.login("paula", "paula-password").await;
    let mut last = 0;
    for (n, sku) in skus.iter().enumerate().take(8) {
        last = review(&catalog, &paula, sku, n % 5 + 1).await;
    }
    // Lists read from the store's sort, for comparison.
    let mut config = catalog.env.query_api_config();
    config.list_index_products = 0;
    let app = query_api::Application::build(config).await.unwrap();
    let port = app.port();
    let store_replica = Running::spawn(port, |shutdown| app.run_until_stopped(shutdown));
    let from_store = Api::new(&store_replica);
    same_pages(&catalog.query, &from_store, last).await;

    // Changes the index must catch up with: renames and new prices move products in the name
    // and price orders, deletes take them out, ratings move them in the rating order.
    for (n, sku) in skus.iter().enumerate().skip(10).take(6) {
        last = catalog
            .update(
                sku,
                json!({ "name": format!("Renamed {}", 50 - n), "price": format!("{}.00", 150 + n * 37) }),
            )
            .await;
    }
    for sku in skus.iter().skip(20).take(4) {
        let deleted = catalog
            .command
            .delete(
                &format!("/api/v1/products/{sku}"),
                Some(&catalog.root.access),
            )
            .await;
        assert_eq!(deleted.status, 204, "{:?}", deleted.body);
        last = deleted
            .header("x-event-position")
            .and_then(|p| p.parse().ok())
            .unwrap_or(last);
    }
    for (n, sku) in skus.iter().enumerate().skip(10).take(3) {
        last = review(&catalog, &paula, sku, 5 - n % 3).await;
    }
    let (created, position) = catalog.create(camera(99)).await;
    skus.push(created);
    last = last.max(position);
    same_pages(&catalog.query, &from_store, last).await;
    assert!(
        catalog
            .query_api
            .metric("query_list_pages_total{from=\"index\"}")
            .await
            > 0.0,
        "pages were taken from the index"
    );
}
