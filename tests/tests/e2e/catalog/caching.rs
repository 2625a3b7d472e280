//! HTTP caching on anonymous reads, and anonymous detail reads counted as views on `VIEWS`.

use std::time::Duration;

use camreviews_tests::stream;
use reqwest::Method;

use super::Catalog;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_reads_carry_etag_and_cache_control_and_revalidate_with_304() {
    let catalog = Catalog::start().await;
    let (sku, position) = catalog.create(super::camera(1)).await;
    let path = format!("/api/v1/products/{sku}");
    catalog.read_at(&path, position, None).await;

    for path in [path.as_str(), "/api/v1/products"] {
        let first = catalog.query.get(path, None).await;
        assert_eq!(first.status, 200);
        let tag = first.header("etag").unwrap().to_owned();
        assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
        let policy = first.header("cache-control").unwrap();
        assert!(policy.starts_with("public, max-age="), "{policy}");
        assert!(policy.contains("stale-while-revalidate="), "{policy}");

        let again = catalog
            .query
            .request(Method::GET, path)
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()["etag"], tag.as_str());
        assert!(again.bytes().await.unwrap().is_empty());

        let stale = catalog
            .query
            .request(Method::GET, path)
            .header("if-none-match", "\"something-else\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), 200);
    }

    let signed_in = catalog.query.get(&path, Some(&catalog.root.access)).await;
    assert_eq!(signed_in.header("cache-control"), Some("private, no-cache"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_anonymous_detail_read_publishes_one_view_and_signed_in_reads_none() {
    let catalog = Catalog::start().await;
    let (sku, position) = catalog.create(super::camera(1)).await;
    let (other, _) = catalog.create(super::camera(2)).await;
    let path = format!("/api/v1/products/{sku}");
    // Signed in: not a view. (This read also waits for the projection.)
    let shown = catalog
        .read_at(&path, position, Some(&catalog.root.access))
        .await;
    assert_eq!(shown.status, 200);

    let reads = (0..40).map(|_| catalog.query.get(&path, None));
    for reply in futures::future::join_all(reads).await {
        assert_eq!(reply.status, 200);
    }
    for _ in 0..5 {
        catalog.query.get(&path, Some(&catalog.root.access)).await;
        catalog.query.get("/api/v1/products", None).await; // lists are not views
    }
    let missing = catalog
        .query
        .get(&format!("/api/v1/products/{}", uuid::Uuid::new_v4()), None)
        .await;
    assert_eq!(missing.status, 404);

    // One message per product and publishing round, each carrying its count: 40 in all.
    let js = catalog.env.jetstream().await;
    let views_stream = catalog.env.prefix.views_stream();
    let published = || async {
        let messages = stream::message_count(&js, &views_stream).await;
        let subjects = if messages == 0 {
            Vec::new()
        } else {
            stream::read_subjects(&js, &views_stream, messages as usize).await
        };
        let views: Vec<shared::views::ProductViewed> = subjects
            .iter()
            .map(|(_, payload)| serde_json::from_slice(payload).unwrap())
            .collect();
        (subjects, views)
    };
    camreviews_tests::eventually(Duration::from_secs(10), || async {
        let (_, views) = published().await;
        (views.iter().map(|v| v.count).sum::<u32>() == 40).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (subjects, views) = published().await;
    assert_eq!(
        views.iter().map(|v| v.count).sum::<u32>(),
        40,
        "and no more"
    );
    assert!(views.len() < 40, "gathered: {} messages", views.len());
    let expected = catalog.env.prefix.view_subject(&sku);
    assert!(subjects.iter().all(|(subject, _)| subject == &expected));
    assert!(views.iter().all(|v| v.sku.to_string() == sku));
    let ids: std::collections::HashSet<_> = views.iter().map(|v| v.view_id).collect();
    assert_eq!(ids.len(), views.len(), "every message has its own id");
    let _ = other;
}
