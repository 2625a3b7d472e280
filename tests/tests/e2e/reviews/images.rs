//! Images: judged by their bytes, limited while streaming, stored once by content, served back
//! byte for byte with the right type and immutable caching.

use std::path::Path;

use camreviews_tests::{Api, Reply, Tokens};
use reqwest::multipart::{Form, Part};

use super::{id, position, publish, publisher};
use crate::catalog::{Catalog, camera};

pub(super) const PNG: &[u8] = include_bytes!("../../../fixtures/camera.png");
pub(super) const JPEG: &[u8] = include_bytes!("../../../fixtures/camera.jpg");
pub(super) const WEBP: &[u8] = include_bytes!("../../../fixtures/camera.webp");
/// `TestEnv`'s `MAX_IMAGE_BYTES`.
const LIMIT: usize = 200_000;

pub(super) async fn upload(
    api: &Api,
    token: &Tokens,
    review: &str,
    bytes: Vec<u8>,
    name: &str,
    declared: &str,
) -> Reply {
    let part = Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str(declared)
        .unwrap();
    let response = api
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/reviews/{review}/images"),
        )
        .bearer_auth(&token.access)
        .multipart(Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    Api::reply(response).await
}

/// Every stored blob (content-addressed files) under the blob directory.
pub(super) fn blobs(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(shards) = std::fs::read_dir(dir) {
        for shard in shards.flatten() {
            for file in std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = file.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') {
                    found.push(name);
                }
            }
        }
    }
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_images_are_served_back_byte_identical_and_anything_else_is_refused() {
    let catalog = Catalog::start().await;
    let (sku, _) = catalog.create(camera(1)).await;
    let ana = publisher(&catalog, "ana", "south-america").await;
    let review = id(&publish(&catalog.command, &ana, &sku, 5).await);
    let blob_dir = catalog.env.data_dir().join("blobs");

    let mut last = 0;
    for (bytes, declared, kind, (width, height)) in [
        (PNG, "image/png", "image/png", (64, 48)),
        // The declared type is ignored: the bytes say JPEG.
        (JPEG, "application/octet-stream", "image/jpeg", (80, 60)),
        (WEBP, "image/png", "image/webp", (32, 24)),
    ] {
        let uploaded = upload(
            &catalog.command,
            &ana,
            &review,
            bytes.to_vec(),
            "photo",
            declared,
        )
        .await;
        assert_eq!(uploaded.status, 201, "{:?}", uploaded.body);
        assert_eq!(uploaded.body["content_type"], kind);
        assert_eq!(uploaded.body["bytes"], bytes.len());
        assert_eq!(uploaded.body["width"], width);
        assert_eq!(uploaded.body["height"], height);
        let url = uploaded.body["url"].as_str().unwrap().to_owned();
        last = position(&uploaded);
        catalog.read_at("/api/v1/reviews", last, None).await;

        let served = catalog
            .query
            .request(reqwest::Method::GET, &url)
            .send()
            .await
            .unwrap();
        assert_eq!(served.status(), 200, "{url}");
        assert_eq!(served.headers()["content-type"], kind);
        assert_eq!(
            served.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let tag = served.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(
            served.bytes().await.unwrap().as_ref(),
            bytes,
            "byte-identical"
        );
        let again = catalog
            .query
            .request(reqwest::Method::GET, &url)
            .header("if-none-match", tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304);
    }
    assert_eq!(blobs(&blob_dir).len(), 3);

    // The same bytes again: a new image of the review, stored once.
    let twice = upload(
        &catalog.command,
        &ana,
        &review,
        PNG.to_vec(),
        "again.png",
        "image/png",
    )
    .await;
    assert_eq!(twice.status, 201);
    assert_eq!(blobs(&blob_dir).len(), 3);

    // Text named like an image.
    let text = upload(
        &catalog.command,
        &ana,
        &review,
        b"just some text".to_vec(),
        "x.png",
        "image/png",
    )
    .await;
    assert_eq!(text.status, 415);
    assert_eq!(text.code(), "unsupported_media_type");

    // One byte over the limit (a PNG padded after its end): 413, nothing stored.
    let mut big = PNG.to_vec();
    big.resize(LIMIT + 1, 0);
    let refused = upload(
        &catalog.command,
        &ana,
        &review,
        big.clone(),
        "big.png",
        "image/png",
    )
    .await;
    assert_eq!(refused.status, 413, "{:?}", refused.body);
    assert_eq!(refused.code(), "payload_too_large");
    assert_eq!(blobs(&blob_dir).len(), 3);
    // Exactly at the limit is fine.
    big.truncate(LIMIT);
    let at_limit = upload(
        &catalog.command,
        &ana,
        &review,
        big,
        "limit.png",
        "image/png",
    )
    .await;
    assert_eq!(at_limit.status, 201, "{:?}", at_limit.body);

    // Someone else cannot add images; a missing review is 404.
    let bob = publisher(&catalog, "bob", "south-america").await;
    let theirs = upload(
        &catalog.command,
        &bob,
        &review,
        PNG.to_vec(),
        "p.png",
        "image/png",
    )
    .await;
    assert_eq!(theirs.status, 403);
    let missing = upload(
        &catalog.command,
        &ana,
        &uuid::Uuid::new_v4().to_string(),
        PNG.to_vec(),
        "p.png",
        "image/png",
    )
    .await;
    assert_eq!(missing.status, 404);

    // Up to 10 images; the 11th is 422.
    for _ in 0..5 {
        let more = upload(
            &catalog.command,
            &ana,
            &review,
            JPEG.to_vec(),
            "j.jpg",
            "image/jpeg",
        )
        .await;
        assert_eq!(more.status, 201);
    }
    let eleventh = upload(
        &catalog.command,
        &ana,
        &review,
        JPEG.to_vec(),
        "j.jpg",
        "image/jpeg",
    )
    .await;
    assert_eq!(eleventh.status, 422, "{:?}", eleventh.body);
    assert_eq!(eleventh.code(), "validation_failed");

    // The review lists its ten images; removing one serves it no more.
    let shown = catalog
        .read_at(&format!("/api/v1/reviews/{review}"), last, None)
        .await;
    let shown = eventually_images(&catalog, &review, 10)
        .await
        .unwrap_or(shown);
    let images = shown.body["images"].as_array().unwrap().clone();
    assert_eq!(images.len(), 10);
    let first = images[0]["image_id"].as_str().unwrap();
    let removed = catalog
        .command
        .delete(
            &format!("/api/v1/reviews/{review}/images/{first}"),
            Some(&ana.access),
        )
        .await;
    assert_eq!(removed.status, 204);
    catalog
        .read_at("/api/v1/reviews", position(&removed), None)
        .await;
    assert_eq!(
        catalog
            .query
            .get(&format!("/api/v1/images/{first}"), None)
            .await
            .status,
        404
    );
    let shown = catalog
        .query
        .get(&format!("/api/v1/reviews/{review}"), None)
        .await;
    assert_eq!(shown.body["images"].as_array().unwrap().len(), 9);
}

async fn eventually_images(catalog: &Catalog, review: &str, count: usize) -> Option<Reply> {
    for _ in 0..100 {
        let shown = catalog
            .query
            .get(&format!("/api/v1/reviews/{review}"), None)
            .await;
        if shown.body["images"].as_array().map(Vec::len) == Some(count) {
            return Some(shown);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    None
}
