//! The event log endpoints: paged history with filters, NDJSON export in bounded memory, and
//! the SSE live tail resuming from `Last-Event-ID`.

use std::time::Duration;

use camreviews_tests::{Api, Process, TestEnv, Tokens};
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{Catalog, camera};

/// Registers `name`, makes them an analyst (as the superuser) and signs them in.
pub async fn analyst(api: &Api, root: &Tokens, name: &str) -> Tokens {
    let user = api.register(name, "analyst-password").await;
    let id = user["id"].as_str().unwrap();
    let granted = api
        .put(
            &format!("/api/v1/users/{id}/role"),
            json!({ "role": "analyst" }),
            Some(&root.access),
        )
        .await;
    assert_eq!(granted.status, 200, "{:?}", granted.body);
    api.login(name, "analyst-password").await
}

async fn store_positions(env: &TestEnv, sql_filter: &str) -> Vec<i64> {
    sqlx::query_scalar(&format!(
        "SELECT position FROM events WHERE {sql_filter} ORDER BY position"
    ))
    .fetch_all(&env.pool().await)
    .await
    .unwrap()
}

fn positions(items: &[Value]) -> Vec<i64> {
    items
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_from_position_zero_with_a_type_filter_return_exactly_the_matches_in_order() {
    let catalog = Catalog::start().await;
    let api = &catalog.command;
    let reader = analyst(api, &catalog.root, "ana").await;
    let mut skus = Vec::new();
    for n in 0..12 {
        skus.push(catalog.create(camera(n)).await.0);
    }
    for sku in skus.iter().step_by(2) {
        catalog.update(sku, json!({ "price": "1.00" })).await;
    }

    let mut items = Vec::new();
    let mut next = Some(0);
    let mut pages = 0;
    while let Some(after) = next {
        let page = api
            .get(
                &format!("/api/v1/events?type=ProductUpdated&after={after}&limit=4"),
                Some(&reader.access),
            )
            .await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        items.extend(page.body["items"].as_array().unwrap().clone());
        next = page.body["next_after"].as_i64();
        pages += 1;
    }
    assert_eq!(pages, 2, "6 matches by 4: a full page, then the last");
    assert!(items.iter().all(|e| e["event_type"] == "ProductUpdated"));
    let expected = store_positions(&catalog.env, "event_type = 'ProductUpdated'").await;
    assert_eq!(positions(&items), expected);
    assert_eq!(expected.len(), 6);

    // Several types, one aggregate, a time window.
    let first = &skus[0];
    let one = api
        .get(
            &format!("/api/v1/events?aggregate_id={first}&type=ProductCreated,ProductUpdated"),
            Some(&reader.access),
        )
        .await;
    let types: Vec<&str> = one.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["ProductCreated", "ProductUpdated"]);
    let future = api
        .get(
            "/api/v1/events?since=2099-01-01T00:00:00Z",
            Some(&reader.access),
        )
        .await;
    assert_eq!(future.body["items"], json!([]));
    let users = api
        .get("/api/v1/events?aggregate_type=user", Some(&reader.access))
        .await;
    assert!(
        users.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["aggregate_type"] == "user")
    );

    // NDJSON: every match, no paging.
    let response = api
        .request(Method::GET, "/api/v1/events?aggregate_type=product")
        .bearer_auth(&reader.access)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let body = response.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        positions(&lines),
        store_positions(&catalog.env, "aggregate_type = 'product'").await
    );

    // Who may read, and what is refused.
    assert_eq!(api.get("/api/v1/events", None).await.status, 401);
    api.register("pete", "pete-password").await;
    let publisher = api.login("pete", "pete-password").await;
    let refused = api.get("/api/v1/events", Some(&publisher.access)).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        api.get("/api/v1/events", Some(&catalog.root.access))
            .await
            .status,
        200,
        "admins may read too"
    );
    for bad in [
        "limit=0",
        "limit=1001",
        "after=-1",
        "after=x",
        "since=yesterday",
        "aggregate_id=nope",
        "type=Product%24Updated",
        "type%5B%24ne%5D=x",
        "after=1&cursor=2",
    ] {
        let reply = api
            .get(&format!("/api/v1/events?{bad}"), Some(&reader.access))
            .await;
        assert_eq!(reply.status, 400, "{bad}: {:?}", reply.body);
        assert_eq!(reply.code(), "invalid_parameter", "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_of_100000_events_streams_in_bounded_memory() {
    const EVENTS: i64 = 100_000;
    let env = TestEnv::new().await;
    let pool = env.pool().await;
    // 100,000 product creations of about 1 KB each, written straight into the store.
    sqlx::query(
        "INSERT INTO events (event_id, event_type, schema_version, aggregate_type, aggregate_id,
                             aggregate_version, occurred_at, correlation_id, data)
         SELECT gen_random_uuid(), 'ProductCreated', 1, 'product', gen_random_uuid(), 1, now(),
                gen_random_uuid(),
                jsonb_build_object('name', 'Camera ' || n, 'brand', 'Leica', 'price', '10.00',
                                   'currency', 'USD', 'description', repeat('d', 800),
                                   'specs', '{}'::jsonb)
         FROM generate_series(1, $1) AS n",
    )
    .bind(EVENTS)
    .execute(&pool)
    .await
    .unwrap();

    let mut env_vars = env.read_side_env();
    env_vars.extend([
        ("DATABASE_URL", env.database_url.clone()),
        ("SUPERUSER_USERNAME", "root".to_owned()),
        ("SUPERUSER_EMAIL", "root@example.com".to_owned()),
        ("SUPERUSER_PASSWORD", "root-password-1".to_owned()),
    ]);
    let command_api = Process::start("command-api", "COMMAND_API_ADDR", &env_vars).await;
    let pid = command_api.pid().unwrap();
    let client = reqwest::Client::new();
    let token = command_api.login("root", "root-password-1").await;
    // Let the relay publish the backlog first, so its work does not count.
    camreviews_tests::eventually(Duration::from_secs(120), || async {
        let published: Option<i64> =
            sqlx::query_scalar("SELECT position FROM relay_progress WHERE name = 'events'")
                .fetch_optional(&pool)
                .await
                .unwrap();
        (published.unwrap_or(0) > EVENTS).then_some(())
    })
    .await;

    let before = camreviews_tests::resident_bytes(pid);
    let mut response = client
        .get(command_api.url("/api/v1/events?type=ProductCreated"))
        .bearer_auth(&token)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (mut lines, mut bytes, mut last, mut peak) = (0_i64, 0_usize, 0_i64, before);
    let mut partial = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len();
        partial.extend_from_slice(&chunk);
        while let Some(end) = partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = partial.drain(..=end).collect();
            let envelope: Value = serde_json::from_slice(&line).unwrap();
            let position = envelope["position"].as_i64().unwrap();
            assert!(position > last, "out of order at {position}");
            last = position;
            lines += 1;
        }
        chunks += 1;
        if chunks % 16 == 0 {
            peak = peak.max(camreviews_tests::resident_bytes(pid));
        }
    }
    peak = peak.max(camreviews_tests::resident_bytes(pid));
    assert_eq!(lines, EVENTS);
    assert!(bytes > 90 << 20, "the export is large: {bytes} bytes");
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 32 << 20,
        "command-api grew by {} MiB while streaming {} MiB",
        grown >> 20,
        bytes >> 20
    );
}

