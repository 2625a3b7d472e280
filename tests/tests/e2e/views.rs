//! Anonymous views, counted exactly: query-api publishes one `ProductViewed` per anonymous
//! detail read, the notifier tallies them per product and hour, whatever crashes between.

use std::time::Duration;

use camreviews_tests::{Api, NatsServer, Process, Running, TestEnv, eventually};
use serde_json::Value;

use crate::catalog::{Catalog, camera};

const VIEWS: usize = 10_000;

async fn views_of(catalog: &Catalog, sku: &str) -> i64 {
    let shown = catalog
        .query
        .get(
            &format!("/api/v1/products/{sku}"),
            Some(&catalog.root.access),
        )
        .await;
    shown.body["views"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_anonymous_reads_are_ten_thousand_views_across_a_notifier_crash() {
    let catalog = Catalog::start().await;
    let (sku, position) = catalog.create(camera(1)).await;
    let (quiet, _) = catalog.create(camera(2)).await;
    let path = format!("/api/v1/products/{sku}");
    assert_eq!(
        catalog
            .read_at(&path, position, Some(&catalog.root.access))
            .await
            .status,
        200
    );
    let env = catalog.env.read_side_env();
    let mut notifier = Process::start("notifier", "NOTIFIER_ADDR", &env).await;

    let clients = 25; // divides VIEWS
    let per_client = VIEWS / clients;
    let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let readers = (0..clients).map(|_| {
        let (query, path, read) = (catalog.query.clone(), path.clone(), read.clone());
        tokio::spawn(async move {
            for _ in 0..per_client {
                let reply = query.get(&path, None).await;
                assert_eq!(reply.status, 200);
                read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    });
    let readers = futures::future::join_all(readers);
    let crash = async {
        // Mid-way, the notifier is killed (SIGKILL: no clean-up) and a new one takes over.
        while read.load(std::sync::atomic::Ordering::Relaxed) < VIEWS / 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = views_of(&catalog, &sku).await;
        notifier.kill().await;
        assert!(
            before < VIEWS as i64,
            "the crash came while views were still arriving"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        Process::start("notifier", "NOTIFIER_ADDR", &env).await
    };
    let (done, _replacement) = tokio::join!(readers, crash);
    for reader in done {
        reader.unwrap();
    }
    // Signed-in reads are not views.
    for _ in 0..50 {
        catalog.query.get(&path, Some(&catalog.root.access)).await;
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut seen = 0;
    while tokio::time::Instant::now() < deadline {
        seen = views_of(&catalog, &sku).await;
        if seen >= VIEWS as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seen, VIEWS as i64);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(views_of(&catalog, &sku).await, VIEWS as i64, "and no more");
    assert_eq!(views_of(&catalog, &quiet).await, 0);

    // The report sums to the same, by hour and by day.
    for bucket in ["hour", "day"] {
        let report = catalog
            .query
            .get(
                &format!("/api/v1/reports/product-views?sku={sku}&bucket={bucket}"),
                Some(&catalog.root.access),
            )
            .await;
        assert_eq!(report.status, 200, "{:?}", report.body);
        let items = report.body["items"].as_array().unwrap();
        let total: i64 = items.iter().map(|i| i["views"].as_i64().unwrap()).sum();
        assert_eq!(total, VIEWS as i64, "{bucket}");
        assert!(items.iter().all(|i| i["sku"] == Value::String(sku.clone())));
    }
    let anonymous = catalog
        .query
        .get("/api/v1/reports/product-views", None)
        .await;
    assert_eq!(anonymous.status, 401);
    let bad = catalog
        .query
        .get(
            "/api/v1/reports/product-views?bucket=week",
            Some(&catalog.root.access),
        )
        .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_gone_readers_are_answered_views_wait_in_a_bounded_buffer_and_arrive_after() {
    let mut nats = NatsServer::start().await;
    let mut env = TestEnv::new().await;
    env.nats_url = nats.url();
    let catalog = Catalog::start_in(env, true).await;
    let _notifier = catalog.env.spawn_notifier().await;
    // A replica that holds at most 100 unpublished views.
    let mut config = catalog.env.query_api_config();
    config.views_buffer = 100;
    let app = query_api::Application::build(config).await.unwrap();
    let port = app.port();
    let replica = Running::spawn(port, |shutdown| app.run_until_stopped(shutdown));
    let readers = Api::new(&replica);
    let (sku, position) = catalog.create(camera(1)).await;
    let path = format!("/api/v1/products/{sku}");
    assert_eq!(catalog.read_at(&path, position, None).await.status, 200);
    // One view while NATS is there (the read above was another replica's: 2 in all).
    assert_eq!(readers.get(&path, None).await.status, 200);
    eventually(Duration::from_secs(30), || async {
        (views_of(&catalog, &sku).await == 2).then_some(())
    })
    .await;

    // Counters are per process (both query-apis here share them): compare with now.
    let recorded_before = replica.metric("query_views_recorded_total").await;
    let dropped_before = replica.metric("query_views_dropped_total").await;
    nats.kill().await;
    // 300 anonymous reads without the broker: every one answered, none waiting for it (each
    // would wait out a publish timeout of seconds if it did).
    let started = std::time::Instant::now();
    for _ in 0..300 {
        let reply = readers.get(&path, None).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "reads waited for NATS: {:?}",
        started.elapsed()
    );
    // The buffer kept at most 100 of them (a batch being retried and the queue behind it)
    // and dropped the rest, counted.
    let recorded = replica.metric("query_views_recorded_total").await - recorded_before;
    let dropped = replica.metric("query_views_dropped_total").await - dropped_before;
    assert!((50.0..=100.0).contains(&recorded), "{recorded} kept");
    assert_eq!(recorded + dropped, 300.0);

    // NATS comes back: the buffered views are published once and tallied exactly.
    nats.restart().await;
    let expected = 2 + recorded as i64;
    eventually(Duration::from_secs(60), || async {
        (views_of(&catalog, &sku).await == expected).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(views_of(&catalog, &sku).await, expected, "and no more");
    // The buffer is free again.
    assert_eq!(readers.get(&path, None).await.status, 200);
    eventually(Duration::from_secs(30), || async {
        (views_of(&catalog, &sku).await == expected + 1).then_some(())
    })
    .await;
}
