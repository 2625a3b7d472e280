//! Reads keep working when the write side is down, and through a short MongoDB outage for
//! what was read recently.

use std::time::Duration;

use camreviews_tests::{MongoServer, NatsServer, TestEnv};
use sqlx::{Connection, PgConnection};

use super::Catalog;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_reads_are_answered_with_postgresql_and_nats_gone() {
    let mut nats = NatsServer::start().await;
    let mut env = TestEnv::new().await;
    env.nats_url = nats.url();
    let catalog = Catalog::start_in(env, true).await;
    let (sku, _) = catalog.create(super::camera(1)).await;
    let (_, position) = catalog.create(super::camera(2)).await;
    let path = format!("/api/v1/products/{sku}");
    assert_eq!(catalog.read_at(&path, position, None).await.status, 200);

    // The write side goes away: command-api stops, its database is dropped, NATS is killed.
    let Catalog {
        env,
        query,
        root,
        command_api,
        projector,
        query_api: _query_api,
        ..
    } = catalog;
    command_api.stop().await.unwrap();
    projector.unwrap().stop().await.unwrap();
    let admin_url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    let db_name = url::Url::parse(&env.database_url).unwrap().path()[1..].to_owned();
    sqlx::query(&format!("DROP DATABASE {db_name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    nats.kill().await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let detail = query.get(&path, None).await;
    assert_eq!(detail.status, 200, "{:?}", detail.body);
    assert_eq!(detail.body["sku"], sku.as_str());
    let list = query.get("/api/v1/products?limit=10", None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    let signed_in = query.get(&path, Some(&root.access)).await;
    assert_eq!(
        signed_in.status, 200,
        "tokens verify without the write side"
    );
    let history = query
        .get(&format!("{path}/history"), Some(&root.access))
        .await;
    assert_eq!(history.status, 200);
    let caught_up = query
        .request(reqwest::Method::GET, &path)
        .header("x-min-position", position.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(caught_up.status(), 200);

    // Still ready: it serves reads; NATS is reported, not required.
    let ready = query.get("/readyz", None).await;
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    assert!(
        ready.body["degraded"]["nats"].is_string(),
        "{:?}",
        ready.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_mongodb_is_unreachable_recent_reads_are_served_and_the_rest_is_503() {
    let mongo = MongoServer::start().await;
    let mut env = TestEnv::new().await;
    env.mongo.url = mongo.url();
    let catalog = Catalog::start_in(env, true).await;
    let (seen, _) = catalog.create(super::camera(1)).await;
    let (unseen, position) = catalog.create(super::camera(2)).await;
    let seen_path = format!("/api/v1/products/{seen}");
    let unseen_path = format!("/api/v1/products/{unseen}");
    let before = catalog.read_at(&seen_path, position, None).await;
    assert_eq!(before.status, 200);
    let list_before = catalog.query.get("/api/v1/products", None).await;

    mongo.pause().await;

    let cached = catalog.query.get(&seen_path, None).await;
    assert_eq!(cached.status, 200, "{:?}", cached.body);
    assert_eq!(cached.body["name"], before.body["name"]);
    let list = catalog.query.get("/api/v1/products", None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["items"], list_before.body["items"]);

    let started = std::time::Instant::now();
    let missing = catalog.query.get(&unseen_path, None).await;
    assert_eq!(missing.status, 503, "{:?}", missing.body);
    assert_eq!(missing.code(), "unavailable");
    assert!(missing.header("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered without hanging"
    );
    let filtered = catalog
        .query
        .get("/api/v1/products?brand=nikon", None)
        .await;
    assert_eq!(filtered.status, 503);

    // MongoDB comes back: everything is read from it again.
    mongo.resume().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let back = loop {
        let reply = catalog.query.get(&unseen_path, None).await;
        if reply.status == 200 || std::time::Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(back.status, 200, "{:?}", back.body);
    assert_eq!(back.body["sku"], unseen.as_str());
}