/// Reads Server-Sent Events from a response: `(id, data)` of each event, comments skipped.
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    async fn open(api: &Api, path: &str, token: &str, last_event_id: Option<i64>) -> Self {
        let mut request = api
            .request(Method::GET, path)
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event, or `None` if none comes within `within`.
    async fn next_within(&mut self, within: Duration) -> Option<(i64, Value)> {
        tokio::time::timeout(within, self.next())
            .await
            .ok()
            .flatten()
    }

    async fn next(&mut self) -> Option<(i64, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut id = None;
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let Some(id) = id {
                    return Some((id, serde_json::from_str(&data).unwrap()));
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.response.chunk())
                .await
                .expect("no event within 20 s")
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_started_mid_history_sees_every_position_once_in_order_across_new_writes() {
    let catalog = Catalog::start().await;
    let api = &catalog.command;
    let reader = analyst(api, &catalog.root, "tess").await;
    let mut middle = 0;
    for n in 0..20 {
        let (_, position) = catalog.create(camera(n)).await;
        if n == 9 {
            middle = position;
        }
    }
    let mut tail = Sse::open(
        api,
        &format!("/api/v1/events/stream?after={middle}"),
        &reader.access,
        None,
    )
    .await;
    // Writes while the tail replays history and goes live.
    let writer = {
        let api = Api::new(&catalog.command_api);
        let token = catalog.root.access.clone();
        tokio::spawn(async move {
            let mut last = 0;
            for n in 100..130 {
                let created = api.post("/api/v1/products", camera(n), Some(&token)).await;
                assert_eq!(created.status, 201);
                last = created.body["position"].as_i64().unwrap();
            }
            last
        })
    };
    // Read while the writer writes. Its last event may reach the tail before its own answer
    // does, so the end is known only once the writer is done: read until the tail has it.
    let mut seen: Vec<i64> = Vec::new();
    let mut ids_match = true;
    let mut writer = Some(writer);
    let mut last = None;
    while last.is_none_or(|last| seen.last().is_none_or(|&id| id < last)) {
        tokio::select! {
            done = async { writer.as_mut().unwrap().await }, if writer.is_some() => {
                done.unwrap();
                writer = None;
                last = store_positions(&catalog.env, "true").await.last().copied();
            }
            next = tail.next_within(Duration::from_secs(30)) => {
                let (id, event) = next.expect("the tail stalled: no event for 30 s");
                ids_match &= event["position"] == id;
                seen.push(id);
            }
        }
    }
    let last = last.unwrap();
    assert!(ids_match, "the SSE id is the position");
    let expected = store_positions(
        &catalog.env,
        &format!("position > {middle} AND position <= {last}"),
    )
    .await;
    assert_eq!(seen, expected, "every position once, in order");

    // Reconnect with Last-Event-ID (it wins over `after`): the rest, then what is new.
    let resume_from = seen[seen.len() / 2];
    let mut resumed = Sse::open(
        api,
        "/api/v1/events/stream?after=0",
        &reader.access,
        Some(resume_from),
    )
    .await;
    let (_, position) = catalog.create(camera(500)).await;
    let mut again = Vec::new();
    while again.last() != Some(&position) {
        again.push(resumed.next().await.unwrap().0);
    }
    let expected = store_positions(
        &catalog.env,
        &format!("position > {resume_from} AND position <= {position}"),
    )
    .await;
    assert_eq!(again, expected);

    // A filtered tail from the start: only updates, live ones included.
    let mut updates = Sse::open(
        api,
        "/api/v1/events/stream?after=0&type=ProductUpdated",
        &reader.access,
        None,
    )
    .await;
    let sku = catalog.create(camera(600)).await.0;
    let updated = catalog.update(&sku, json!({ "name": "Renamed" })).await;
    let (id, event) = updates.next().await.unwrap();
    assert_eq!(
        (id, event["event_type"].as_str()),
        (updated, Some("ProductUpdated"))
    );

    // Signing out ends the tail.
    api.post("/api/v1/auth/logout", json!({}), Some(&reader.access))
        .await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while updates.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the tail stays open after logout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_committing_late_holds_the_tail_back_instead_of_being_skipped() {
    use eventstore::{self as store, ExpectedVersion, Metadata, StreamId};
    use shared::events::ProductEvent;

    let catalog = Catalog::start().await;
    let api = &catalog.command;
    let reader = analyst(api, &catalog.root, "lena").await;
    let (_, before) = catalog.create(camera(1)).await;
    // A writer takes the next position and stalls before committing.
    let pool = catalog.env.pool().await;
    let mut stalled = pool.begin().await.unwrap();
    let late = store::append_events(
        &mut stalled,
        StreamId::of::<ProductEvent>(uuid::Uuid::now_v7()),
        ExpectedVersion::NoStream,
        &[crate::product_created("Late")],
        &Metadata::new(None),
    )
    .await
    .unwrap()
    .position;
    // Others commit after it.
    let mut after_it = Vec::new();
    for n in 2..5 {
        after_it.push(catalog.create(camera(n)).await.1);
    }
    assert!(after_it.iter().all(|p| *p > late));

    let mut tail = Sse::open(
        api,
        &format!("/api/v1/events/stream?after={before}"),
        &reader.access,
        None,
    )
    .await;
    let page = api
        .get(
            &format!("/api/v1/events?after={before}"),
            Some(&reader.access),
        )
        .await;
    assert_eq!(
        page.body["items"],
        json!([]),
        "nothing past an unsettled position"
    );
    assert!(
        tail.next_within(Duration::from_millis(1500))
            .await
            .is_none(),
        "the tail waits for the stalled writer"
    );
    stalled.commit().await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(tail.next().await.unwrap().0);
    }
    let mut expected = vec![late];
    expected.extend(&after_it);
    assert_eq!(seen, expected, "the late event first, nothing skipped");
}
