//! Publish, edit, delete; who may; the product's rating stats; replay.

use serde_json::json;

use super::{id, items, position, publish, publisher};
use crate::catalog::{Catalog, camera};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_is_visible_under_its_product_in_the_list_and_by_id_then_edited_and_deleted() {
    let catalog = Catalog::start().await;
    let (sku, _) = catalog.create(camera(1)).await;
    let ana = publisher(&catalog, "ana", "south-america").await;

    let published = publish(&catalog.command, &ana, &sku, 4).await;
    assert_eq!(published.status, 201, "{:?}", published.body);
    assert_eq!(published.body["version"], 1);
    let review = id(&published);
    assert_eq!(
        published.header("location"),
        Some(format!("/api/v1/reviews/{review}").as_str())
    );
    let at = position(&published);

    let shown = catalog
        .read_at(&format!("/api/v1/reviews/{review}"), at, None)
        .await;
    assert_eq!(shown.status, 200, "{:?}", shown.body);
    assert_eq!(shown.body["product_sku"], sku.as_str());
    assert_eq!(shown.body["author"]["display_name"], "ana D.");
    assert_eq!(
        shown.body["author"]["id"],
        crate::catalog::subject_of(&ana.access).as_str()
    );
    assert_eq!(shown.body["rating"], 4);
    assert_eq!(shown.body["region"], "south-america");
    assert_eq!(shown.body["images"], json!([]));
    assert_eq!(shown.body["title"], "4 stars");

    let under = catalog
        .read_at(&format!("/api/v1/products/{sku}/reviews"), at, None)
        .await;
    assert_eq!(items(&under).len(), 1);
    assert_eq!(items(&under)[0]["id"], review.as_str());
    let listed = catalog.read_at("/api/v1/reviews", at, None).await;
    assert_eq!(items(&listed)[0]["id"], review.as_str());
    let product = catalog
        .read_at(&format!("/api/v1/products/{sku}"), at, None)
        .await;
    assert_eq!(product.body["review_count"], 1);
    assert_eq!(product.body["rating_avg"], 4.0);

    let edited = catalog
        .command
        .put(
            &format!("/api/v1/reviews/{review}"),
            json!({ "rating": 2, "body": "Changed my mind." }),
            Some(&ana.access),
        )
        .await;
    assert_eq!(edited.status, 200, "{:?}", edited.body);
    assert_eq!(edited.body["version"], 2);
    let shown = catalog
        .read_at(
            &format!("/api/v1/reviews/{review}"),
            position(&edited),
            None,
        )
        .await;
    assert_eq!(shown.body["rating"], 2);
    assert_eq!(shown.body["body"], "Changed my mind.");
    assert_eq!(shown.body["title"], "4 stars");
    let product = catalog
        .read_at(&format!("/api/v1/products/{sku}"), position(&edited), None)
        .await;
    assert_eq!(product.body["rating_avg"], 2.0);

    let deleted = catalog
        .command
        .delete(&format!("/api/v1/reviews/{review}"), Some(&ana.access))
        .await;
    assert_eq!(deleted.status, 204);
    let at = position(&deleted);
    let gone = catalog
        .read_at(&format!("/api/v1/reviews/{review}"), at, None)
        .await;
    assert_eq!(gone.status, 404);
    let listed = catalog.read_at("/api/v1/reviews", at, None).await;
    assert_eq!(items(&listed), Vec::<serde_json::Value>::new());
    let product = catalog
        .read_at(&format!("/api/v1/products/{sku}"), at, None)
        .await;
    assert_eq!(product.body["review_count"], 0);
    assert_eq!(product.body["rating_avg"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rating_stats_stay_exact_through_publishes_edits_and_deletes() {
    let catalog = Catalog::start().await;
    let (sku, _) = catalog.create(camera(1)).await;
    let (other, _) = catalog.create(camera(2)).await;
    let mut writers = Vec::new();
    for n in 0..4 {
        writers.push(publisher(&catalog, &format!("writer{n}"), "south-america").await);
    }
    // Ratings 5, 4, 3, 2 on one product, 1 on the other.
    let mut reviews = Vec::new();
    for (n, writer) in writers.iter().enumerate() {
        let reply = publish(&catalog.command, writer, &sku, 5 - n as u8).await;
        assert_eq!(reply.status, 201);
        reviews.push(id(&reply));
    }
    publish(&catalog.command, &writers[0], &other, 1).await;
    // Edit 4 → 1, delete the 5: left 1, 3, 2.
    let edit = catalog
        .command
        .put(
            &format!("/api/v1/reviews/{}", reviews[1]),
            json!({ "rating": 1 }),
            Some(&writers[1].access),
        )
        .await;
    assert_eq!(edit.status, 200);
    // An admin may delete anyone's review.
    let delete = catalog
        .command
        .delete(
            &format!("/api/v1/reviews/{}", reviews[0]),
            Some(&catalog.root.access),
        )
        .await;
    assert_eq!(delete.status, 204);
    let product = catalog
        .read_at(&format!("/api/v1/products/{sku}"), position(&delete), None)
        .await;
    assert_eq!(product.body["review_count"], 3);
    assert_eq!(product.body["rating_avg"], 2.0);
    let other = catalog
        .query
        .get(&format!("/api/v1/products/{other}"), None)
        .await;
    assert_eq!(other.body["review_count"], 1);
    assert_eq!(other.body["rating_avg"], 1.0);

    // Filters and sorts over what is left.
    let best = catalog.query.get("/api/v1/reviews?sort=rating", None).await;
    let ratings: Vec<i64> = items(&best)
        .iter()
        .map(|r| r["rating"].as_i64().unwrap())
        .collect();
    assert_eq!(ratings, [3, 2, 1, 1]);
    let good = catalog
        .query
        .get("/api/v1/reviews?min_rating=2", None)
        .await;
    assert_eq!(items(&good).len(), 2);
    let author = crate::catalog::subject_of(&writers[2].access);
    let theirs = catalog
        .query
        .get(&format!("/api/v1/reviews?author_id={author}"), None)
        .await;
    assert_eq!(items(&theirs).len(), 1);
    let here = catalog
        .query
        .get(&format!("/api/v1/reviews?product_sku={sku}&limit=2"), None)
        .await;
    assert_eq!(items(&here).len(), 2);
    let cursor = here.body["next_cursor"].as_str().unwrap();
    let rest = catalog
        .query
        .get(
            &format!("/api/v1/reviews?product_sku={sku}&limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(items(&rest).len(), 1);
    let found = catalog.query.get("/api/v1/reviews?q=3%20STARS", None).await;
    assert_eq!(items(&found).len(), 1);
    for bad in [
        "sort=oldest",
        "min_rating=6",
        "product_sku=x",
        "author_id[$ne]=1",
        "region=a%0Ab",
    ] {
        let reply = catalog
            .query
            .get(&format!("/api/v1/reviews?{bad}"), None)
            .await;
        assert_eq!(reply.status, 400, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_write_what() {
    let catalog = Catalog::start().await;
    let (sku, _) = catalog.create(camera(1)).await;
    let ana = publisher(&catalog, "ana", "south-america").await;
    let bob = publisher(&catalog, "bob", "south-america").await;
    let eve = publisher(&catalog, "eve", "europe").await;

    let review = id(&publish(&catalog.command, &ana, &sku, 5).await);
    let path = format!("/api/v1/reviews/{review}");
    let edit = catalog
        .command
        .put(&path, json!({ "rating": 1 }), Some(&bob.access))
        .await;
    assert_eq!(edit.status, 403);
    assert_eq!(edit.code(), "forbidden");
    assert_eq!(
        catalog
            .command
            .delete(&path, Some(&bob.access))
            .await
            .status,
        403
    );

    let outside = publish(&catalog.command, &eve, &sku, 5).await;
    assert_eq!(outside.status, 403);
    assert_eq!(outside.code(), "region_not_allowed");

    let unknown = publish(&catalog.command, &ana, &uuid::Uuid::new_v4().to_string(), 5).await;
    assert_eq!(unknown.status, 422);
    assert_eq!(unknown.body["errors"][0]["field"], "product_sku");

    let invalid = catalog
        .command
        .post(
            "/api/v1/reviews",
            json!({ "product_sku": sku, "title": "", "body": "x", "rating": 6 }),
            Some(&ana.access),
        )
        .await;
    assert_eq!(invalid.status, 422);
    let fields: Vec<&str> = invalid.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["title", "rating"]);
    let anonymous = catalog
        .command
        .post(
            "/api/v1/reviews",
            json!({ "product_sku": sku, "title": "t", "body": "b", "rating": 3 }),
            None,
        )
        .await;
    assert_eq!(anonymous.status, 401);

    // A stale If-Match is 412; the author's own edit passes.
    let stale = catalog
        .command
        .request(reqwest::Method::PUT, &path)
        .bearer_auth(&ana.access)
        .header("if-match", "7")
        .json(&json!({ "rating": 3 }))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    let own = catalog
        .command
        .put(&path, json!({ "rating": 3 }), Some(&ana.access))
        .await;
    assert_eq!(own.status, 200);

    // A deleted product takes no new reviews.
    catalog
        .command
        .delete(
            &format!("/api/v1/products/{sku}"),
            Some(&catalog.root.access),
        )
        .await;
    assert_eq!(publish(&catalog.command, &bob, &sku, 4).await.status, 422);
}
