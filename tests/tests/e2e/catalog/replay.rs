//! The read side is disposable: replaying the stream into fresh databases gives the same
//! documents, byte for byte, and a full redelivery into an existing one changes nothing.

use std::time::Duration;

use camreviews_tests::eventually;
use futures::TryStreamExt;
use mongodb::{
    Database,
    bson::{RawDocumentBuf, doc},
};
use serde_json::json;
use shared::{config::MongoConfig, read_model};

use super::{Catalog, camera};

const READ_MODELS: [&str; 5] = [
    read_model::PRODUCTS,
    read_model::PRODUCT_HISTORY,
    read_model::USERS,
    read_model::REVIEWS,
    read_model::IMAGES,
];

/// Every document of the read models, as stored bytes, by `_id`.
pub async fn dump(db: &Database) -> Vec<(String, Vec<Vec<u8>>)> {
    let mut dumped = Vec::new();
    // Wherever the read models are kept now (a rebuild switches them).
    let names = read_model::Collections::current(db).await.unwrap();
    for name in READ_MODELS {
        let documents: Vec<RawDocumentBuf> = names
            .collection::<RawDocumentBuf>(db, name)
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        dumped.push((
            name.to_owned(),
            documents.into_iter().map(|d| d.into_bytes()).collect(),
        ));
    }
    dumped
}

pub async fn wait_applied(db: &Database, position: i64) {
    eventually(Duration::from_secs(60), || async {
        let applied = read_model::applied_position(db).await.unwrap_or(0);
        (applied >= position).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_stream_into_fresh_databases_twice_gives_identical_read_models() {
    let catalog = Catalog::start().await;
    catalog.command.register("ann", "ann-password").await;
    let mut last = 0;
    for n in 0..12 {
        let (sku, _) = catalog.create(camera(n)).await;
        last = catalog
            .update(
                &sku,
                json!({ "price": "77.70", "specs": { "n": "changed" } }),
            )
            .await;
        if n % 3 == 0 {
            let deleted = catalog
                .command
                .delete(
                    &format!("/api/v1/products/{sku}"),
                    Some(&catalog.root.access),
                )
                .await;
            last = deleted.header("x-event-position").unwrap().parse().unwrap();
        }
    }
    let live = shared::mongo::connect(&catalog.env.mongo, "tests")
        .await
        .unwrap();
    wait_applied(&live, last).await;
    let original = dump(&live).await;
    assert_eq!(
        original[0].1.len(),
        12,
        "every product, deleted ones as tombstones"
    );
    assert_eq!(original[1].1.len(), 12 * 2 + 4);

    let replays = replay_twice(&catalog, last).await;
    assert!(replays[0] == replays[1], "two replays differ");
    assert!(
        replays[0] == original,
        "a replay differs from the live read models"
    );

    // Redeliver everything into the live database: a new consumer from the start of the stream.
    catalog.projector.unwrap().stop().await.unwrap();
    let js = catalog.env.jetstream().await;
    js.get_stream(catalog.env.prefix.events_stream())
        .await
        .unwrap()
        .delete_consumer(projector::consumer::CONSUMER)
        .await
        .unwrap();
    live.collection::<mongodb::bson::Document>(read_model::CHECKPOINTS)
        .delete_many(doc! {})
        .await
        .unwrap();
    let _again = catalog.env.spawn_projector().await;
    wait_applied(&live, last).await;
    assert!(
        dump(&live).await == original,
        "redelivery changed the read models"
    );
}

/// Projects the whole stream into two fresh databases, one after the other; their dumps.
pub async fn replay_twice(catalog: &Catalog, last: i64) -> Vec<Vec<(String, Vec<Vec<u8>>)>> {
    let mut replays = Vec::new();
    for name in ["replay_a", "replay_b"] {
        let mongo = MongoConfig {
            url: catalog.env.mongo.url.clone(),
            db: format!("{}_{name}", catalog.env.mongo.db),
        };
        let db = shared::mongo::connect(&mongo, "tests").await.unwrap();
        let projector = catalog.env.spawn_projector_into(mongo, name).await;
        wait_applied(&db, last).await;
        replays.push(dump(&db).await);
        projector.stop().await.unwrap();
        db.drop().await.unwrap();
    }
    replays
}
