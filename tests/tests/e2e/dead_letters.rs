//! Dead letters: a poison event is parked in `DLQ` with its error and original subject while
//! other aggregates flow; once the cause is fixed, `camctl dlq requeue` applies it.

use std::time::Duration;

use camreviews_tests::eventually;
use mongodb::bson::{Document, doc};
use serde_json::{Value, json};
use shared::read_model;

use crate::{
    catalog::{Catalog, camera, replay::wait_applied},
    ctl::camctl,
};

async fn letters(catalog: &Catalog) -> Vec<Value> {
    let (code, stdout, stderr) =
        camctl(&catalog.env, &["dlq", "list", "--format", "ndjson"], "").await;
    assert_eq!(code, 0, "{stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_parked_others_flow_and_requeue_applies_it_after_the_fix() {
    let catalog = Catalog::start().await;
    let (poisoned, _) = catalog.create(camera(1)).await;
    let (healthy, position) = catalog.create(camera(2)).await;
    let live = shared::mongo::connect(&catalog.env.mongo, "tests")
        .await
        .unwrap();
    wait_applied(&live, position).await;

    // Someone "fixed" a price by hand in the read model, as a number: the next update of that
    // product cannot be folded (its price is no decimal string any more).
    let products = read_model::Collections::current(&live)
        .await
        .unwrap()
        .collection::<Document>(&live, read_model::PRODUCTS);
    products
        .update_one(
            doc! { "_id": &poisoned },
            doc! { "$set": { read_model::product_fields::PRICE: 12.5 } },
        )
        .await
        .unwrap();
    catalog
        .update(&poisoned, json!({ "name": "Poisoned update" }))
        .await;

    // Other products flow meanwhile.
    for n in 0..3 {
        catalog
            .update(&healthy, json!({ "name": format!("Healthy {n}") }))
            .await;
    }
    eventually(Duration::from_secs(10), || async {
        let detail = catalog
            .query
            .get(
                &format!("/api/v1/products/{healthy}"),
                Some(&catalog.root.access),
            )
            .await;
        (detail.body["name"] == "Healthy 2").then_some(())
    })
    .await;

    // After its retries, the poison event is parked with the reason and where it came from.
    let parked = eventually(Duration::from_secs(60), || async {
        let parked = letters(&catalog).await;
        (!parked.is_empty()).then_some(parked)
    })
    .await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    let letter = &parked[0];
    assert_eq!(letter["consumer"], "projector");
    assert_eq!(letter["event_type"], "ProductUpdated");
    assert_eq!(
        letter["original_subject"],
        catalog
            .env
            .prefix
            .event_subject("product", &poisoned, "ProductUpdated")
    );
    assert!(
        letter["error"].as_str().unwrap().contains("price"),
        "{letter}"
    );
    let (_, table, _) = camctl(&catalog.env, &["dlq", "list"], "").await;
    assert!(
        table.contains("1 parked") && table.contains("ProductUpdated"),
        "{table}"
    );
    let (_, status, _) = camctl(
        &catalog.env,
        &["projections", "status", "--format", "json"],
        "",
    )
    .await;
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["dead_letters"]["projector"], 1);

    // Nothing to requeue that is not there.
    let (code, _, _) = camctl(&catalog.env, &["dlq", "requeue", "--seq", "999"], "").await;
    assert_eq!(code, 3);

    // The fix: the document's price is a decimal string again. Then requeue.
    products
        .update_one(
            doc! { "_id": &poisoned },
            doc! { "$set": { read_model::product_fields::PRICE: "5995.00" } },
        )
        .await
        .unwrap();
    let sequence = letter["sequence"].as_u64().unwrap().to_string();
    let (code, stdout, stderr) =
        camctl(&catalog.env, &["dlq", "requeue", "--seq", &sequence], "").await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("requeued"), "{stdout}");
    eventually(Duration::from_secs(20), || async {
        let detail = catalog
            .query
            .get(
                &format!("/api/v1/products/{poisoned}"),
                Some(&catalog.root.access),
            )
            .await;
        (detail.body["name"] == "Poisoned update").then_some(())
    })
    .await;
    assert!(
        letters(&catalog).await.is_empty(),
        "requeued letters leave the DLQ"
    );
    let (code, _, _) = camctl(&catalog.env, &["dlq", "requeue", "--all"], "").await;
    assert_eq!(code, 3, "nothing left to requeue");
}
