//! The HTTP servers against slow and greedy clients (issue 15): a client that sends its
//! request head or body slowly is disconnected, and one user cannot hold more than a few live
//! tails.

use std::time::{Duration, Instant};

use camreviews_tests::{Api, TestEnv};
use reqwest::Method;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_its_head_or_body_slowly_is_disconnected_and_blocks_no_one() {
    let env = TestEnv::new().await;
    let command = env.spawn_command_api().await;
    let query = env.spawn_query_api().await;
    let mut slow = Vec::new();
    for service in [&command, &query] {
        let address = service.url("").trim_start_matches("http://").to_owned();
        let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
        // Part of a request head, then nothing: a slowloris.
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: camreviews\r\nX-Slow: 1")
            .await
            .unwrap();
        slow.push(socket);
    }
    // A body that stops half way.
    let address = command.url("").trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(address).await.unwrap();
    stalled
        .write_all(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: camreviews\r\n\
              Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"username\":",
        )
        .await
        .unwrap();
    slow.push(stalled);
    let started = Instant::now();

    // Meanwhile the servers answer everyone else.
    for service in [&command, &query] {
        assert_eq!(Api::new(service).get("/healthz", None).await.status, 200);
    }

    for mut socket in slow {
        let mut buffer = [0_u8; 1024];
        let ended = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // an error answer (408) before closing is fine
                }
            }
        })
        .await;
        assert!(
            ended.is_ok(),
            "the slow client was still connected after 20 s"
        );
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5),
        "disconnected after {took:?}: too eager for a real client on a slow link"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_holds_at_most_a_few_live_tails() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api_with_superuser().await);
    let (root_name, root_password) = TestEnv::SUPERUSER;
    let root = api.login(root_name, root_password).await;

    let open_tail = || {
        api.request(Method::GET, "/api/v1/events/stream")
            .bearer_auth(&root.access)
            .send()
    };
    let mut tails = Vec::new();
    for _ in 0..shared::http::LIVE_STREAMS_PER_USER {
        let tail = open_tail().await.unwrap();
        assert_eq!(tail.status(), 200);
        tails.push(tail);
    }
    let refused = Api::reply(open_tail().await.unwrap()).await;
    assert_eq!(refused.status, 429, "{:?}", refused.body);
    assert_eq!(refused.code(), "rate_limited");
    assert!(refused.header("retry-after").is_some());

    // Someone else still gets theirs.
    let ana = api.register("ana", "ana-password").await;
    let granted = api
        .put(
            &format!("/api/v1/users/{}/role", ana["id"].as_str().unwrap()),
            serde_json::json!({ "role": "analyst" }),
            Some(&root.access),
        )
        .await;
    assert_eq!(granted.status, 200, "{:?}", granted.body);
    let ana = api.login("ana", "ana-password").await;
    let theirs = api
        .request(Method::GET, "/api/v1/events/stream")
        .bearer_auth(&ana.access)
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 200);

    // A tail that ends gives its slot back.
    drop(tails.pop());
    let again = camreviews_tests::eventually(Duration::from_secs(5), || async {
        let tail = open_tail().await.unwrap();
        (tail.status() == 200).then_some(tail)
    })
    .await;
    drop(again);
}
