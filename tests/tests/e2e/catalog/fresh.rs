//! Reads served from query-api's memory stay exact: never older than the position they
//! report, on every replica, after a late start and after being cut off from NATS.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use camreviews_tests::{Api, NatsServer, Reply, TestEnv};
use mongodb::bson::{Document, doc};
use serde_json::{Value, json};
use shared::read_model;
use tokio::net::{TcpListener, TcpStream};

use super::{Catalog, camera};
use crate::ctl::camctl;

fn position_of(reply: &Reply) -> i64 {
    reply
        .header("x-projection-position")
        .and_then(|p| p.parse().ok())
        .expect("every answer reports its position")
}

/// The product's version in a detail answer or in a list page that holds it.
fn version_in(reply: &Reply, sku: &str) -> Option<i64> {
    if let Some(items) = reply.body["items"].as_array() {
        return items
            .iter()
            .find(|p| p["sku"] == sku)
            .and_then(|p| p["version"].as_i64());
    }
    reply.body["version"].as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_hammering_a_product_never_see_its_version_go_back_and_see_the_last_update_at_once()
{
    let catalog = Catalog::start().await;
    let (sku, position) = catalog.create(camera(1)).await;
    let detail = format!("/api/v1/products/{sku}");
    let list = "/api/v1/products?limit=20";
    assert_eq!(catalog.read_at(&detail, position, None).await.status, 200);

    let writing = Arc::new(AtomicBool::new(true));
    let readers: Vec<_> = (0..4)
        .map(|n| {
            let (query, writing, sku, detail) = (
                catalog.query.clone(),
                writing.clone(),
                sku.clone(),
                detail.clone(),
            );
            tokio::spawn(async move {
                let (mut highest, mut reads) = (0, 0);
                while writing.load(Ordering::Relaxed) {
                    let path = if n % 2 == 0 { detail.as_str() } else { list };
                    let reply = query.get(path, None).await;
                    assert_eq!(reply.status, 200, "{:?}", reply.body);
                    let version = version_in(&reply, &sku).expect("the product is there");
                    assert!(
                        version >= highest,
                        "{path}: version {version} after {highest}"
                    );
                    highest = version;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut last = 0;
    for n in 0..200 {
        last = catalog
            .update(&sku, json!({ "price": format!("{}.00", 100 + n) }))
            .await;
    }
    writing.store(false, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.await.unwrap() > 10, "the readers were reading");
    }
    for path in [detail.as_str(), list] {
        for _ in 0..3 {
            let reply = catalog.read_at(path, last, None).await;
            assert_eq!(version_in(&reply, &sku), Some(201), "{path}");
        }
    }
    assert!(
        catalog.query_api.metric("query_cache_hits_total").await > 0.0,
        "reads were answered from memory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_is_404_on_every_replica_once_its_position_is_reported() {
    let catalog = Catalog::start().await;
    let second = catalog.env.spawn_query_api().await;
    let replicas = [catalog.query.clone(), Api::new(&second)];
    let (sku, position) = catalog.create(camera(1)).await;
    let path = format!("/api/v1/products/{sku}");
    // Both replicas hold the product in memory.
    for replica in &replicas {
        for _ in 0..3 {
            let reply = replica.get(&path, None).await;
            if position_of(&reply) >= position {
                assert_eq!(reply.status, 200);
            }
        }
    }
    let deleted = catalog
        .command
        .delete(&path, Some(&catalog.root.access))
        .await;
    assert_eq!(deleted.status, 204);
    let gone: i64 = deleted.header("x-event-position").unwrap().parse().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for replica in &replicas {
        // The store may be ahead of the position reported (a 404 before it is fine); never a
        // 200 once the deletion's position is reported, nor once a 404 was seen.
        let mut seen_gone = false;
        loop {
            let reply = replica.get(&path, None).await;
            if position_of(&reply) >= gone {
                assert_eq!(reply.status, 404, "{:?}", reply.body);
                break;
            }
            assert!(
                !(seen_gone && reply.status == 200),
                "a deleted product came back"
            );
            seen_gone |= reply.status == 404;
            assert!(
                tokio::time::Instant::now() < deadline,
                "the deletion never showed"
            );
        }
        let reply = Api::reply(
            replica
                .request(reqwest::Method::GET, &path)
                .header("x-min-position", gone.to_string())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 404);
    }
}

/// A TCP proxy that can cut every connection through it, and refuse new ones, for a while.
struct Link {
    port: u16,
    open: Arc<AtomicBool>,
    cut: Arc<tokio::sync::Notify>,
}

impl Link {
    async fn to(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, cut) = (
            Arc::new(AtomicBool::new(true)),
            Arc::new(tokio::sync::Notify::new()),
        );
        let (accepting, cutting) = (open.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let (target, cutting) = (target.clone(), cutting.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cutting.notified() => {}
                    }
                });
            }
        });
        Self { port, open, cut }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_late_or_cut_off_from_nats_serves_nothing_stale() {
    let nats = NatsServer::start().await;
    let mut env = TestEnv::new().await;
    env.nats_url = nats.url();
    let catalog = Catalog::start_in(env, true).await;
    // 5,000 events: 50 products, 99 updates each, from 8 writers.
    let mut skus = Vec::new();
    for n in 0..50 {
        skus.push(catalog.create(camera(n)).await.0);
    }
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (command, token, skus) = (
                catalog.command.clone(),
                catalog.root.access.clone(),
                skus.clone(),
            );
            tokio::spawn(async move {
                let mut last = 0;
                for (i, sku) in skus.iter().enumerate().filter(|(i, _)| i % 8 == w) {
                    for v in 0..99 {
                        let updated = command
                            .put(
                                &format!("/api/v1/products/{sku}"),
                                json!({ "price": format!("{}.{:02}", i, v) }),
                                Some(&token),
                            )
                            .await;
                        assert_eq!(updated.status, 200, "{:?}", updated.body);
                        last = updated.body["position"].as_i64().unwrap();
                    }
                }
                last
            })
        })
        .collect();
    let mut last = 0;
    for writer in writers {
        last = last.max(writer.await.unwrap());
    }

    // A replica started now, its NATS link through a proxy that can be cut.
    let link = Link::to(nats.url().trim_start_matches("nats://").to_owned()).await;
    let mut config = catalog.env.query_api_config();
    config.read_side.nats.url = link.url();
    let app = query_api::Application::build(config).await.unwrap();
    let port = app.port();
    let late = camreviews_tests::Running::spawn(port, |shutdown| app.run_until_stopped(shutdown));
    let late_api = Api::new(&late);
    let read_exactly = |at: i64, expected: i64| {
        let (api, skus) = (late_api.clone(), skus.clone());
        async move {
            for sku in &skus {
                for _ in 0..2 {
                    let reply = api
                        .get_at(&format!("/api/v1/products/{sku}"), at, None)
                        .await;
                    assert_eq!(reply.status, 200, "{:?}", reply.body);
                    assert_eq!(reply.body["version"], expected, "{sku}");
                }
            }
        }
    };
    read_exactly(last, 100).await;

    // Cut off from NATS for 10 s while every product changes once more.
    link.cut();
    let mut changed = 0;
    for sku in &skus {
        changed = catalog.update(sku, json!({ "name": "Changed" })).await;
    }
    read_exactly(changed, 101).await;
    // Without X-Min-Position: whatever position an answer reports, it holds that much.
    for sku in &skus {
        let reply = late_api.get(&format!("/api/v1/products/{sku}"), None).await;
        if position_of(&reply) >= changed {
            assert_eq!(reply.body["version"], 101, "{sku}");
        }
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    link.restore();
    for sku in &skus {
        changed = catalog
            .update(sku, json!({ "name": "Changed again" }))
            .await;
    }
    read_exactly(changed, 102).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilds_switch_leaves_no_kept_answer_of_the_old_collections_served() {
    let catalog = Catalog::start().await;
    let (sku, position) = catalog.create(camera(1)).await;
    let detail = format!("/api/v1/products/{sku}");
    let list = "/api/v1/products?limit=20";
    let name = catalog.read_at(&detail, position, None).await.body["name"].clone();
    assert_eq!(name, "Camera 0001");
    // The live read model goes wrong behind the projector's back, with no event to tell
    // anyone: what a rebuild is for.
    let live = shared::mongo::connect(&catalog.env.mongo, "tests")
        .await
        .unwrap();
    let names = read_model::Collections::current(&live).await.unwrap();
    live.collection::<Document>(names.name(read_model::PRODUCTS))
        .update_one(
            doc! { "_id": &sku },
            doc! { "$set": { "name": "Corrupted" } },
        )
        .await
        .unwrap();
    // A replica started now keeps the corrupted answers and serves them from memory.
    let replica = catalog.env.spawn_query_api().await;
    let api = Api::new(&replica);
    let name_in = |reply: &Reply| -> Value {
        match reply.body["items"].as_array() {
            Some(items) => items
                .iter()
                .find(|p| p["sku"] == sku.as_str())
                .map_or(Value::Null, |p| p["name"].clone()),
            None => reply.body["name"].clone(),
        }
    };
    let hits_before = replica.metric("query_cache_hits_total").await;
    for path in [detail.as_str(), list] {
        for _ in 0..3 {
            let reply = api.get(path, None).await;
            assert_eq!(name_in(&reply), "Corrupted", "{path}");
        }
    }
    assert!(
        replica.metric("query_cache_hits_total").await >= hits_before + 4.0,
        "kept in memory"
    );

    let (code, stdout, stderr) = camctl(&catalog.env, &["projections", "rebuild", "all"], "").await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // Readers never go by a catalog of collections older than a second: after that, no
    // answer read from the old collections is served.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for path in [detail.as_str(), list] {
        for _ in 0..3 {
            let reply = api.get(path, None).await;
            assert_eq!(reply.status, 200);
            assert_eq!(name_in(&reply), name, "{path}");
        }
    }
}
