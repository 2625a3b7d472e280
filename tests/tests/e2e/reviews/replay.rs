//! Replaying the review events into fresh databases gives the same read models, byte for byte.

use camreviews_tests::{Api, Tokens};
use serde_json::json;

use super::{id, position, publish, publisher};
use crate::catalog::{
    Catalog, camera,
    replay::{dump, replay_twice, wait_applied},
};

async fn attach(api: &Api, token: &Tokens, review: &str) -> i64 {
    let png = include_bytes!("../../../fixtures/camera.png").to_vec();
    let reply = super::images::upload(api, token, review, png, "p.png", "image/png").await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    position(&reply)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_review_events_into_fresh_databases_gives_identical_read_models() {
    let catalog = Catalog::start().await;
    let ana = publisher(&catalog, "ana", "south-america").await;
    let bob = publisher(&catalog, "bob", "south-america").await;
    let mut last = 0;
    for n in 0..4 {
        let (sku, _) = catalog.create(camera(n)).await;
        let first = id(&publish(&catalog.command, &ana, &sku, 5).await);
        let second = id(&publish(&catalog.command, &bob, &sku, 2).await);
        attach(&catalog.command, &ana, &first).await;
        let edited = catalog
            .command
            .put(
                &format!("/api/v1/reviews/{second}"),
                json!({ "rating": 3, "title": "Better" }),
                Some(&bob.access),
            )
            .await;
        last = position(&edited);
        if n % 2 == 0 {
            let deleted = catalog
                .command
                .delete(&format!("/api/v1/reviews/{first}"), Some(&ana.access))
                .await;
            last = position(&deleted);
        }
    }
    let live = shared::mongo::connect(&catalog.env.mongo, "tests")
        .await
        .unwrap();
    wait_applied(&live, last).await;
    let original = dump(&live).await;
    let reviews = &original
        .iter()
        .find(|(name, _)| name == "reviews")
        .unwrap()
        .1;
    assert_eq!(reviews.len(), 8);

    let replays = replay_twice(&catalog, last).await;
    assert!(replays[0] == replays[1], "two replays differ");
    assert!(
        replays[0] == original,
        "a replay differs from the live read models"
    );
}
