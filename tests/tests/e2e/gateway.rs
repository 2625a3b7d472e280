//! The nginx gateway (`deploy/nginx/nginx.conf`, as shipped, pointed at this test's services):
//! one origin routing writes and the event log to command-api, reads to query-api, SSE
//! unbuffered, anonymous reads cached and served stale while query-api is down.

use std::{path::PathBuf, process::Stdio, time::Duration};

use camreviews_tests::{Api, TestEnv, free_port};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::catalog::camera;

struct Gateway {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl Gateway {
    /// nginx with the shipped configuration, its upstreams rewritten to `upstreams`
    /// (name, port) and its files under a directory of its own.
    async fn start(upstreams: &[(&str, u16)]) -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_owned();
        let mut config = std::fs::read_to_string(root.join("deploy/nginx/nginx.conf")).unwrap();
        let dir = std::env::temp_dir().join(format!("gateway-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        for (name, upstream_port) in upstreams {
            let shipped = format!("server {name}:");
            assert!(config.contains(&shipped), "the config names {name}");
            config = config
                .lines()
                .map(|line| {
                    if line.trim_start().starts_with(&shipped) {
                        // `server name:port [parameters];`
                        let parts: Vec<&str> = line.trim().splitn(3, ' ').collect();
                        let rest = parts.get(2).copied().unwrap_or(";");
                        format!("        server 127.0.0.1:{upstream_port} {rest}")
                    } else {
                        line.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
        }
        let config = config
            .replace("listen 8080;", &format!("listen 127.0.0.1:{port};"))
            .replace("/tmp/", &format!("{}/", dir.display()))
            .replace("access_log /dev/stdout;", "access_log off;");
        let path = dir.join("nginx.conf");
        std::fs::write(&path, config).unwrap();
        let nginx = std::env::var("NGINX_BIN").unwrap_or_else(|_| "nginx".to_owned());
        let child = Command::new(&nginx)
            // One process (no master and workers), so killing it leaves nothing behind.
            .args([
                "-e",
                "stderr",
                "-g",
                "daemon off; master_process off;",
                "-p",
            ])
            .arg(&dir)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {nginx} ({e}); scripts/test.sh installs it"));
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self { port, dir, child };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nginx did not start");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_origin_routes_caches_and_streams() {
    let env = TestEnv::new().await;
    let command_api = env.spawn_command_api_with_superuser().await;
    let _projector = env.spawn_projector().await;
    let query_api = env.spawn_query_api().await;
    let notifier = env.spawn_notifier().await;
    let gateway = Gateway::start(&[
        ("command-api", command_api.port),
        ("query-api", query_api.port),
        ("notifier", notifier.port),
    ])
    .await;
    let client = reqwest::Client::new();
    let health = client.get(gateway.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    // Writes and sign-in reach command-api.
    let login: Value = camreviews_tests::json_of(
        client
            .post(gateway.url("/api/v1/auth/login"))
            .json(&json!({ "username": "root", "password": "root-password-1" })),
    )
    .await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    let created = client
        .post(gateway.url("/api/v1/products"))
        .bearer_auth(&token)
        .json(&camera(1))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let (sku, position) = (
        created["sku"].as_str().unwrap().to_owned(),
        created["position"].as_i64().unwrap(),
    );

    // Reads reach query-api; the event log (a GET) reaches command-api.
    let detail = client
        .get(gateway.url(&format!("/api/v1/products/{sku}")))
        .header("x-min-position", position.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(detail.status(), 200);
    let events = client
        .get(gateway.url("/api/v1/events?type=ProductCreated"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let events: Value = events.json().await.unwrap();
    assert_eq!(events["items"][0]["aggregate_id"], sku.as_str());

    // The documentation of both APIs, through the one origin.
    let docs = client.get(gateway.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let command_spec: Value =
        camreviews_tests::json_of(client.get(gateway.url("/docs/command-api/api/v1/openapi.json")))
            .await;
    assert_eq!(command_spec["info"]["title"], "CamReviews command API");

    // Anonymous lists are cached briefly; signed-in ones never; details (views) never.
    let list = || client.get(gateway.url("/api/v1/products?limit=5")).send();
    let first = list().await.unwrap();
    assert_eq!(first.status(), 200);
    let second = list().await.unwrap();
    assert_eq!(second.headers()["x-cache-status"], "HIT");
    let signed_in = client
        .get(gateway.url("/api/v1/products?limit=5"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_ne!(
        signed_in
            .headers()
            .get("x-cache-status")
            .map(|v| v.to_str().unwrap()),
        Some("HIT")
    );
    for _ in 0..2 {
        let detail = client
            .get(gateway.url(&format!("/api/v1/products/{sku}")))
            .send()
            .await
            .unwrap();
        assert!(
            detail.headers().get("x-cache-status").is_none(),
            "details are not cached"
        );
    }

    // SSE passes unbuffered: a new event arrives at once.
    let mut tail = client
        .get(gateway.url("/api/v1/events/stream"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);
    let api = Api::new(&command_api);
    let (_, later) = {
        let created = api.post("/api/v1/products", camera(2), Some(&token)).await;
        (
            created.body["sku"].clone(),
            created.body["position"].as_i64().unwrap(),
        )
    };
    let arrived = tokio::time::timeout(Duration::from_secs(5), async {
        let mut seen = String::new();
        while !seen.contains(&format!("id: {later}")) {
            let chunk = tail.chunk().await.unwrap().unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(
        arrived.is_ok(),
        "the event came through the gateway at once"
    );

    // With query-api down, the cached anonymous list is served stale.
    query_api.stop().await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stale = list().await.unwrap();
    assert_eq!(
        stale.status(),
        200,
        "served from the cache while query-api is down"
    );
    assert_eq!(stale.headers()["x-cache-status"], "STALE");
}
