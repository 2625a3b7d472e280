//! What an attacker could do to logins and sessions (issue 15), tried against the real
//! command-api, query-api and notifier: each test fails on the code before the fix.

use std::time::{Duration, Instant};

use camreviews_tests::{Api, Reply, TestEnv, Tokens};
use reqwest::Method;
use serde_json::json;

/// command-api behind the gateway: the client address comes from `X-Real-IP`.
async fn behind_gateway(env: &TestEnv, config: command_api::Config) -> Api {
    let config = command_api::Config {
        superuser: TestEnv::superuser_seed(),
        rate_limit: shared::http::RateLimitConfig {
            trust_proxy: true,
            ..shared::http::RateLimitConfig::OFF
        },
        ..config
    };
    Api::new(&env.spawn_command_api_with(config).await)
}

async fn login_from(api: &Api, client: &str, username: &str, password: &str) -> Reply {
    let request = api
        .request(Method::POST, "/api/v1/auth/login")
        .header("x-real-ip", client)
        .json(&json!({ "username": username, "password": password }));
    Api::reply(request.send().await.unwrap()).await
}

fn tokens(reply: &Reply) -> Tokens {
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    Tokens {
        access: reply.body["access_token"].as_str().unwrap().to_owned(),
        refresh: reply.body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_failed_logins_from_one_address_refuse_no_other_client() {
    let env = TestEnv::new().await;
    let api = behind_gateway(&env, env.command_api_config()).await;
    let (root, password) = TestEnv::SUPERUSER;

    let mut statuses = Vec::new();
    for n in 0..60 {
        let reply = login_from(&api, "203.0.113.7", &format!("made-up-{n}"), "guess-guess").await;
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        50,
        "the address's free attempts, then delays: {statuses:?}"
    );
    assert!(statuses[50..].iter().all(|s| *s == 429), "{statuses:?}");
    let slowed = login_from(&api, "203.0.113.7", root, password).await;
    assert_eq!(slowed.status, 429, "the scanning address itself is slowed");
    assert!(slowed.header("retry-after").is_some());

    // Every other client behind the same gateway logs in as usual.
    let other = login_from(&api, "198.51.100.2", root, password).await;
    assert_eq!(other.status, 200, "{:?}", other.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_at_the_superuser_slow_the_guesser_and_never_lock_the_account() {
    let env = TestEnv::new().await;
    let api = behind_gateway(&env, env.command_api_config()).await;
    let (root, password) = TestEnv::SUPERUSER;

    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            login_from(&api, "203.0.113.8", root, "not-the-password")
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);

    // The superuser, from anywhere else, at once.
    let elsewhere = login_from(&api, "198.51.100.3", root, password).await;
    assert_eq!(elsewhere.status, 200, "{:?}", elsewhere.body);
    // And even from the guesser's address once its short delay has passed: a backoff, not a
    // lock.
    let retry_after: u64 = login_from(&api, "203.0.113.8", root, password)
        .await
        .header("retry-after")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let later = login_from(&api, "203.0.113.8", root, password).await;
    assert_eq!(later.status, 200, "{:?}", later.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_get_no_more_tries_than_sequential_ones() {
    let env = TestEnv::new().await;
    let api = behind_gateway(&env, env.command_api_config()).await;
    api.register("kate", "kate-password").await;

    let started = Instant::now();
    let guesses = (0..80).map(|n| {
        let api = api.clone();
        async move {
            login_from(&api, "203.0.113.9", "kate", &format!("guess-{n:04}"))
                .await
                .status
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(guesses).await;
    let elapsed = started.elapsed();
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    // Sequentially: 5 free attempts, then one more per doubling delay (1 s, 2 s, 4 s, …).
    let sequential_budget = 5 + (elapsed.as_secs_f64() + 1.0).log2().floor() as usize;
    assert!(
        (1..=sequential_budget).contains(&wrong),
        "{wrong} guesses answered in {elapsed:?}: {statuses:?}"
    );
    assert!(statuses.iter().all(|s| [401, 429, 503].contains(s)));

    // One normalisation everywhere: the Kelvin sign is not a K, so `\u{212A}ate` is nobody,
    // and does not log in as kate.
    let kelvin = login_from(&api, "198.51.100.9", "\u{212A}ate", "kate-password").await;
    assert_eq!(kelvin.status, 401, "{:?}", kelvin.body);
    assert_eq!(kelvin.code(), "invalid_credentials");
    let kate = login_from(&api, "198.51.100.9", " KATE ", "kate-password").await;
    assert_eq!(kate.status, 200, "ASCII case folds as at registration");
}

fn resident_bytes() -> u64 {
    camreviews_tests::resident_bytes(std::process::id())
}

/// command-api runs in this process: its resident memory is the process's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_logins_does_not_grow_memory() {
    let env = TestEnv::new().await;
    let api = behind_gateway(&env, env.command_api_config()).await;
    api.register("lena", "lena-password").await;
    api.login("lena", "lena-password").await; // warm up: one hash's worth is in use

    let before = resident_bytes();
    let mut answered = Vec::new();
    for round in 0..2 {
        let logins = (0..30).map(|n| {
            let api = api.clone();
            async move {
                let client = format!("198.51.{round}.{n}");
                login_from(&api, &client, "lena", "lena-password")
                    .await
                    .status
                    .as_u16()
            }
        });
        answered.extend(futures::future::join_all(logins).await);
    }
    let after = resident_bytes();
    let grown = after.saturating_sub(before);
    assert!(
        grown < 200 * 1024 * 1024,
        "resident memory grew by {} MiB over 60 logins",
        grown / 1024 / 1024
    );
    assert!(
        answered.iter().all(|s| [200, 503].contains(s)),
        "{answered:?}"
    );
    assert!(answered.contains(&200));
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_and_keeps_this_one() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    api.register("mona", "mona-password").await;
    let stolen = api.login("mona", "mona-password").await;
    let mine = api.login("mona", "mona-password").await;

    let changed = api
        .put(
            "/api/v1/users/me",
            json!({ "password": "mona-new-password", "current_password": "mona-password" }),
            Some(&mine.access),
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);

    let refreshed = api
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": stolen.refresh }),
            None,
        )
        .await;
    assert_eq!(refreshed.status, 401, "the other session's refresh token");
    assert_eq!(
        api.put("/api/v1/users/me", json!({}), Some(&stolen.access))
            .await
            .status,
        401,
        "the other session's access token"
    );
    let kept = api
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": mine.refresh }),
            None,
        )
        .await;
    assert_eq!(kept.status, 200, "the session that changed it stays");

    // Changing the email needs the current password too.
    let email = api
        .put(
            "/api/v1/users/me",
            json!({ "email": "mona@evil.example" }),
            Some(&tokens(&kept).access),
        )
        .await;
    assert_eq!(email.status, 422);
    assert_eq!(email.body["errors"][0]["field"], "current_password");
}

#[tokio::test]
async fn log_out_everywhere_for_oneself_and_by_an_admin() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api_with_superuser().await);
    let (root_name, root_password) = TestEnv::SUPERUSER;
    let root = api.login(root_name, root_password).await;
    let nina = api.register("nina", "nina-password").await;
    let phone = api.login("nina", "nina-password").await;
    let laptop = api.login("nina", "nina-password").await;

    let everywhere = api
        .delete("/api/v1/users/me/sessions", Some(&laptop.access))
        .await;
    assert_eq!(everywhere.status, 204, "{:?}", everywhere.body);
    for session in [&phone, &laptop] {
        let refreshed = api
            .post(
                "/api/v1/auth/refresh",
                json!({ "refresh_token": session.refresh }),
                None,
            )
            .await;
        assert_eq!(refreshed.status, 401);
    }

    let again = api.login("nina", "nina-password").await;
    let path = format!("/api/v1/users/{}/sessions", nina["id"].as_str().unwrap());
    assert_eq!(
        api.delete(&path, Some(&again.access)).await.status,
        403,
        "only admins end others' sessions"
    );
    assert_eq!(api.delete(&path, Some(&root.access)).await.status, 204);
    assert_eq!(
        api.put("/api/v1/users/me", json!({}), Some(&again.access))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime_however_often_it_is_refreshed() {
    let env = TestEnv::new().await;
    let config = command_api::Config {
        session_max_age: 3,
        ..env.command_api_config()
    };
    let api = Api::new(&env.spawn_command_api_with(config).await);
    api.register("olga", "olga-password").await;
    let mut current = api.login("olga", "olga-password").await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2000) {
        let refreshed = api
            .post(
                "/api/v1/auth/refresh",
                json!({ "refresh_token": current.refresh }),
                None,
            )
            .await;
        current = tokens(&refreshed);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = api
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": current.refresh }),
            None,
        )
        .await;
    assert_eq!(late.status, 401);
    assert_eq!(
        api.put("/api/v1/users/me", json!({}), Some(&current.access))
            .await
            .status,
        401,
        "its access token too, here at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_admin_is_refused_by_query_api_and_the_notifier_within_two_seconds() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api_with_superuser().await);
    let _projector = env.spawn_projector().await;
    let query = Api::new(&env.spawn_query_api().await);
    let notifier = Api::new(&env.spawn_notifier().await);
    let (root_name, root_password) = TestEnv::SUPERUSER;
    let root = api.login(root_name, root_password).await;
    let created = api
        .post(
            "/api/v1/admins",
            json!({ "username": "ada", "email": "ada@example.com", "password": "ada-password" }),
            Some(&root.access),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let ada = api.login("ada", "ada-password").await;

    // Setting up (slow on a loaded machine): the read side is ready and lists ada's
    // directory to her. The timing under test starts at the demotion.
    for service in [&query, &notifier] {
        camreviews_tests::eventually(Duration::from_secs(30), || async {
            (service.get("/readyz", None).await.status == 200).then_some(())
        })
        .await;
    }
    let directory = camreviews_tests::eventually(Duration::from_secs(30), || async {
        let reply = query.get("/api/v1/users", Some(&ada.access)).await;
        if reply.status != 200 {
            eprintln!("the directory answered {}: {:?}", reply.status, reply.body);
        }
        (reply.status == 200).then_some(reply)
    })
    .await;
    assert!(directory.body["items"].as_array().unwrap().len() >= 2);
    let mut stream = notifier
        .request(Method::GET, "/api/v1/notifications/stream")
        .bearer_auth(&ada.access)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    let demoted = api
        .put(
            &format!(
                "/api/v1/users/{}/role",
                created.body["id"].as_str().unwrap()
            ),
            json!({ "role": "publisher" }),
            Some(&root.access),
        )
        .await;
    assert_eq!(demoted.status, 200, "{:?}", demoted.body);
    let at = Instant::now();

    let refused = camreviews_tests::eventually(Duration::from_secs(2), || async {
        let reply = query.get("/api/v1/users", Some(&ada.access)).await;
        (reply.status == 401).then_some(reply)
    })
    .await;
    assert_eq!(refused.code(), "unauthorized");
    let closed = tokio::time::timeout(
        Duration::from_secs(2) - at.elapsed().min(Duration::from_secs(1)),
        async { while let Ok(Some(_)) = stream.chunk().await {} },
    )
    .await;
    assert!(closed.is_ok(), "the notifier kept the stream open");
    let reopened = notifier
        .get("/api/v1/notifications/stream", Some(&ada.access))
        .await;
    assert_eq!(reopened.status, 401);
    assert!(at.elapsed() < Duration::from_secs(3));
    assert_eq!(
        api.put("/api/v1/users/me", json!({}), Some(&ada.access))
            .await
            .status,
        401,
        "command-api at once"
    );
}
