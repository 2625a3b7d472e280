//! Refresh rotation with reuse detection, and logout.

use camreviews_tests::{Api, TestEnv};
use serde_json::json;

#[tokio::test]
async fn refreshing_rotates_the_token_and_reuse_revokes_the_whole_session() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    api.register("iris", "iris-password").await;
    let first = api.login("iris", "iris-password").await;

    let rotated = api
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": first.refresh }),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let newest = rotated.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(newest, first.refresh);
    let access = rotated.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.put("/api/v1/users/me", json!({}), Some(&access))
            .await
            .status,
        200
    );

    // The old token again: reuse. The session ends, so the newest token dies with it.
    let reused = api
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": first.refresh }),
            None,
        )
        .await;
    assert_eq!(reused.status, 401);
    assert_eq!(reused.code(), "refresh_token_reused");
    let newest_after = api
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": newest }),
            None,
        )
        .await;
    assert_eq!(newest_after.status, 401);
    assert_eq!(
        api.put("/api/v1/users/me", json!({}), Some(&access))
            .await
            .status,
        401,
        "its access tokens too"
    );

    let revoked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'SessionRevoked'")
            .fetch_one(&env.pool().await)
            .await
            .unwrap();
    assert_eq!(revoked, 1, "the revocation is an event others can act on");
}

#[tokio::test]
async fn an_unknown_refresh_token_is_401() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    let reply = api
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": "made-up" }),
            None,
        )
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.code(), "unauthorized");
}

#[tokio::test]
async fn logout_ends_the_session_at_once_for_refresh_and_access_tokens() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    api.register("joao", "joao-password").await;
    let tokens = api.login("joao", "joao-password").await;
    let other_session = api.login("joao", "joao-password").await;

    let logout = api
        .post(
            "/api/v1/auth/logout",
            json!({ "refresh_token": tokens.refresh }),
            Some(&tokens.access),
        )
        .await;
    assert_eq!(logout.status, 204);
    assert!(logout.header("x-event-position").is_some());

    let after = api
        .put(
            "/api/v1/users/me",
            json!({ "display_name": "x" }),
            Some(&tokens.access),
        )
        .await;
    assert_eq!(after.status, 401, "the access token is refused immediately");
    let refresh = api
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": tokens.refresh }),
            None,
        )
        .await;
    assert_eq!(refresh.status, 401);

    let other = api
        .put(
            "/api/v1/users/me",
            json!({ "display_name": "still here" }),
            Some(&other_session.access),
        )
        .await;
    assert_eq!(
        other.status, 200,
        "other sessions of the user are untouched"
    );

    let again = api
        .post("/api/v1/auth/logout", json!({}), Some(&tokens.access))
        .await;
    assert_eq!(again.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_logout_query_api_refuses_the_access_token_within_two_seconds() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    let _projector = env.spawn_projector().await;
    let query = Api::new(&env.spawn_query_api().await);

    let vera = api.register("vera", "vera-password").await;
    let tokens = api.login("vera", "vera-password").await;
    let profile = format!("/api/v1/users/{}", vera["id"].as_str().unwrap());
    let seen = camreviews_tests::eventually(std::time::Duration::from_secs(10), || async {
        let reply = query.get(&profile, Some(&tokens.access)).await;
        (reply.status == 200).then_some(reply)
    })
    .await;
    assert_eq!(seen.body["username"], "vera");

    // Something unreadable on the revocation subject must not stop the follower.
    let js = env.jetstream().await;
    let subject = env
        .prefix
        .event_subject("user", vera["id"].as_str().unwrap(), "SessionRevoked");
    js.publish(subject, "garbage".into())
        .await
        .unwrap()
        .await
        .unwrap();

    let logout = api
        .post("/api/v1/auth/logout", json!({}), Some(&tokens.access))
        .await;
    assert_eq!(logout.status, 204);
    let refused = camreviews_tests::eventually(std::time::Duration::from_secs(2), || async {
        let reply = query.get(&profile, Some(&tokens.access)).await;
        (reply.status == 401).then_some(reply)
    })
    .await;
    assert_eq!(refused.code(), "unauthorized");
    assert_eq!(
        query.get(&profile, None).await.status,
        200,
        "anonymous readers are unaffected"
    );
}

#[tokio::test]
async fn an_expired_refresh_token_is_401() {
    let env = TestEnv::new().await;
    let config = command_api::Config {
        refresh_token_ttl: 1,
        ..env.command_api_config()
    };
    let api = Api::new(&env.spawn_command_api_with(config).await);
    api.register("yuri", "yuri-password").await;
    let tokens = api.login("yuri", "yuri-password").await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let reply = api
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": tokens.refresh }),
            None,
        )
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.code(), "unauthorized");
}

/// command-api checks sessions against the revocations it follows, not PostgreSQL, on each
/// request: an instance that did not end the session learns of it from the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_through_one_command_api_is_refused_by_another_within_two_seconds() {
    let env = TestEnv::new().await;
    let first = Api::new(&env.spawn_command_api().await);
    let second = Api::new(&env.spawn_command_api().await);
    first.register("wanda", "wanda-password").await;
    let tokens = first.login("wanda", "wanda-password").await;
    let update = || second.put("/api/v1/users/me", json!({}), Some(&tokens.access));
    let before = update().await;
    assert_eq!(before.status, 200, "{:?}", before.body);

    let logout = first
        .post("/api/v1/auth/logout", json!({}), Some(&tokens.access))
        .await;
    assert_eq!(logout.status, 204);
    let at_once = first
        .put("/api/v1/users/me", json!({}), Some(&tokens.access))
        .await;
    assert_eq!(
        at_once.status, 401,
        "the instance that ended it refuses at once"
    );
    let refused = camreviews_tests::eventually(std::time::Duration::from_secs(2), || async {
        let reply = update().await;
        (reply.status == 401).then_some(reply)
    })
    .await;
    assert_eq!(refused.code(), "unauthorized");
}
