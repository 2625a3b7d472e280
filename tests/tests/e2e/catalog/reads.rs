//! Read-your-writes and the product lifecycle as readers and admins see it.

use serde_json::json;

use super::{Catalog, skus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_update_delete_are_visible_at_once_with_x_min_position_and_in_history() {
    let catalog = Catalog::start().await;
    let body = json!({
        "name": "Q3", "brand": "Leica", "price": "5995.00",
        "description": "A fixed-lens camera", "specs": { "sensor": "full frame" }
    });
    let (sku, position) = catalog.create(body).await;
    let path = format!("/api/v1/products/{sku}");

    let shown = catalog.read_at(&path, position, None).await;
    assert_eq!(shown.status, 200, "{:?}", shown.body);
    let projected: i64 = shown
        .header("x-projection-position")
        .unwrap()
        .parse()
        .unwrap();
    assert!(projected >= position);
    assert_eq!(shown.body["sku"], sku.as_str());
    assert_eq!(shown.body["name"], "Q3");
    assert_eq!(shown.body["brand"], "Leica");
    assert_eq!(shown.body["price"], "5995.00");
    assert_eq!(shown.body["currency"], "USD");
    assert_eq!(shown.body["description"], "A fixed-lens camera");
    assert_eq!(shown.body["specs"], json!({ "sensor": "full frame" }));
    assert_eq!(shown.body["version"], 1);
    assert_eq!(shown.body["review_count"], 0);
    assert_eq!(shown.body["rating_avg"], serde_json::Value::Null);
    assert!(shown.body["views"].is_i64());
    assert!(shown.body["created_at"].as_str().unwrap().ends_with('Z'));

    let listed = catalog.read_at("/api/v1/products", position, None).await;
    assert_eq!(
        skus(listed.body["items"].as_array().unwrap()),
        vec![sku.clone()]
    );

    let position = catalog
        .update(&sku, json!({ "price": "5795.00", "name": "Q3 43" }))
        .await;
    let shown = catalog.read_at(&path, position, None).await;
    assert_eq!(shown.body["price"], "5795.00");
    assert_eq!(shown.body["name"], "Q3 43");
    assert_eq!(shown.body["version"], 2);
    assert_eq!(
        shown.body["description"], "A fixed-lens camera",
        "untouched fields stay"
    );

    let deleted = catalog
        .command
        .delete(&path, Some(&catalog.root.access))
        .await;
    assert_eq!(deleted.status, 204);
    let position: i64 = deleted.header("x-event-position").unwrap().parse().unwrap();
    let gone = catalog.read_at(&path, position, None).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.code(), "not_found");
    let listed = catalog.read_at("/api/v1/products", position, None).await;
    assert_eq!(listed.body["items"], json!([]));

    let history = catalog
        .read_at(
            &format!("{path}/history"),
            position,
            Some(&catalog.root.access),
        )
        .await;
    assert_eq!(history.status, 200, "{:?}", history.body);
    let entries = history.body["items"].as_array().unwrap();
    let types: Vec<_> = entries
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["ProductCreated", "ProductUpdated", "ProductDeleted"]
    );
    let root_id = super::subject_of(&catalog.root.access);
    for entry in entries {
        assert_eq!(entry["actor"]["id"], root_id.as_str());
        assert_eq!(entry["actor"]["role"], "admin");
        assert!(entry["position"].as_i64().unwrap() > 0);
        assert!(entry["occurred_at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(
        entries[0]["changes"]["name"],
        json!({ "before": null, "after": "Q3" })
    );
    assert_eq!(
        entries[1]["changes"],
        json!({
            "name": { "before": "Q3", "after": "Q3 43" },
            "price": { "before": "5995.00", "after": "5795.00" },
        })
    );
    assert_eq!(history.body["next_cursor"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_for_admins_only() {
    let catalog = Catalog::start().await;
    let (sku, position) = catalog.create(super::camera(1)).await;
    let path = format!("/api/v1/products/{sku}/history");
    let anonymous = catalog.read_at(&path, position, None).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.code(), "unauthorized");

    catalog.command.register("pia", "pia-password").await;
    let publisher = catalog.command.login("pia", "pia-password").await;
    let refused = catalog
        .read_at(&path, position, Some(&publisher.access))
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.code(), "forbidden");

    let unknown = catalog
        .query
        .get(
            &format!("/api/v1/products/{}/history", uuid::Uuid::new_v4()),
            Some(&catalog.root.access),
        )
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_not_reached_in_time_is_504_and_bad_positions_are_400() {
    // No projector: nothing is ever applied.
    let env = camreviews_tests::TestEnv::new().await;
    let catalog = Catalog::start_in(env, false).await;
    let (_, position) = catalog.create(super::camera(1)).await;

    let started = std::time::Instant::now();
    let lagging = catalog
        .query
        .request(reqwest::Method::GET, "/api/v1/products")
        .header("x-min-position", position.to_string())
        .header("x-max-wait-ms", "300")
        .send()
        .await
        .unwrap();
    let lagging = camreviews_tests::Api::reply(lagging).await;
    assert_eq!(lagging.status, 504);
    assert_eq!(lagging.code(), "projection_lagging");
    assert_eq!(lagging.header("x-projection-position"), Some("0"));
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));

    for bad in ["-1", "abc", "1.5", ""] {
        let reply = catalog
            .query
            .request(reqwest::Method::GET, "/api/v1/products")
            .header("x-min-position", bad)
            .send()
            .await
            .unwrap();
        let reply = camreviews_tests::Api::reply(reply).await;
        assert_eq!(reply.status, 400, "{bad:?}");
        assert_eq!(reply.code(), "invalid_parameter");
    }

    // Without the header the answer comes at once and says how far the read models are.
    let plain = catalog.query.get("/api/v1/products", None).await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("x-projection-position"), Some("0"));
}

/// The projector announces each applied position on `projection.applied`: readers that wait
/// with `X-Min-Position` are woken by it instead of polling the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_announces_each_applied_position() {
    use futures::StreamExt as _;

    let catalog = Catalog::start().await;
    let client = async_nats::connect(&catalog.env.nats_url).await.unwrap();
    let mut announced = client
        .subscribe(catalog.env.prefix.applied_subject())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let body = json!({
        "name": "X100", "brand": "Fujifilm", "price": "1599.00",
        "description": "A compact", "specs": {}
    });
    let (_, position) = catalog.create(body).await;
    let reached = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(message) = announced.next().await {
            let applied: i64 = std::str::from_utf8(&message.payload)
                .unwrap()
                .parse()
                .unwrap();
            if applied >= position {
                return applied;
            }
        }
        panic!("the subscription ended");
    })
    .await
    .expect("no announcement of the create's position within 10 s");
    assert!(reached >= position);
}
