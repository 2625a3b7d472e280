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
