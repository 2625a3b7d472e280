//! The catalog's command side: admins create, update and delete products; validation,
//! optimistic concurrency with If-Match, and who may do it.

use camreviews_tests::{Api, TestEnv, Tokens};
use reqwest::Method;
use serde_json::{Value, json};

async fn admin(env: &TestEnv) -> (Api, Tokens) {
    let api = Api::new(&env.spawn_command_api_with_superuser().await);
    let tokens = api.login(TestEnv::SUPERUSER.0, TestEnv::SUPERUSER.1).await;
    (api, tokens)
}

fn camera() -> Value {
    json!({ "name": "Q3", "brand": "Leica", "price": "5995.00", "description": "A fixed-lens camera", "specs": { "sensor": "full frame" } })
}

async fn with_if_match(
    api: &Api,
    method: Method,
    path: &str,
    if_match: &str,
    body: Option<Value>,
    token: &str,
) -> camreviews_tests::Reply {
    let mut request = api
        .request(method, path)
        .bearer_auth(token)
        .header("if-match", if_match);
    if let Some(body) = body {
        request = request.json(&body);
    }
    Api::reply(request.send().await.unwrap()).await
}

#[tokio::test]
async fn an_admin_creates_updates_and_deletes_a_product() {
    let env = TestEnv::new().await;
    let (api, root) = admin(&env).await;
    let created = api
        .post("/api/v1/products", camera(), Some(&root.access))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let sku = created.body["sku"].as_str().unwrap().to_owned();
    assert_eq!(created.body["version"], 1);
    let position = created.body["position"].as_i64().unwrap();
    assert_eq!(
        created.header("x-event-position"),
        Some(position.to_string().as_str())
    );
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/products/{sku}").as_str())
    );

    let path = format!("/api/v1/products/{sku}");
    let updated = api
        .put(
            &path,
            json!({ "price": 5795, "name": "Q3" }),
            Some(&root.access),
        )
        .await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(updated.body["version"], 2);
    assert!(updated.body["position"].as_i64().unwrap() > position);

    let pool = env.pool().await;
    let (changes, actor): (Value, Value) = sqlx::query_as(
        "SELECT data->'changes', actor FROM events WHERE event_type = 'ProductUpdated' AND aggregate_id = $1::uuid",
    )
    .bind(&sku)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        changes,
        json!({ "price": { "before": "5995.00", "after": "5795.00" } }),
        "only what changed, before and after"
    );
    assert_eq!(actor["role"], "admin");

    let unchanged = api
        .put(&path, json!({ "brand": "Leica" }), Some(&root.access))
        .await;
    assert_eq!(
        (
            unchanged.status.as_u16(),
            unchanged.body["version"].as_i64()
        ),
        (200, Some(2))
    );
    assert!(unchanged.body["position"].is_null() && unchanged.header("x-event-position").is_none());

    let deleted = api.delete(&path, Some(&root.access)).await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.header("x-event-position").is_some());
    assert_eq!(
        api.put(&path, json!({ "price": "1" }), Some(&root.access))
            .await
            .status,
        404,
        "a deleted product can't be updated"
    );
    assert_eq!(api.delete(&path, Some(&root.access)).await.status, 404);
}

#[tokio::test]
async fn creating_with_an_existing_sku_is_409() {
    let env = TestEnv::new().await;
    let (api, root) = admin(&env).await;
    let mut body = camera();
    body["sku"] = json!("0190a1b2-0000-7000-8000-000000000001");
    assert_eq!(
        api.post("/api/v1/products", body.clone(), Some(&root.access))
            .await
            .status,
        201
    );
    let again = api.post("/api/v1/products", body, Some(&root.access)).await;
    assert_eq!((again.status.as_u16(), again.code()), (409, "conflict"));
}

#[tokio::test]
async fn invalid_products_are_422_with_one_entry_per_field_and_write_nothing() {
    let env = TestEnv::new().await;
    let (api, root) = admin(&env).await;
    let pool = env.pool().await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    let bad = json!({
        "sku": "not-a-uuid", "name": "", "brand": "b".repeat(101), "price": "-1",
        "currency": "usd", "specs": { "lens": { "mm": 28 } }
    });
    let reply = api.post("/api/v1/products", bad, Some(&root.access)).await;
    assert_eq!(
        (reply.status.as_u16(), reply.code()),
        (422, "validation_failed")
    );
    let mut fields: Vec<&str> = reply.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["brand", "currency", "name", "price", "sku", "specs"]
    );

    let missing = api
        .post(
            "/api/v1/products",
            json!({ "description": "x" }),
            Some(&root.access),
        )
        .await;
    assert_eq!(
        missing.body["errors"].as_array().unwrap().len(),
        3,
        "name, brand, price: {:?}",
        missing.body
    );
    for price in [json!("1.999"), json!(true), json!("12,50")] {
        let reply = api
            .post(
                "/api/v1/products",
                json!({ "name": "n", "brand": "b", "price": price }),
                Some(&root.access),
            )
            .await;
        assert_eq!(reply.status, 422, "price {price}");
    }
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(after, before);
}

