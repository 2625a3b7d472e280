//! Registration, login, the own profile, the public key.

use camreviews_tests::{Api, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn registering_creates_a_publisher_and_answers_with_the_user() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    let reply = api
        .post(
            "/api/v1/auth/register",
            json!({ "username": "Ana.Lima", "email": "ana@example.com", "password": "correct horse", "display_name": "Ana Lima", "region": "south-america" }),
            None,
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let user = &reply.body;
    assert_eq!(
        user["username"], "ana.lima",
        "usernames are case-insensitive, stored folded"
    );
    assert_eq!(user["role"], "publisher");
    assert_eq!(user["region"], "south-america");
    assert_eq!(user["display_name"], "Ana Lima");
    assert_eq!(user["is_superuser"], false);
    assert!(user["id"].as_str().unwrap().len() == 36 && user["created_at"].is_string());
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());
    assert_eq!(user["version"], 1);
    let position = user["position"].as_i64().unwrap();
    assert_eq!(
        reply.header("x-event-position"),
        Some(position.to_string().as_str())
    );
    assert!(
        reply
            .header("location")
            .unwrap()
            .ends_with(user["id"].as_str().unwrap())
    );
}

#[tokio::test]
async fn a_taken_username_in_any_case_is_409_username_taken() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    api.register("bruno", "password-1").await;
    let reply = api
        .post("/api/v1/auth/register", json!({ "username": "BRUNO", "email": "b2@example.com", "password": "password-2", "region": "europe" }), None)
        .await;
    assert_eq!(reply.status, 409);
    assert_eq!(reply.code(), "username_taken");
}

#[tokio::test]
async fn invalid_registrations_are_422_with_one_entry_per_field_and_write_nothing() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    let reply = api
        .post("/api/v1/auth/register", json!({ "username": "a b", "email": "nope", "password": "short", "region": "antarctica" }), None)
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.code(), "validation_failed");
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    let mut fields: Vec<&str> = reply.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["email", "password", "region", "username"]);

    let missing = api
        .post(
            "/api/v1/auth/register",
            json!({ "username": "carla" }),
            None,
        )
        .await;
    assert_eq!(missing.status, 422);
    assert_eq!(
        missing.body["errors"].as_array().unwrap().len(),
        3,
        "email, password, region"
    );

    let wrong_type = api
        .post("/api/v1/auth/register", json!({ "username": 5 }), None)
        .await;
    assert_eq!(wrong_type.status, 422);

    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&env.pool().await)
        .await
        .unwrap();
    assert_eq!(events, 0);
}

#[tokio::test]
async fn bodies_that_are_not_json_are_400_or_415() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    let broken = api
        .request(Method::POST, "/api/v1/auth/register")
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    let broken = Api::reply(broken).await;
    assert_eq!(broken.status, 400);
    assert_eq!(broken.code(), "malformed_json");

    let untyped = api
        .request(Method::POST, "/api/v1/auth/register")
        .body("{}")
        .send()
        .await
        .unwrap();
    let untyped = Api::reply(untyped).await;
    assert_eq!(untyped.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(untyped.code(), "unsupported_media_type");
}

#[tokio::test]
async fn logging_in_returns_a_token_pair_and_bad_credentials_look_the_same_either_way() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    api.register("dora", "dora-password").await;
    let ok = api
        .post(
            "/api/v1/auth/login",
            json!({ "username": "DORA", "password": "dora-password" }),
            None,
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.body["token_type"], "Bearer");
    assert_eq!(ok.body["expires_in"], 900);
    assert!(ok.body["access_token"].as_str().unwrap().split('.').count() == 3);
    assert!(
        ok.body["refresh_token"].as_str().unwrap().len() >= 43,
        "256 bits"
    );

    let wrong_password = api
        .post(
            "/api/v1/auth/login",
            json!({ "username": "dora", "password": "nope-nope" }),
            None,
        )
        .await;
    let unknown_user = api
        .post(
            "/api/v1/auth/login",
            json!({ "username": "nobody", "password": "nope-nope" }),
            None,
        )
        .await;
    for reply in [&wrong_password, &unknown_user] {
        assert_eq!(reply.status, 401);
        assert_eq!(reply.code(), "invalid_credentials");
    }
    assert_eq!(
        wrong_password.body, unknown_user.body,
        "the same answer for both"
    );
}

