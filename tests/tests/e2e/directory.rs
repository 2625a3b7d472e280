//! The users directory: the projector keeps it from user events; query-api serves public
//! profiles from it.

use std::time::Duration;

use camreviews_tests::{Api, Reply, TestEnv, eventually};
use serde_json::json;

async fn profile_where(query: &Api, path: &str, accept: impl Fn(&Reply) -> bool) -> Reply {
    eventually(Duration::from_secs(10), || async {
        let reply = query.get(path, None).await;
        accept(&reply).then_some(reply)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_follows_registration_profile_changes_roles_and_deletion() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api_with_superuser().await);
    let _projector = env.spawn_projector().await;
    let query = Api::new(&env.spawn_query_api().await);
    let root = api.login(TestEnv::SUPERUSER.0, TestEnv::SUPERUSER.1).await;

    let xena = api.register("xena", "xena-password").await;
    let path = format!("/api/v1/users/{}", xena["id"].as_str().unwrap());
    let shown = profile_where(&query, &path, |r| r.status == 200).await;
    assert_eq!(
        shown.body,
        json!({
            "id": xena["id"], "username": "xena", "display_name": "xena", "role": "publisher", "region": "south-america"
        })
    );
    assert!(
        shown.body.get("email").is_none(),
        "the public profile has no email"
    );

    let tokens = api.login("xena", "xena-password").await;
    api.put(
        "/api/v1/users/me",
        json!({ "display_name": "Xena W." }),
        Some(&tokens.access),
    )
    .await;
    profile_where(&query, &path, |r| r.body["display_name"] == "Xena W.").await;

    api.put(
        &format!("{path}/role"),
        json!({ "role": "admin" }),
        Some(&root.access),
    )
    .await;
    profile_where(&query, &path, |r| r.body["role"] == "admin").await;

    let deleted = api
        .delete(&path.replace("/users/", "/admins/"), Some(&root.access))
        .await;
    assert_eq!(deleted.status, 204);
    let gone = profile_where(&query, &path, |r| r.status == 404).await;
    assert_eq!(gone.code(), "not_found");

    assert_eq!(
        query.get("/api/v1/users/not-a-uuid", None).await.status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_parked_in_the_dlq_and_does_not_block_other_events() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    let _projector = env.spawn_projector().await;
    let query = Api::new(&env.spawn_query_api().await);
    let js = env.jetstream().await;
    shared::nats::ensure_streams(&js, &env.prefix)
        .await
        .unwrap();

    let subject = env.prefix.event_subject(
        "user",
        "00000000-0000-7000-8000-000000000000",
        "UserRegistered",
    );
    js.publish(subject.clone(), "{not an envelope".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let yara = api.register("yara", "yara-password").await;

    let path = format!("/api/v1/users/{}", yara["id"].as_str().unwrap());
    profile_where(&query, &path, |r| r.status == 200).await;

    let dlq = env.prefix.dlq_stream();
    assert_eq!(
        camreviews_tests::stream::wait_for_count(&js, &dlq, 1, Duration::from_secs(10)).await,
        1
    );
    let parked = js
        .get_stream(&dlq)
        .await
        .unwrap()
        .get_raw_message(1)
        .await
        .unwrap();
    assert_eq!(
        parked.subject.as_str(),
        env.prefix.dlq_subject("projector", &subject)
    );
    assert!(
        parked
            .headers
            .get("Dlq-Error")
            .unwrap()
            .as_str()
            .contains("not an event envelope")
    );
    assert_eq!(&parked.payload[..], b"{not an envelope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_page_through_users_and_admins_and_nobody_else_may() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api_with_superuser().await);
    let _projector = env.spawn_projector().await;
    let query = Api::new(&env.spawn_query_api().await);
    let root = api.login(TestEnv::SUPERUSER.0, TestEnv::SUPERUSER.1).await;
    for n in 0..5 {
        api.register(&format!("user{n}"), "user-password").await;
    }
    let admin = api
        .post(
            "/api/v1/admins",
            json!({ "username": "second", "email": "second@example.com", "password": "second-password" }),
            Some(&root.access),
        )
        .await;
    assert_eq!(admin.status, 201);
    let position: i64 = admin.header("x-event-position").unwrap().parse().unwrap();

    let first = query
        .request(reqwest::Method::GET, "/api/v1/users?limit=4")
        .bearer_auth(&root.access)
        .header("x-min-position", position.to_string())
        .send()
        .await
        .unwrap();
    let first = Api::reply(first).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["items"].as_array().unwrap().len(), 4);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let rest = query
        .get(
            &format!("/api/v1/users?limit=4&cursor={cursor}"),
            Some(&root.access),
        )
        .await;
    assert_eq!(
        rest.body["items"].as_array().unwrap().len(),
        3,
        "7 users in all"
    );
    assert_eq!(rest.body["next_cursor"], serde_json::Value::Null);
    let user = &first.body["items"][0];
    for field in [
        "id",
        "username",
        "email",
        "display_name",
        "role",
        "is_superuser",
        "created_at",
    ] {
        assert!(user.get(field).is_some(), "{field} in {user}");
    }

    let publishers = query
        .get("/api/v1/users?role=publisher&limit=100", Some(&root.access))
        .await;
    assert_eq!(publishers.body["items"].as_array().unwrap().len(), 5);
    let admins = query.get("/api/v1/admins", Some(&root.access)).await;
    let names: Vec<&str> = admins.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["root", "second"]);
    assert_eq!(
        query
            .get("/api/v1/users?role=king", Some(&root.access))
            .await
            .code(),
        "invalid_parameter"
    );
    // A cursor of the admin list is not one of the publisher list.
    let page = query
        .get("/api/v1/admins?limit=1", Some(&root.access))
        .await;
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let foreign = query
        .get(
            &format!("/api/v1/users?role=publisher&cursor={cursor}"),
            Some(&root.access),
        )
        .await;
    assert_eq!(foreign.status, 400);

    let publisher = api.login("user0", "user-password").await;
    for path in ["/api/v1/users", "/api/v1/admins"] {
        assert_eq!(query.get(path, Some(&publisher.access)).await.status, 403);
        assert_eq!(query.get(path, None).await.status, 401);
    }
}
