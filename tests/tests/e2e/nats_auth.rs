//! The deployments' NATS configuration (`nats/nats-container.conf`), run for real: every
//! service on its own NATS user with least-privilege permissions, the whole catalog loop still
//! works, and only the command side may write events (issue 15).

use std::{process::Stdio, time::Duration};

use camreviews_tests::{Api, TestEnv};
use serde_json::json;
use shared::nats::Prefix;

use crate::catalog::camera;

const USERS: [(&str, &str); 5] = [
    ("command-api", "NATS_COMMAND_API_PASSWORD"),
    ("query-api", "NATS_QUERY_API_PASSWORD"),
    ("projector", "NATS_PROJECTOR_PASSWORD"),
    ("notifier", "NATS_NOTIFIER_PASSWORD"),
    ("ops", "NATS_OPS_PASSWORD"),
];

fn password(user: &str) -> String {
    format!("pw{}x7Q", user.replace('-', ""))
}

/// nats-server with the container configuration, on a free loopback port.
async fn start_server() -> (tokio::process::Child, u16) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let port = camreviews_tests::free_port();
    let dir = std::env::temp_dir().join(format!("camreviews-nats-auth-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = std::fs::read_to_string(root.join("nats/nats-container.conf"))
        .unwrap()
        .replace("listen: 0.0.0.0:4222", &format!("listen: 127.0.0.1:{port}"))
        .replace("http: 0.0.0.0:8222", "# http")
        .replace(
            "store_dir: \"/data\"",
            &format!("store_dir: {:?}", dir.join("js")),
        );
    let path = dir.join("nats.conf");
    std::fs::write(&path, conf).unwrap();
    let mut server = tokio::process::Command::new("nats-server");
    server.arg("-c").arg(&path);
    for (user, variable) in USERS {
        server.env(variable, password(user));
    }
    let child = server
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nats-server on PATH");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (child, port);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nats-server did not start with {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_runs_on_its_own_nats_user_and_only_the_command_side_writes_events() {
    let (_server, port) = start_server().await;
    let url = |user: &str| format!("nats://{user}:{}@127.0.0.1:{port}", password(user));

    let mut env = TestEnv::new().await;
    env.prefix = Prefix::parse("").unwrap();
    env.nats_url = url("command-api");
    let command = Api::new(&env.spawn_command_api_with_superuser().await);
    env.nats_url = url("projector");
    let _projector = env.spawn_projector().await;
    env.nats_url = url("query-api");
    let query = Api::new(&env.spawn_query_api().await);
    env.nats_url = url("notifier");
    let _notifier = env.spawn_notifier().await;

    // The loop works under least privilege: a command's event reaches the read side.
    let root = command
        .login(TestEnv::SUPERUSER.0, TestEnv::SUPERUSER.1)
        .await;
    let created = command
        .post("/api/v1/products", camera(1), Some(&root.access))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let sku = created.body["sku"].as_str().unwrap();
    let position = created.body["position"].as_i64().unwrap();
    let seen = query
        .get_at(&format!("/api/v1/products/{sku}"), position, None)
        .await;
    assert_eq!(seen.status, 200, "{:?}", seen.body);
    // A logout reaches query-api through its own user's consumer too.
    let logout = command
        .post("/api/v1/auth/logout", json!({}), Some(&root.access))
        .await;
    assert_eq!(logout.status, 204);

    // No other service's user can write an event; nobody connects without a user.
    for user in ["projector", "query-api", "notifier"] {
        let client = async_nats::ConnectOptions::new()
            .user_and_password(user.to_owned(), password(user))
            .connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        let forged = async {
            js.publish(format!("events.product.{sku}.ProductDeleted"), "{}".into())
                .await?
                .await
                .map_err(anyhow::Error::from)
        };
        let forged = tokio::time::timeout(Duration::from_secs(5), forged).await;
        assert!(
            !matches!(forged, Ok(Ok(_))),
            "{user} could append an event to EVENTS"
        );
    }
    let anonymous = async_nats::connect(format!("127.0.0.1:{port}")).await;
    let refused = match anonymous {
        Err(_) => true,
        // Accepted at first, the server closes it at the first round trip.
        Ok(client) => !matches!(
            tokio::time::timeout(Duration::from_secs(2), client.flush()).await,
            Ok(Ok(()))
        ),
    };
    assert!(refused, "an anonymous client was let in");
}
