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

    let js = catalog.env.jetstream().await;
    let views_stream = catalog.env.prefix.views_stream();
    stream::wait_for_count(&js, &views_stream, 40, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stream::message_count(&js, &views_stream).await, 40);

    let subjects = stream::read_subjects(&js, &views_stream, 40).await;
    let expected = catalog.env.prefix.view_subject(&sku);
    assert!(subjects.iter().all(|(subject, _)| subject == &expected));
    let view: shared::views::ProductViewed = serde_json::from_slice(&subjects[0].1).unwrap();
    assert_eq!(view.sku.to_string(), sku);
    let ids: std::collections::HashSet<_> = subjects
        .iter()
        .map(|(_, payload)| {
            serde_json::from_slice::<shared::views::ProductViewed>(payload)
                .unwrap()
                .view_id
        })
        .collect();
    assert_eq!(ids.len(), 40, "every view has its own id");
    let _ = other;
}