#[tokio::test]
async fn a_stale_if_match_is_412_and_a_current_one_passes() {
    let env = TestEnv::new().await;
    let (api, root) = admin(&env).await;
    let sku = api
        .post("/api/v1/products", camera(), Some(&root.access))
        .await
        .body["sku"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/products/{sku}");
    let ok = with_if_match(
        &api,
        Method::PUT,
        &path,
        "\"1\"",
        Some(json!({ "price": "1.00" })),
        &root.access,
    )
    .await;
    assert_eq!(ok.status, 200);
    let stale = with_if_match(
        &api,
        Method::PUT,
        &path,
        "1",
        Some(json!({ "price": "2.00" })),
        &root.access,
    )
    .await;
    assert_eq!(
        (stale.status.as_u16(), stale.code()),
        (412, "version_mismatch")
    );
    let stale_delete = with_if_match(&api, Method::DELETE, &path, "1", None, &root.access).await;
    assert_eq!(stale_delete.status, 412);
    let garbage = with_if_match(
        &api,
        Method::PUT,
        &path,
        "soon",
        Some(json!({ "price": "2.00" })),
        &root.access,
    )
    .await;
    assert_eq!(
        (garbage.status.as_u16(), garbage.code()),
        (400, "invalid_parameter")
    );
    let current = with_if_match(&api, Method::DELETE, &path, "2", None, &root.access).await;
    assert_eq!(current.status, 204);
}

#[tokio::test]
async fn only_admins_manage_products() {
    let env = TestEnv::new().await;
    let (api, root) = admin(&env).await;
    let sku = api
        .post("/api/v1/products", camera(), Some(&root.access))
        .await
        .body["sku"]
        .as_str()
        .unwrap()
        .to_owned();
    api.register("pedro", "pedro-password").await;
    let publisher = api.login("pedro", "pedro-password").await;
    let path = format!("/api/v1/products/{sku}");
    for (token, expected) in [(Some(publisher.access.as_str()), 403), (None, 401)] {
        assert_eq!(
            api.post("/api/v1/products", camera(), token).await.status,
            expected
        );
        assert_eq!(
            api.put(&path, json!({ "price": "1" }), token).await.status,
            expected
        );
        assert_eq!(api.delete(&path, token).await.status, expected);
    }
}

#[tokio::test]
async fn a_retried_create_with_its_idempotency_key_creates_one_product() {
    let env = TestEnv::new().await;
    let (api, root) = admin(&env).await;
    let send = || async {
        let request = api
            .request(Method::POST, "/api/v1/products")
            .bearer_auth(&root.access)
            .header("idempotency-key", "create-q3");
        Api::reply(request.json(&camera()).send().await.unwrap()).await
    };
    let (first, again) = (send().await, send().await);
    assert_eq!((first.status.as_u16(), again.status.as_u16()), (201, 201));
    assert_eq!(
        again.body["sku"], first.body["sku"],
        "the same product, not a second one"
    );
    let created: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'ProductCreated'")
            .fetch_one(&env.pool().await)
            .await
            .unwrap();
    assert_eq!(created, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_are_serialised_and_if_match_lets_exactly_one_win() {
    let env = TestEnv::new().await;
    let (api, root) = admin(&env).await;
    let sku = api
        .post("/api/v1/products", camera(), Some(&root.access))
        .await
        .body["sku"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/products/{sku}");

    let blind = (0..6).map(|i| {
        let (api, path, token) = (api.clone(), path.clone(), root.access.clone());
        tokio::spawn(async move {
            api.put(
                &path,
                json!({ "price": format!("{}.00", 100 + i) }),
                Some(&token),
            )
            .await
        })
    });
    let replies: Vec<_> = futures::future::join_all(blind)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(
        replies.iter().all(|r| r.status == 200),
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let mut versions: Vec<i64> = replies
        .iter()
        .map(|r| r.body["version"].as_i64().unwrap())
        .collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (2..=7).collect::<Vec<_>>(),
        "each write got its own version"
    );

    let guarded = (0..6).map(|i| {
        let (api, path, token) = (api.clone(), path.clone(), root.access.clone());
        tokio::spawn(async move {
            with_if_match(
                &api,
                Method::PUT,
                &path,
                "7",
                Some(json!({ "price": format!("{}.00", 200 + i) })),
                &token,
            )
            .await
        })
    });
    let replies: Vec<_> = futures::future::join_all(guarded)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(replies.iter().filter(|r| r.status == 200).count(), 1);
    assert!(
        replies
            .iter()
            .filter(|r| r.status != 200)
            .all(|r| r.status == 412 && r.code() == "version_mismatch")
    );
}
