//! Every process starts, reports health, readiness and metrics, stops cleanly on a signal,
//! and refuses bad configuration at start-up with one line naming the variable.

use std::{process::Stdio, time::Duration};

use camreviews_tests::{Running, TestEnv, binary, free_port};
use tokio::process::Command;

async fn wait_ready(client: &reqwest::Client, service: &Running) -> reqwest::Response {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let response = client.get(service.url("/readyz")).send().await.unwrap();
        if response.status() == 200 || tokio::time::Instant::now() > deadline {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_reports_health_readiness_and_metrics_then_stops_cleanly() {
    let env = TestEnv::new().await;
    let client = reqwest::Client::new();
    let services = [
        ("command-api", env.spawn_command_api().await),
        ("query-api", env.spawn_query_api().await),
        ("projector", env.spawn_projector().await),
        ("notifier", env.spawn_notifier().await),
    ];
    for (name, service) in &services {
        let health = client.get(service.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200, "{name} /healthz");
        let ready = wait_ready(&client, service).await;
        assert_eq!(
            ready.status(),
            200,
            "{name} /readyz: {}",
            ready.text().await.unwrap()
        );
        let metrics = client.get(service.url("/metrics")).send().await.unwrap();
        assert_eq!(metrics.status(), 200, "{name} /metrics");
        assert!(
            metrics.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
    }
    for (name, service) in services {
        service
            .stop()
            .await
            .unwrap_or_else(|e| panic!("{name} did not stop cleanly: {e:#}"));
    }
}

#[tokio::test]
async fn readiness_names_the_dependency_that_is_down() {
    let mut env = TestEnv::new().await;
    env.mongo.url = format!("mongodb://127.0.0.1:{}/?directConnection=true", free_port());
    let query_api = env.spawn_query_api().await;
    let response = reqwest::get(query_api.url("/readyz")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "unavailable");
    assert!(
        body["detail"].as_str().unwrap().contains("mongodb"),
        "{body}"
    );
    query_api.stop().await.unwrap();
}

#[tokio::test]
async fn bad_configuration_stops_each_binary_with_one_line_naming_the_variable() {
    let cases = [
        ("command-api", "DATABASE_URL", "nonsense"),
        ("command-api", "COMMAND_API_ADDR", "everywhere"),
        ("command-api", "NATS_URL", "http://127.0.0.1:4222"),
        ("query-api", "MONGODB_URL", "nonsense"),
        ("projector", "LOG_FORMAT", "xml"),
        ("notifier", "NATS_PREFIX", "a.b"),
    ];
    for (name, variable, value) in cases {
        let output = Command::new(binary(name))
            .env(variable, value)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{name} with {variable}={value} must not start"
        );
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{name}: one line, got {stderr:?}"
        );
        assert!(
            stderr.contains(variable),
            "{name}: {stderr:?} names {variable}"
        );
    }
}

#[tokio::test]
async fn the_command_api_binary_stops_cleanly_on_sigterm() {
    let env = TestEnv::new().await;
    let port = free_port();
    let mut child = Command::new(binary("command-api"))
        .env("COMMAND_API_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", &env.database_url)
        .env("NATS_URL", &env.nats_url)
        .env(
            "NATS_PREFIX",
            env.prefix.events_stream().trim_end_matches("_EVENTS"),
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let mut up = false;
    for _ in 0..100 {
        if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "command-api did not come up");
    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let status = status.expect("exited within 10s after SIGTERM").unwrap();
    assert!(status.success(), "clean exit, got {status}");
}
