//! `q` is plain text and parameters are plain strings: nothing a reader types becomes a
//! MongoDB operator or a pattern.

use serde_json::json;

use super::{Catalog, skus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_and_pattern_shaped_input_matches_literally_or_is_400_never_everything() {
    let catalog = Catalog::start().await;
    let product = |name: &str, brand: &str, description: &str| json!({ "name": name, "brand": brand, "price": "100", "description": description });
    catalog
        .create(product("X100VI", "Fujifilm", "Compact with a fixed lens"))
        .await;
    catalog
        .create(product("EOS R5", "Canon", "Full-frame mirrorless"))
        .await;
    let (literal, _) = catalog
        .create(product(
            "Odd .* name",
            "Weird (brand)",
            "costs $100 {\"$ne\":null}",
        ))
        .await;
    let (_, position) = catalog
        .create(product("Z8", "Nikon", "Stacked sensor"))
        .await;
    catalog.read_at("/api/v1/products", position, None).await;

    let found = |query: &str| {
        let catalog = &catalog;
        let query = query.to_owned();
        async move {
            let reply = catalog
                .query
                .get(&format!("/api/v1/products?{query}"), None)
                .await;
            assert!(
                reply.status == 200 || reply.status == 400,
                "{query}: {}",
                reply.status
            );
            (
                reply.status.as_u16(),
                reply.body["items"].as_array().map(|i| skus(i)),
            )
        }
    };

    // Case-insensitive plain text over name, brand and description.
    assert_eq!(found("q=fujifilm").await.1.unwrap().len(), 1);
    assert_eq!(found("q=MIRRORLESS").await.1.unwrap().len(), 1);
    assert_eq!(found("q=eos%20r").await.1.unwrap().len(), 1);
    assert_eq!(found("q=sensor").await.1.unwrap().len(), 1);

    // Pattern and operator characters are literal: only the product that contains them.
    for query in [
        "q=.*",
        "q=%2E%2A",
        "q=(brand)",
        "q=(",
        "q=%24100",
        "q=%7B%22%24ne%22%3Anull%7D",
        "q=$ne",
    ] {
        assert_eq!(
            found(query).await,
            (200, Some(vec![literal.clone()])),
            "{query}"
        );
    }
    // Patterns that match nothing literally: nothing (and never 500).
    for query in [
        "q=.%2B",
        "q=%5E",
        "q=a%7Cb",
        "q=%5C",
        "q=%5B",
        "q=%5Cd",
        "q=%F0%9F%93%B7",
        "brand=.*",
        "brand=%7B%22%24ne%22%3Anull%7D",
        "brand=Weird",
    ] {
        assert_eq!(found(query).await, (200, Some(vec![])), "{query}");
    }
    // Exact brand, case-insensitive.
    assert_eq!(
        found("brand=weird%20(brand)").await.1.unwrap(),
        vec![literal.clone()]
    );
    // Operator-shaped names are unknown parameters: 400, never everything.
    for query in [
        "brand[$ne]=x",
        "q[$regex]=.",
        "q=%00",
        "brand=a%0Ab",
        "brand[$gt]=",
        "min_price[$gt]=0",
        "$where=1",
        "sort[$ne]=x",
    ] {
        let (status, _) = found(query).await;
        assert_eq!(status, 400, "{query}");
    }
    // Too long a search is refused.
    let long = "a".repeat(201);
    assert_eq!(found(&format!("q={long}")).await.0, 400);
}
