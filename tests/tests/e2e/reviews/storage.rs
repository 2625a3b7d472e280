//! What keeps image storage and image reads bounded (issue 15): unreferenced bytes are
//! collected, uploads have an hourly quota, metadata is stripped, and image answers refuse
//! query strings and say `nosniff`.

use std::time::Duration;

use reqwest::Method;

use super::{
    id,
    images::{JPEG, PNG, WEBP, blobs, upload},
    position, publish, publisher,
};
use crate::catalog::{Catalog, camera};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bytes_of_removed_images_are_collected_after_the_grace_period() {
    let env = camreviews_tests::TestEnv::new().await;
    let config = command_api::Config {
        blob_gc_grace: Duration::from_secs(2),
        ..env.command_api_config()
    };
    let catalog = Catalog::start_with(env, config, true).await;
    let (sku, _) = catalog.create(camera(1)).await;
    let ana = publisher(&catalog, "ana", "south-america").await;
    let kept_review = id(&publish(&catalog.command, &ana, &sku, 5).await);
    let deleted_review = id(&publish(&catalog.command, &ana, &sku, 4).await);
    let blob_dir = catalog.env.data_dir().join("blobs");

    let kept = upload(
        &catalog.command,
        &ana,
        &kept_review,
        PNG.to_vec(),
        "k.png",
        "image/png",
    )
    .await;
    assert_eq!(kept.status, 201, "{:?}", kept.body);
    let removed = upload(
        &catalog.command,
        &ana,
        &kept_review,
        JPEG.to_vec(),
        "r.jpg",
        "image/jpeg",
    )
    .await;
    let with_review = upload(
        &catalog.command,
        &ana,
        &deleted_review,
        WEBP.to_vec(),
        "d.webp",
        "image/webp",
    )
    .await;
    assert_eq!(blobs(&blob_dir).len(), 3);

    let removed_id = removed.body["image_id"].as_str().unwrap();
    let gone = catalog
        .command
        .delete(
            &format!("/api/v1/reviews/{kept_review}/images/{removed_id}"),
            Some(&ana.access),
        )
        .await;
    assert_eq!(gone.status, 204);
    let deleted = catalog
        .command
        .delete(
            &format!("/api/v1/reviews/{deleted_review}"),
            Some(&ana.access),
        )
        .await;
    assert_eq!(deleted.status, 204, "{:?}", deleted.body);
    assert_eq!(with_review.status, 201);

    // Within the grace period and a few collection rounds, only the kept image's bytes remain.
    let remaining = camreviews_tests::eventually(Duration::from_secs(20), || async {
        let found = blobs(&blob_dir);
        (found.len() == 1).then_some(found)
    })
    .await;
    catalog
        .read_at("/api/v1/reviews", position(&deleted), None)
        .await;
    let served = catalog
        .query
        .request(Method::GET, kept.body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap().as_ref(), PNG);
    assert_eq!(remaining.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_the_hourly_quota_are_429_for_that_user_alone() {
    let env = camreviews_tests::TestEnv::new().await;
    let config = command_api::Config {
        upload_quota: command_api::blob_gc::UploadQuota {
            count: 3,
            bytes: (PNG.len() + JPEG.len() + WEBP.len() - 1) as i64,
        },
        ..env.command_api_config()
    };
    let catalog = Catalog::start_with(env, config, false).await;
    let (sku, _) = catalog.create(camera(1)).await;
    let ana = publisher(&catalog, "ana", "south-america").await;
    let review = id(&publish(&catalog.command, &ana, &sku, 5).await);
    let bob = publisher(&catalog, "bob", "south-america").await;
    let bobs = id(&publish(&catalog.command, &bob, &sku, 3).await);

    for (bytes, kind) in [(PNG, "image/png"), (JPEG, "image/jpeg")] {
        let uploaded = upload(&catalog.command, &ana, &review, bytes.to_vec(), "i", kind).await;
        assert_eq!(uploaded.status, 201, "{:?}", uploaded.body);
    }
    let over_bytes = upload(
        &catalog.command,
        &ana,
        &review,
        WEBP.to_vec(),
        "i",
        "image/webp",
    )
    .await;
    assert_eq!(over_bytes.status, 429, "{:?}", over_bytes.body);
    assert_eq!(over_bytes.code(), "rate_limited");
    let wait: u64 = over_bytes.header("retry-after").unwrap().parse().unwrap();
    assert!((3000..=3600).contains(&wait), "{wait}");

    // Another user is not affected; their own count runs out after three.
    for _ in 0..3 {
        let uploaded = upload(
            &catalog.command,
            &bob,
            &bobs,
            WEBP.to_vec(),
            "w",
            "image/webp",
        )
        .await;
        assert_eq!(uploaded.status, 201, "{:?}", uploaded.body);
    }
    let over_count = upload(
        &catalog.command,
        &bob,
        &bobs,
        WEBP.to_vec(),
        "w",
        "image/webp",
    )
    .await;
    assert_eq!(over_count.status, 429);
}

/// A JPEG with an EXIF segment carrying a GPS position, right after its start marker.
fn with_gps(jpeg: &[u8]) -> Vec<u8> {
    let payload = b"Exif\0\0MM\0*GPSLatitude=48.8584N;GPSLongitude=2.2945E";
    let mut tagged = jpeg[..2].to_vec();
    tagged.extend([0xFF, 0xE1]);
    tagged.extend(u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    tagged.extend(payload);
    tagged.extend(&jpeg[2..]);
    tagged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_lose_their_metadata_refuse_query_strings_and_every_answer_says_nosniff() {
    let catalog = Catalog::start().await;
    let (sku, _) = catalog.create(camera(1)).await;
    let ana = publisher(&catalog, "ana", "south-america").await;
    let review = id(&publish(&catalog.command, &ana, &sku, 5).await);

    let uploaded = upload(
        &catalog.command,
        &ana,
        &review,
        with_gps(JPEG),
        "gps.jpg",
        "image/jpeg",
    )
    .await;
    assert_eq!(uploaded.status, 201, "{:?}", uploaded.body);
    assert_eq!(
        uploaded.body["bytes"],
        JPEG.len(),
        "the EXIF segment is gone"
    );
    let url = uploaded.body["url"].as_str().unwrap().to_owned();
    catalog
        .read_at("/api/v1/reviews", position(&uploaded), None)
        .await;

    let served = catalog
        .query
        .request(Method::GET, &url)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        served.headers()["content-length"],
        JPEG.len().to_string().as_str()
    );
    let bytes = served.bytes().await.unwrap();
    assert!(
        !bytes.windows(3).any(|w| w == b"GPS"),
        "the position was served"
    );
    assert_eq!(bytes.as_ref(), JPEG);

    let busted = catalog.query.get(&format!("{url}?n=1"), None).await;
    assert_eq!(busted.status, 400);
    assert_eq!(busted.code(), "invalid_parameter");

    for (api, path) in [
        (&catalog.query, "/healthz"),
        (&catalog.query, "/api/v1/products/not-a-sku"),
        (&catalog.command, "/healthz"),
        (&catalog.command, "/api/v1/auth/login"),
    ] {
        let answer = api.request(Method::GET, path).send().await.unwrap();
        assert_eq!(
            answer
                .headers()
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{path} answered {}",
            answer.status()
        );
    }
}
