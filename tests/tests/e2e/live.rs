//! Live notifications: an admin on the SSE stream sees product changes as they happen; a
//! logout closes the stream.

use std::time::{Duration, Instant};

use camreviews_tests::Api;
use serde_json::{Value, json};

use crate::catalog::{Catalog, camera};

/// Reads SSE `data:` lines until one satisfies `wanted`, or the stream ends, or `within`.
async fn next_data(
    response: &mut reqwest::Response,
    buffer: &mut String,
    within: Duration,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) {
                if let Ok(value) = serde_json::from_str(data.trim()) {
                    return Some(value);
                }
            }
            continue;
        }
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sees_a_product_change_within_a_second_and_a_logout_closes_the_stream() {
    let catalog = Catalog::start().await;
    let notifier = Api::new(&catalog.env.spawn_notifier().await);
    let (sku, _) = catalog.create(camera(1)).await;

    let anonymous = notifier.get("/api/v1/notifications/stream", None).await;
    assert_eq!(anonymous.status, 401);
    catalog.command.register("pia", "pia-password").await;
    let publisher = catalog.command.login("pia", "pia-password").await;
    let refused = notifier
        .get("/api/v1/notifications/stream", Some(&publisher.access))
        .await;
    assert_eq!(refused.status, 403);

    let watcher = catalog
        .command
        .login(
            camreviews_tests::TestEnv::SUPERUSER.0,
            camreviews_tests::TestEnv::SUPERUSER.1,
        )
        .await;
    let mut stream = notifier
        .request(reqwest::Method::GET, "/api/v1/notifications/stream")
        .bearer_auth(&watcher.access)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    let changed = Instant::now();
    let position = catalog.update(&sku, json!({ "name": "Renamed" })).await;
    let mut buffer = String::new();
    let seen = next_data(&mut stream, &mut buffer, Duration::from_secs(2))
        .await
        .expect("a notification");
    assert!(
        changed.elapsed() < Duration::from_secs(1),
        "took {:?}",
        changed.elapsed()
    );
    assert_eq!(seen["event_type"], "ProductUpdated");
    assert_eq!(seen["sku"], sku.as_str());
    assert_eq!(seen["name"], "Renamed");
    assert_eq!(seen["position"], position);
    assert_eq!(seen["actor"]["role"], "admin");
    assert!(seen["occurred_at"].is_string());

    // The watcher logs out: the stream ends.
    let logout = catalog
        .command
        .post("/api/v1/auth/logout", json!({}), Some(&watcher.access))
        .await;
    assert_eq!(logout.status, 204);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.chunk().await {
                Ok(Some(_)) => continue,
                _ => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream was not closed after logout");
}
