//! Invariant 6: no password, hash or refresh token appears in any event, in the store or on
//! NATS.

use std::time::Duration;

use camreviews_tests::{Api, TestEnv, stream};
use serde_json::json;

#[tokio::test]
async fn no_secret_appears_in_any_event_in_the_store_or_on_nats() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api_with_superuser().await);
    let (root_name, root_password) = TestEnv::SUPERUSER;
    let root = api.login(root_name, root_password).await;
    api.register("tomas", "tomas-first-password").await;
    let tokens = api.login("tomas", "tomas-first-password").await;
    let rotated = api
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": tokens.refresh }),
            None,
        )
        .await;
    let rotated_refresh = rotated.body["refresh_token"].as_str().unwrap().to_owned();
    let access = rotated.body["access_token"].as_str().unwrap().to_owned();
    api.put(
        "/api/v1/users/me",
        json!({ "password": "tomas-second-password", "current_password": "tomas-first-password" }),
        Some(&access),
    )
    .await;
    api.post(
        "/api/v1/admins",
        json!({ "username": "ursula", "email": "u@example.com", "password": "ursula-password" }),
        Some(&root.access),
    )
    .await;
    api.post("/api/v1/auth/logout", json!({}), Some(&access))
        .await;

    let pool = env.pool().await;
    let hashes: Vec<String> = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut secrets: Vec<String> = vec![
        root_password.into(),
        "tomas-first-password".into(),
        "tomas-second-password".into(),
        "ursula-password".into(),
        tokens.refresh.clone(),
        rotated_refresh,
    ];
    secrets.extend(hashes);

    let stored: Vec<String> = sqlx::query_scalar("SELECT row_to_json(e)::text FROM events e")
        .fetch_all(&pool)
        .await
        .unwrap();
    // Three registrations, the password change, the logout's revocation.
    assert_eq!(stored.len(), 5, "the scenario's events: {stored:?}");
    let js = env.jetstream().await;
    let published = stream::read_events(
        &js,
        &env.prefix.events_stream(),
        stored.len(),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(published.len(), stored.len());
    let published: Vec<String> = published
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();

    for text in stored.iter().chain(&published) {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "an event carries a secret: {text}"
            );
        }
        assert!(!text.contains("argon2"), "an event carries a hash: {text}");
    }
}

/// No signing key (or any other PEM private key) is committed: a key in the repository signs
/// tokens for anyone who can read it.
#[test]
fn no_private_key_is_tracked_in_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let listed = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(listed.status.success(), "git ls-files failed");
    let marker = ["PRIVATE", "KEY-----"].join(" ");
    let tracked: Vec<String> = listed
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    assert!(tracked.len() > 50, "the listing looks wrong: {tracked:?}");
    let with_keys: Vec<&String> = tracked
        .iter()
        .filter(|path| {
            std::fs::read(root.join(path.as_str()))
                .is_ok_and(|bytes| bytes.windows(marker.len()).any(|w| w == marker.as_bytes()))
        })
        .collect();
    assert!(
        with_keys.is_empty(),
        "private keys committed: {with_keys:?}"
    );
}
