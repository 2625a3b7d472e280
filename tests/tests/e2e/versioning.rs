//! Event versioning: `UserRoleChanged` went from v1 (`{from, to}`) to v2
//! (`{previous_role, role}`). A v1 event stored before the change is read through the upcaster
//! everywhere: by the projector, by a rebuild, by the command side's aggregate, and by the
//! event log, which serves it as v2.

use eventstore::{self as store, ExpectedVersion, Metadata, NewEvent, StreamId};
use serde_json::json;
use shared::events::UserEvent;
use uuid::Uuid;

use crate::{
    catalog::{Catalog, replay::wait_applied},
    ctl::camctl,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_v1_event_replays_as_v2_everywhere() {
    let catalog = Catalog::start().await;
    let api = &catalog.command;
    let user = api.register("vera", "vera-password").await;
    let id: Uuid = user["id"].as_str().unwrap().parse().unwrap();

    // A role change as the previous build wrote it: schema v1, the old field names.
    let pool = catalog.env.pool().await;
    let mut tx = pool.begin().await.unwrap();
    let appended = store::append_events(
        &mut tx,
        StreamId::of::<UserEvent>(id),
        ExpectedVersion::Exact(1),
        &[NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "UserRoleChanged".into(),
            schema_version: 1,
            data: json!({ "from": "publisher", "to": "analyst" }),
        }],
        &Metadata::new(None),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let stored: (i32, serde_json::Value) =
        sqlx::query_as("SELECT schema_version, data FROM events WHERE position = $1")
            .bind(appended.position)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, (1, json!({ "from": "publisher", "to": "analyst" })));

    // The projector reads it: the directory shows the new role.
    let live = shared::mongo::connect(&catalog.env.mongo, "tests")
        .await
        .unwrap();
    wait_applied(&live, appended.position).await;
    let profile = catalog
        .query
        .get(&format!("/api/v1/users/{id}"), None)
        .await;
    assert_eq!(profile.body["role"], "analyst", "{:?}", profile.body);

    // The event log serves it as v2.
    let log = api
        .get(
            &format!("/api/v1/events?aggregate_id={id}&type=UserRoleChanged"),
            Some(&catalog.root.access),
        )
        .await;
    let served = &log.body["items"][0];
    assert_eq!(served["schema_version"], 2);
    assert_eq!(
        served["data"],
        json!({ "previous_role": "publisher", "role": "analyst" })
    );
    let (_, replayed, _) = camctl(
        &catalog.env,
        &["events", "replay", "--type", "UserRoleChanged"],
        "",
    )
    .await;
    let replayed: serde_json::Value = serde_json::from_str(replayed.trim()).unwrap();
    assert_eq!(replayed["data"], served["data"]);

    // The command side's aggregate folds it: the next change starts from `analyst`.
    let changed = api
        .put(
            &format!("/api/v1/users/{id}/role"),
            json!({ "role": "admin" }),
            Some(&catalog.root.access),
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    let log = api
        .get(
            &format!("/api/v1/events?aggregate_id={id}&type=UserRoleChanged"),
            Some(&catalog.root.access),
        )
        .await;
    assert_eq!(
        log.body["items"][1]["data"],
        json!({ "previous_role": "analyst", "role": "admin" })
    );
    assert_eq!(
        log.body["items"][1]["schema_version"], 2,
        "new events are written as v2"
    );

    // A rebuild from the store reads it too.
    let position = changed.body["position"].as_i64().unwrap_or(0);
    wait_applied(&live, position).await;
    let (code, _, stderr) = camctl(&catalog.env, &["projections", "rebuild", "users"], "").await;
    assert_eq!(code, 0, "{stderr}");
    let profile = catalog
        .query
        .get(&format!("/api/v1/users/{id}"), None)
        .await;
    assert_eq!(profile.body["role"], "admin");
}