#[tokio::test]
async fn repeated_login_failures_for_one_username_are_throttled_with_retry_after() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    api.register("eva", "eva-password").await;
    for _ in 0..5 {
        let reply = api
            .post(
                "/api/v1/auth/login",
                json!({ "username": "eva", "password": "guess-guess" }),
                None,
            )
            .await;
        assert_eq!(reply.status, 401);
    }
    let throttled = api
        .post(
            "/api/v1/auth/login",
            json!({ "username": "eva", "password": "eva-password" }),
            None,
        )
        .await;
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.code(), "rate_limited");
    let retry_after: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after));

    api.register("fabio", "fabio-password").await;
    api.login("fabio", "fabio-password").await; // another user is not affected
}

#[tokio::test]
async fn a_user_changes_their_profile_and_password_with_the_current_one() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    api.register("gil", "gil-password").await;
    let tokens = api.login("gil", "gil-password").await;
    let me = Some(tokens.access.as_str());

    let renamed = api
        .put(
            "/api/v1/users/me",
            json!({ "display_name": "Gil S.", "email": "gil@new.example.com", "current_password": "gil-password" }),
            me,
        )
        .await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    assert_eq!(renamed.body["display_name"], "Gil S.");
    assert_eq!(renamed.body["email"], "gil@new.example.com");
    assert_eq!(renamed.body["version"], 2);

    let without_current = api
        .put(
            "/api/v1/users/me",
            json!({ "password": "new-password" }),
            me,
        )
        .await;
    assert_eq!(without_current.status, 422);
    assert_eq!(
        without_current.body["errors"][0]["field"],
        "current_password"
    );
    let wrong_current = api
        .put(
            "/api/v1/users/me",
            json!({ "password": "new-password", "current_password": "wrong-one" }),
            me,
        )
        .await;
    assert_eq!(wrong_current.status, 422);

    let changed = api
        .put(
            "/api/v1/users/me",
            json!({ "password": "new-password", "current_password": "gil-password" }),
            me,
        )
        .await;
    assert_eq!(changed.status, 200);
    api.login("gil", "new-password").await;
    let old = api
        .post(
            "/api/v1/auth/login",
            json!({ "username": "gil", "password": "gil-password" }),
            None,
        )
        .await;
    assert_eq!(old.status, 401);

    let anonymous = api
        .put("/api/v1/users/me", json!({ "display_name": "x" }), None)
        .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.code(), "unauthorized");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_registration() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    let body = json!({ "username": "hugo", "email": "hugo@example.com", "password": "hugo-password", "region": "asia" });
    let send = || async {
        let response = api
            .request(Method::POST, "/api/v1/auth/register")
            .header("idempotency-key", "register-hugo-1")
            .json(&body)
            .send()
            .await
            .unwrap();
        Api::reply(response).await
    };
    let first = send().await;
    let again = send().await;
    assert_eq!(first.status, 201);
    assert_eq!(again.status, 201, "the first answer, not 409");
    assert_eq!(again.body, first.body);
    assert_eq!(
        again.header("x-event-position"),
        first.header("x-event-position")
    );
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&env.pool().await)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn the_jwks_endpoint_serves_the_ed25519_public_key() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    let reply = api.get("/.well-known/jwks.json", None).await;
    assert_eq!(reply.status, 200);
    let key = &reply.body["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["x"].as_str().unwrap().len(), 43, "32 bytes, base64url");
}

#[tokio::test]
async fn a_retried_password_change_with_its_idempotency_key_replays_the_answer() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    api.register("zoe", "zoe-password").await;
    let tokens = api.login("zoe", "zoe-password").await;
    let change = json!({ "password": "zoe-new-password", "current_password": "zoe-password" });
    let send = || async {
        let response = api
            .request(Method::PUT, "/api/v1/users/me")
            .bearer_auth(&tokens.access)
            .header("idempotency-key", "change-password-1")
            .json(&change)
            .send()
            .await
            .unwrap();
        Api::reply(response).await
    };
    let first = send().await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    // The answer was lost; the client retries the same request. The current password is no
    // longer current, but the retry gets the first answer instead of a 422.
    let retry = send().await;
    assert_eq!(retry.status, 200, "{:?}", retry.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body, first.body);
    api.login("zoe", "zoe-new-password").await;
}
