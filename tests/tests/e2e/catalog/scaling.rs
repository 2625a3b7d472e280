//! Two projector processes on one durable consumer: the work is shared and each product's
//! events still apply in version order.

use std::time::Duration;

use camreviews_tests::{Process, TestEnv, eventually, stream};
use serde_json::json;

use super::Catalog;

async fn applied_total(projector: &Process) -> f64 {
    let metrics = reqwest::get(projector.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find(|l| l.starts_with("projector_events_applied_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projectors_share_the_work_and_keep_each_products_order() {
    let env = TestEnv::new().await;
    let catalog = Catalog::start_in(env, false).await;
    let projectors = [
        Process::start("projector", "PROJECTOR_ADDR", &catalog.env.read_side_env()).await,
        Process::start("projector", "PROJECTOR_ADDR", &catalog.env.read_side_env()).await,
    ];

    const PRODUCTS: usize = 16;
    const UPDATES: usize = 12;
    let mut skus = Vec::new();
    for n in 0..PRODUCTS {
        skus.push(catalog.create(super::camera(n)).await.0);
    }
    // Each product's updates in sequence, all products at once.
    let writers = skus.iter().map(|sku| {
        let catalog = &catalog;
        async move {
            let mut last = 0;
            for u in 1..=UPDATES {
                last = catalog
                    .update(
                        sku,
                        json!({ "name": format!("{sku} v{u}"), "price": format!("{u}.00") }),
                    )
                    .await;
            }
            last
        }
    });
    let last = futures::future::join_all(writers)
        .await
        .into_iter()
        .max()
        .unwrap();

    for sku in &skus {
        let shown = catalog
            .read_at(&format!("/api/v1/products/{sku}"), last, None)
            .await;
        assert_eq!(shown.status, 200, "{:?}", shown.body);
        assert_eq!(shown.body["name"], format!("{sku} v{UPDATES}"));
        assert_eq!(shown.body["price"], format!("{UPDATES}.00"));
        assert_eq!(shown.body["version"], UPDATES as i64 + 1);

        let history = catalog
            .read_at(
                &format!("/api/v1/products/{sku}/history"),
                last,
                Some(&catalog.root.access),
            )
            .await;
        let entries = history.body["items"].as_array().unwrap();
        let versions: Vec<i64> = entries
            .iter()
            .map(|e| e["version"].as_i64().unwrap())
            .collect();
        assert_eq!(versions, (1..=UPDATES as i64 + 1).collect::<Vec<_>>());
        let positions: Vec<i64> = entries
            .iter()
            .map(|e| e["position"].as_i64().unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]));
    }

    // Both instances did part of the work, and nothing was given up on.
    let shares = eventually(Duration::from_secs(5), || async {
        let shares = [
            applied_total(&projectors[0]).await,
            applied_total(&projectors[1]).await,
        ];
        (shares.iter().sum::<f64>() >= (PRODUCTS * (UPDATES + 1)) as f64).then_some(shares)
    })
    .await;
    assert!(shares.iter().all(|s| *s > 0.0), "work shared: {shares:?}");
    let js = catalog.env.jetstream().await;
    assert_eq!(
        stream::message_count(&js, &catalog.env.prefix.dlq_stream()).await,
        0
    );
}
