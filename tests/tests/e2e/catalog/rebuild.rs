//! Zero-downtime rebuild: `camctl projections rebuild` under a steady read load and live
//! writes. No read fails or sees a partial list, the result equals a fresh projection, and
//! the view tallies survive.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use camreviews_tests::{Api, eventually};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use serde_json::json;
use shared::{config::MongoConfig, read_model};

use super::{
    Catalog, camera,
    replay::{dump, wait_applied},
};
use crate::ctl::camctl;

/// Every SKU of the product list, page by page; an error names what went wrong.
async fn list_all(api: &Api) -> Result<Vec<String>, String> {
    let mut skus = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/api/v1/products?limit=100".to_owned(),
            Some(c) => format!("/api/v1/products?limit=100&cursor={c}"),
        };
        let page = api.get(&path, None).await;
        if page.status != 200 {
            return Err(format!("{path}: {} {:?}", page.status, page.body));
        }
        for item in page.body["items"].as_array().into_iter().flatten() {
            skus.push(item["sku"].as_str().unwrap_or_default().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(skus),
        }
    }
}

async fn views(db: &mongodb::Database) -> Vec<Document> {
    db.collection::<Document>(read_model::PRODUCT_VIEWS)
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilding_under_read_load_never_shows_a_partial_model_and_equals_a_fresh_projection() {
    let catalog = Catalog::start().await;
    let _notifier = catalog.env.spawn_notifier().await;
    let mut skus = Vec::new();
    for n in 0..150 {
        skus.push(catalog.create(camera(n)).await.0);
    }
    // Reviews, so product documents carry rating statistics.
    catalog.command.register("paula", "paula-password").await;
    let paula = catalog.command.login("paula", "paula-password").await;
    for (n, sku) in skus.iter().take(10).enumerate() {
        let review = catalog
            .command
            .post(
                "/api/v1/reviews",
                json!({ "product_sku": sku, "title": "Good", "body": "Sharp lens.", "rating": n % 5 + 1 }),
                Some(&paula.access),
            )
            .await;
        assert_eq!(review.status, 201, "{:?}", review.body);
    }
    let last = catalog.update(&skus[0], json!({ "name": "Renamed" })).await;
    let live = shared::mongo::connect(&catalog.env.mongo, "tests")
        .await
        .unwrap();
    wait_applied(&live, last).await;
    // Anonymous views, tallied by the notifier.
    for sku in skus.iter().take(3) {
        for _ in 0..2 {
            let detail = catalog
                .query
                .get(&format!("/api/v1/products/{sku}"), None)
                .await;
            assert_eq!(detail.status, 200);
        }
    }
    let tallies = eventually(Duration::from_secs(30), || async {
        let tallies = views(&live).await;
        let total: i64 = tallies
            .iter()
            .map(|d| d.get_i64(read_model::views_fields::VIEWS).unwrap_or(0))
            .sum();
        (total == 6).then_some(tallies)
    })
    .await;

    // Steady reads: whole listings and details, checked each time.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for reader in 0..2 {
        // Signed in, so the details add no views.
        let (api, stop, reads, skus, token) = (
            Api::new(&catalog.query_api),
            stop.clone(),
            reads.clone(),
            skus.clone(),
            paula.access.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut n = reader;
            while !stop.load(Ordering::Relaxed) {
                let listed = list_all(&api).await?;
                if let Some(missing) = skus.iter().find(|s| !listed.contains(s)) {
                    return Err(format!("a listing of {} lacks {missing}", listed.len()));
                }
                let sku = &skus[n % skus.len()];
                let detail = api
                    .get(&format!("/api/v1/products/{sku}"), Some(&token))
                    .await;
                if detail.status != 200 {
                    return Err(format!("detail {sku}: {} {:?}", detail.status, detail.body));
                }
                reads.fetch_add(2, Ordering::Relaxed);
                n += 2;
            }
            Ok::<_, String>(())
        }));
    }
    // Live writes during the rebuild; each update is read back with X-Min-Position and must
    // never be missing, before, during or after the switch.
    let written: Arc<std::sync::Mutex<Vec<(String, i64)>>> = Arc::default();
    let checker = {
        let (api, stop, written, token) = (
            Api::new(&catalog.query_api),
            stop.clone(),
            written.clone(),
            paula.access.clone(),
        );
        tokio::spawn(async move {
            let mut checked = 0;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<(String, i64)> = written.lock().unwrap().clone();
                for (sku, position) in batch {
                    let detail = Api::reply(
                        api.request(reqwest::Method::GET, &format!("/api/v1/products/{sku}"))
                            .header("x-min-position", position.to_string())
                            .header("x-max-wait-ms", "5000")
                            .bearer_auth(&token)
                            .send()
                            .await
                            .unwrap(),
                    )
                    .await;
                    if detail.status != 200 || detail.body["price"] != "42.00" {
                        return Err(format!(
                            "{sku} at position {position}: {} {:?}",
                            detail.status, detail.body
                        ));
                    }
                    checked += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, String>(checked)
        })
    };
    let writer = {
        let (api, token, skus, written) = (
            Api::new(&catalog.command_api),
            catalog.root.access.clone(),
            skus.clone(),
            written.clone(),
        );
        tokio::spawn(async move {
            let mut last = 0;
            for n in 0..20 {
                let created = api
                    .post("/api/v1/products", camera(1000 + n), Some(&token))
                    .await;
                assert_eq!(created.status, 201);
                let updated = api
                    .put(
                        &format!("/api/v1/products/{}", skus[n + 20]),
                        json!({ "price": "42.00" }),
                        Some(&token),
                    )
                    .await;
                assert_eq!(updated.status, 200);
                last = updated.body["position"].as_i64().unwrap();
                written.lock().unwrap().push((skus[n + 20].clone(), last));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            last
        })
    };

    let (code, stdout, stderr) = camctl(
        &catalog.env,
        &["projections", "rebuild", "all", "--progress", "always"],
        "",
    )
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("rebuilt all"), "{stdout}");
    assert!(
        stderr.contains("ETA") && stderr.contains("events/s"),
        "{stderr:?}"
    );
    let last = writer.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap().unwrap();
    }
    let checked = checker.await.unwrap().unwrap();
    assert!(checked >= 20, "every update was read back: {checked}");
    assert!(
        reads.load(Ordering::Relaxed) > 10,
        "the readers were reading"
    );

    // The rebuilt models, settled with what came after, equal a fresh projection.
    wait_applied(&live, last).await;
    let rebuilt = dump(&live).await;
    let fresh_config = MongoConfig {
        url: catalog.env.mongo.url.clone(),
        db: format!("{}_fresh", catalog.env.mongo.db),
    };
    let fresh_db = shared::mongo::connect(&fresh_config, "tests")
        .await
        .unwrap();
    let fresh_projector = catalog
        .env
        .spawn_projector_into(fresh_config, "fresh")
        .await;
    wait_applied(&fresh_db, last).await;
    let fresh = dump(&fresh_db).await;
    fresh_projector.stop().await.unwrap();
    fresh_db.drop().await.unwrap();
    assert_eq!(rebuilt[0].1.len(), 170, "every product");
    assert!(
        rebuilt == fresh,
        "the rebuilt read models differ from a fresh projection"
    );
    assert_eq!(
        views(&live).await,
        tallies,
        "view tallies survive a rebuild"
    );
    // Exactly one copy of each read model is left: the one the catalog names, a new one.
    let catalog_names = read_model::Collections::current(&live).await.unwrap();
    let mut names = live.list_collection_names().await.unwrap();
    names.sort();
    for base in read_model::REBUILT {
        let copies: Vec<&String> = names
            .iter()
            .filter(|n| *n == base || n.starts_with(&format!("{base}__")))
            .collect();
        assert_eq!(
            copies,
            [catalog_names.name(base)],
            "one copy of {base}, switched in: {names:?}"
        );
        assert_ne!(catalog_names.name(base), base, "{base} was switched");
    }

    // The status shows the rebuild; a second rebuild while one holds the lock is refused.
    let (_, status, _) = camctl(&catalog.env, &["projections", "status"], "").await;
    assert!(!status.contains("never"), "{status}");
    live.collection::<Document>("projector_rebuilds")
        .insert_one(doc! { "_id": "lock", "since": mongodb::bson::DateTime::now(), "host": "elsewhere", "pid": 1_i64 })
        .await
        .unwrap();
    let (code, _, stderr) = camctl(&catalog.env, &["projections", "rebuild", "users"], "").await;
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("another rebuild"), "{stderr}");
    let (code, _, stderr) = camctl(
        &catalog.env,
        &["projections", "rebuild", "users", "--break-lock"],
        "",
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
}
