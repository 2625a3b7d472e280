//! Admins managing admins and roles; the superuser's protection; 403 for everyone else.

use camreviews_tests::{Api, TestEnv, Tokens};
use serde_json::{Value, json};

async fn superuser(env: &TestEnv) -> (Api, Tokens) {
    let api = Api::new(&env.spawn_command_api_with_superuser().await);
    let (username, password) = TestEnv::SUPERUSER;
    let tokens = api.login(username, password).await;
    (api, tokens)
}

async fn create_admin(api: &Api, by: &Tokens, username: &str) -> Value {
    let reply = api
        .post(
            "/api/v1/admins",
            json!({ "username": username, "email": format!("{username}@example.com"), "password": "admin-password" }),
            Some(&by.access),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    reply.body
}

#[tokio::test]
async fn the_superuser_is_seeded_from_the_environment_once() {
    let env = TestEnv::new().await;
    let (api, tokens) = superuser(&env).await;
    let me = api
        .put("/api/v1/users/me", json!({}), Some(&tokens.access))
        .await;
    assert_eq!(me.body["is_superuser"], true);
    assert_eq!(me.body["role"], "admin");
    // A second instance with the same settings does not create another.
    let _second = env.spawn_command_api_with_superuser().await;
    let superusers: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE is_superuser")
        .fetch_one(&env.pool().await)
        .await
        .unwrap();
    assert_eq!(superusers, 1);
}

#[tokio::test]
async fn an_admin_creates_updates_and_deletes_admins() {
    let env = TestEnv::new().await;
    let (api, root) = superuser(&env).await;
    let lara = create_admin(&api, &root, "lara").await;
    assert_eq!(lara["role"], "admin");
    assert_eq!(lara["is_superuser"], false);
    let id = lara["id"].as_str().unwrap();

    let lara_tokens = api.login("lara", "admin-password").await;
    let updated = api
        .put(
            &format!("/api/v1/admins/{id}"),
            json!({ "display_name": "Lara M.", "password": "rotated-password" }),
            Some(&root.access),
        )
        .await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(updated.body["display_name"], "Lara M.");
    api.login("lara", "rotated-password").await;

    let deleted = api
        .delete(&format!("/api/v1/admins/{id}"), Some(&root.access))
        .await;
    assert_eq!(deleted.status, 204);
    let login = api
        .post(
            "/api/v1/auth/login",
            json!({ "username": "lara", "password": "rotated-password" }),
            None,
        )
        .await;
    assert_eq!(login.status, 401, "a deleted admin can no longer log in");
    assert_eq!(login.code(), "invalid_credentials");
    let stale = api
        .put("/api/v1/users/me", json!({}), Some(&lara_tokens.access))
        .await;
    assert_eq!(stale.status, 401, "their sessions ended");
    let again = api
        .delete(&format!("/api/v1/admins/{id}"), Some(&root.access))
        .await;
    assert_eq!(again.status, 404);
}

#[tokio::test]
async fn a_duplicate_admin_username_is_409_and_creates_no_second_user_even_when_racing() {
    let env = TestEnv::new().await;
    let (api, root) = superuser(&env).await;
    create_admin(&api, &root, "mira").await;
    let duplicate = api
        .post(
            "/api/v1/admins",
            json!({ "username": "MIRA", "email": "m2@example.com", "password": "admin-password" }),
            Some(&root.access),
        )
        .await;
    assert_eq!(duplicate.status, 409);
    assert_eq!(duplicate.code(), "username_taken");

    let race = (0..6).map(|i| {
        let (api, token) = (api.clone(), root.access.clone());
        tokio::spawn(async move {
            let body = json!({ "username": "nina", "email": format!("n{i}@example.com"), "password": "admin-password" });
            api.post("/api/v1/admins", body, Some(&token)).await
        })
    });
    let replies: Vec<_> = futures::future::join_all(race)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(replies.iter().filter(|r| r.status == 201).count(), 1);
    assert!(
        replies
            .iter()
            .filter(|r| r.status != 201)
            .all(|r| r.status == 409 && r.code() == "username_taken")
    );

    let pool = env.pool().await;
    let ninas: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE lower(username) = 'nina'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let registered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'UserRegistered' AND data->>'username' = 'nina'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((ninas, registered), (1, 1));
}

#[tokio::test]
async fn nobody_else_can_update_or_delete_the_superuser() {
    let env = TestEnv::new().await;
    let (api, root) = superuser(&env).await;
    let root_id = api
        .put("/api/v1/users/me", json!({}), Some(&root.access))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    create_admin(&api, &root, "otto").await;
    let otto = api.login("otto", "admin-password").await;

    let update = api
        .put(
            &format!("/api/v1/admins/{root_id}"),
            json!({ "display_name": "Mine now" }),
            Some(&otto.access),
        )
        .await;
    assert_eq!(
        (update.status.as_u16(), update.code()),
        (403, "superuser_protected")
    );
    let password = api
        .put(
            &format!("/api/v1/admins/{root_id}"),
            json!({ "password": "taken-over" }),
            Some(&otto.access),
        )
        .await;
    assert_eq!(
        (password.status.as_u16(), password.code()),
        (403, "superuser_protected")
    );
    let delete = api
        .delete(&format!("/api/v1/admins/{root_id}"), Some(&otto.access))
        .await;
    assert_eq!(
        (delete.status.as_u16(), delete.code()),
        (403, "superuser_protected")
    );
    let demote = api
        .put(
            &format!("/api/v1/users/{root_id}/role"),
            json!({ "role": "publisher" }),
            Some(&otto.access),
        )
        .await;
    assert_eq!(
        (demote.status.as_u16(), demote.code()),
        (403, "superuser_protected")
    );

    // The superuser may change their own profile.
    let own = api
        .put(
            &format!("/api/v1/admins/{root_id}"),
            json!({ "display_name": "Root" }),
            Some(&root.access),
        )
        .await;
    assert_eq!(own.status, 200);
    api.login(TestEnv::SUPERUSER.0, TestEnv::SUPERUSER.1).await;
}

#[tokio::test]
async fn admins_grant_and_withdraw_roles() {
    let env = TestEnv::new().await;
    let (api, root) = superuser(&env).await;
    let pia = api.register("pia", "pia-password").await;
    let id = pia["id"].as_str().unwrap();
    let analyst = api
        .put(
            &format!("/api/v1/users/{id}/role"),
            json!({ "role": "analyst" }),
            Some(&root.access),
        )
        .await;
    assert_eq!(analyst.status, 200);
    assert_eq!(analyst.body["role"], "analyst");
    let back = api
        .put(
            &format!("/api/v1/users/{id}/role"),
            json!({ "role": "publisher" }),
            Some(&root.access),
        )
        .await;
    assert_eq!(back.body["role"], "publisher");
    let bad = api
        .put(
            &format!("/api/v1/users/{id}/role"),
            json!({ "role": "emperor" }),
            Some(&root.access),
        )
        .await;
    assert_eq!(
        (bad.status.as_u16(), bad.code()),
        (422, "validation_failed")
    );
    let unknown = api
        .put(
            "/api/v1/users/00000000-0000-7000-8000-000000000000/role",
            json!({ "role": "admin" }),
            Some(&root.access),
        )
        .await;
    assert_eq!(unknown.status, 404);
    let promoted = api
        .put(
            &format!("/api/v1/users/{id}/role"),
            json!({ "role": "admin" }),
            Some(&root.access),
        )
        .await;
    assert_eq!(promoted.body["role"], "admin");
    let pia_tokens = api.login("pia", "pia-password").await;
    let can_manage = api
        .post(
            "/api/v1/admins",
            json!({ "username": "quinn", "email": "q@example.com", "password": "admin-password" }),
            Some(&pia_tokens.access),
        )
        .await;
    assert_eq!(
        can_manage.status, 201,
        "the new role applies to the next request"
    );
}

#[tokio::test]
async fn non_admins_get_403_and_anonymous_callers_401_on_every_admin_endpoint() {
    let env = TestEnv::new().await;
    let (api, root) = superuser(&env).await;
    let target = create_admin(&api, &root, "rui").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.register("sara", "sara-password").await;
    let publisher = api.login("sara", "sara-password").await;
    let admin_body =
        json!({ "username": "zed", "email": "z@example.com", "password": "admin-password" });
    for token in [Some(publisher.access.as_str()), None] {
        let expected = if token.is_some() {
            (403, "forbidden")
        } else {
            (401, "unauthorized")
        };
        let replies = [
            api.post("/api/v1/admins", admin_body.clone(), token).await,
            api.put(
                &format!("/api/v1/admins/{target}"),
                json!({ "display_name": "x" }),
                token,
            )
            .await,
            api.delete(&format!("/api/v1/admins/{target}"), token).await,
            api.put(
                &format!("/api/v1/users/{target}/role"),
                json!({ "role": "publisher" }),
                token,
            )
            .await,
        ];
        for reply in replies {
            assert_eq!(
                (reply.status.as_u16(), reply.code()),
                expected,
                "{:?}",
                reply.body
            );
        }
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&env.pool().await)
        .await
        .unwrap();
    assert_eq!(users, 3, "nothing was created");
}
