//! Cursor pages: complete, without repeats, stable while products are being added; filters
//! and sorts; bad limits and cursors are 400.

use std::collections::HashSet;

use serde_json::Value;

use super::{Catalog, camera, skus};

/// Creates `count` products, 8 at a time; the highest event position.
async fn create_many(catalog: &Catalog, range: std::ops::Range<usize>) -> i64 {
    let mut highest = 0;
    let numbers: Vec<usize> = range.collect();
    for chunk in numbers.chunks(8) {
        let created =
            futures::future::join_all(chunk.iter().map(|n| catalog.create(camera(*n)))).await;
        highest = created.iter().map(|(_, p)| *p).max().unwrap().max(highest);
    }
    highest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_fifty_products_page_as_100_100_50_without_repeats_even_while_more_are_created()
{
    let catalog = Catalog::start().await;
    let position = create_many(&catalog, 0..250).await;
    let first = catalog
        .read_at("/api/v1/products?limit=100", position, None)
        .await;
    assert_eq!(first.status, 200);

    let (sizes, items) = catalog.all_pages("/api/v1/products?limit=100").await;
    assert_eq!(sizes, [100, 100, 50]);
    let seen: HashSet<String> = skus(&items).into_iter().collect();
    assert_eq!(seen.len(), 250, "no repeats");

    // Again, while products are being created: every one of the first 250 appears exactly once.
    let writer = async { create_many(&catalog, 250..330).await };
    let reader = async {
        let mut runs = Vec::new();
        for _ in 0..3 {
            runs.push(catalog.all_pages("/api/v1/products?limit=100").await.1);
        }
        runs
    };
    let (_, runs) = tokio::join!(writer, reader);
    for items in runs {
        let listed = skus(&items);
        let unique: HashSet<&String> = listed.iter().collect();
        assert_eq!(unique.len(), listed.len(), "a product was listed twice");
        assert!(
            seen.iter().all(|sku| unique.contains(sku)),
            "a product was skipped"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_sorts_return_exactly_what_they_say() {
    let catalog = Catalog::start().await;
    let position = create_many(&catalog, 0..30).await;
    catalog.read_at("/api/v1/products", position, None).await;

    let price = |item: &Value| shared::money::cents(item["price"].as_str().unwrap()).unwrap();
    let (_, all) = catalog.all_pages("/api/v1/products?limit=7").await;
    assert_eq!(all.len(), 30);

    let (_, canon) = catalog
        .all_pages("/api/v1/products?brand=canon&limit=4")
        .await;
    let expected: Vec<&Value> = all.iter().filter(|i| i["brand"] == "Canon").collect();
    assert_eq!(canon.len(), expected.len());
    assert!(canon.iter().all(|i| i["brand"] == "Canon"));

    let (_, cheap) = catalog
        .all_pages("/api/v1/products?min_price=200&max_price=300.50&limit=5")
        .await;
    let expected = all
        .iter()
        .filter(|i| (20_000..=30_050).contains(&price(i)))
        .count();
    assert_eq!(cheap.len(), expected);
    assert!(expected > 0);

    let (_, ascending) = catalog
        .all_pages("/api/v1/products?sort=price_asc&limit=6")
        .await;
    let prices: Vec<i64> = ascending.iter().map(price).collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");
    assert_eq!(prices.len(), 30);

    let (_, descending) = catalog
        .all_pages("/api/v1/products?sort=price_desc&limit=6")
        .await;
    let prices: Vec<i64> = descending.iter().map(price).collect();
    assert!(prices.windows(2).all(|w| w[0] >= w[1]), "{prices:?}");

    let (_, by_name) = catalog
        .all_pages("/api/v1/products?sort=name&limit=9")
        .await;
    let names: Vec<&str> = by_name
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    // Created 8 at a time: newest first means the last batch first and the first batch last.
    let (_, newest) = catalog.all_pages("/api/v1/products?limit=8").await;
    let number = |item: &Value| {
        item["name"].as_str().unwrap()[7..]
            .parse::<usize>()
            .unwrap()
    };
    assert!(number(&newest[0]) >= 24, "{}", newest[0]["name"]);
    assert!(number(&newest[29]) < 8, "{}", newest[29]["name"]);

    let (_, rated) = catalog
        .all_pages("/api/v1/products?sort=rating&limit=8")
        .await;
    assert_eq!(rated.len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_limits_sorts_and_cursors_are_400() {
    let catalog = Catalog::start().await;
    let position = create_many(&catalog, 0..3).await;
    catalog.read_at("/api/v1/products", position, None).await;
    for query in [
        "limit=0",
        "limit=101",
        "limit=-5",
        "limit=ten",
        "sort=random",
        "min_price=abc",
        "max_price=1.234",
        "cursor=garbage",
        "cursor=eyJ4IjoxfQ",
    ] {
        let reply = catalog
            .query
            .get(&format!("/api/v1/products?{query}"), None)
            .await;
        assert_eq!(reply.status, 400, "{query}: {:?}", reply.body);
        assert_eq!(reply.code(), "invalid_parameter", "{query}");
    }

    let page = catalog.query.get("/api/v1/products?limit=1", None).await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    // The cursor belongs to its listing: another sort or filter refuses it.
    for other in ["sort=price_asc", "brand=leica", "q=camera"] {
        let reply = catalog
            .query
            .get(
                &format!("/api/v1/products?limit=1&{other}&cursor={cursor}"),
                None,
            )
            .await;
        assert_eq!(reply.status, 400, "{other}");
    }
    // An edited cursor is refused.
    let mut edited = cursor.clone().into_bytes();
    let last = edited.len() - 3;
    edited[last] = if edited[last] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    let reply = catalog
        .query
        .get(&format!("/api/v1/products?limit=1&cursor={edited}"), None)
        .await;
    assert_eq!(reply.status, 400);
    // The genuine one pages on.
    let next = catalog
        .query
        .get(&format!("/api/v1/products?limit=1&cursor={cursor}"), None)
        .await;
    assert_eq!(next.status, 200);
    assert_eq!(next.body["items"].as_array().unwrap().len(), 1);
}
