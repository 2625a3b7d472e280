//! Running it for real: graceful shutdown under load, rate limits, and the metrics operators
//! graph.

use std::{collections::BTreeSet, time::Duration};

use camreviews_tests::{Api, Process, TestEnv, stream};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::catalog::camera;

fn command_api_env(env: &TestEnv, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut vars = env.read_side_env();
    vars.extend([
        ("DATABASE_URL", env.database_url.clone()),
        ("SUPERUSER_USERNAME", TestEnv::SUPERUSER.0.to_owned()),
        ("SUPERUSER_EMAIL", "root@example.com".to_owned()),
        ("SUPERUSER_PASSWORD", TestEnv::SUPERUSER.1.to_owned()),
    ]);
    vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    vars
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_of_commands_loses_no_accepted_event() {
    let env = TestEnv::new().await;
    let mut command_api = Process::start(
        "command-api",
        "COMMAND_API_ADDR",
        &command_api_env(&env, &[("RATE_LIMIT_USER", "0")]),
    )
    .await;
    let client = reqwest::Client::new();
    let token = command_api
        .login(TestEnv::SUPERUSER.0, TestEnv::SUPERUSER.1)
        .await;
    let url = command_api.url("/api/v1/products");
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (client, token, url) = (client.clone(), token.clone(), url.clone());
            tokio::spawn(async move {
                let mut accepted = Vec::new();
                for n in 0.. {
                    let sent = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&camera(w * 100_000 + n))
                        .send()
                        .await;
                    // Refused or cut off once the server stops taking requests.
                    let Ok(response) = sent else { break };
                    if response.status() != StatusCode::CREATED {
                        break;
                    }
                    let Ok(body) = response.json::<Value>().await else {
                        break;
                    };
                    accepted.push(body["position"].as_i64().unwrap());
                }
                accepted
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    command_api.terminate();
    let status = tokio::time::timeout(Duration::from_secs(30), command_api.wait())
        .await
        .expect("command-api exits within 30 s of SIGTERM");
    assert!(status.success(), "a clean exit: {status}");
    let mut accepted = BTreeSet::new();
    for writer in writers {
        accepted.extend(writer.await.unwrap());
    }
    assert!(
        accepted.len() > 20,
        "the burst was running: {}",
        accepted.len()
    );

    // In the store, and on NATS (published before the process exited).
    let stored: BTreeSet<i64> = sqlx::query_scalar("SELECT position FROM events")
        .fetch_all(&env.pool().await)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert!(
        accepted.is_subset(&stored),
        "an accepted command's event is missing from the store"
    );
    let js = env.jetstream().await;
    let published: BTreeSet<i64> = stream::read_events(
        &js,
        &env.prefix.events_stream(),
        stored.len(),
        Duration::from_secs(10),
    )
    .await
    .into_iter()
    .map(|e| e.position)
    .collect();
    let missing: Vec<_> = accepted.difference(&published).collect();
    assert!(missing.is_empty(), "accepted but not on NATS: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_after_the_limit_gets_429_and_other_clients_are_unaffected() {
    let env = TestEnv::new().await;
    let mut config = env.query_api_config();
    config.rate_limit = shared::http::RateLimitConfig {
        anonymous_per_minute: 5,
        user_per_minute: 3,
        trust_proxy: true,
    };
    let query_app = query_api::Application::build(config).await.unwrap();
    let port = query_app.port();
    let query_api =
        camreviews_tests::Running::spawn(port, |shutdown| query_app.run_until_stopped(shutdown));
    let api = Api::new(&query_api);
    let command = Api::new(&env.spawn_command_api().await);
    command.register("lima", "lima-password").await;
    let lima = command.login("lima", "lima-password").await;

    let get = |address: &'static str, token: Option<String>| {
        let request = api
            .request(reqwest::Method::GET, "/api/v1/products")
            .header("x-real-ip", address);
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move { request.send().await.unwrap() }
    };
    // Anonymous, by address: five, then 429.
    for n in 0..5 {
        let reply = get("203.0.113.7", None).await;
        assert_eq!(reply.status(), 200, "request {n}");
        assert_eq!(reply.headers()["ratelimit-limit"], "5");
        assert_eq!(
            reply.headers()["ratelimit-remaining"],
            (4 - n).to_string().as_str()
        );
    }
    let refused = get("203.0.113.7", None).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited");
    // Another address is not affected.
    assert_eq!(get("203.0.113.8", None).await.status(), 200);

    // Signed in, by user, whatever the address.
    for address in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert_eq!(get(address, Some(lima.access.clone())).await.status(), 200);
    }
    assert_eq!(
        get("198.51.100.4", Some(lima.access.clone()))
            .await
            .status(),
        429
    );
    // Health and metrics are never limited.
    for _ in 0..10 {
        let health = reqwest::get(query_api.url("/healthz")).await.unwrap();
        assert_eq!(health.status(), 200);
    }
}

/// The value of every sample of `name` in a Prometheus text page.
fn samples<'a>(page: &'a str, name: &str) -> Vec<&'a str> {
    page.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_named_series_after_a_short_workload() {
    // Each service as its own process, so each /metrics page is that service's alone.
    let env = TestEnv::new().await;
    let command_api = Process::start(
        "command-api",
        "COMMAND_API_ADDR",
        &command_api_env(&env, &[]),
    )
    .await;
    let read_side = env.read_side_env();
    let projector = Process::start("projector", "PROJECTOR_ADDR", &read_side).await;
    let query_api = Process::start("query-api", "QUERY_API_ADDR", &read_side).await;
    let notifier = Process::start("notifier", "NOTIFIER_ADDR", &read_side).await;

    let client = reqwest::Client::new();
    let token = command_api
        .login(TestEnv::SUPERUSER.0, TestEnv::SUPERUSER.1)
        .await;
    let created: Value = camreviews_tests::json_of(
        client
            .post(command_api.url("/api/v1/products"))
            .bearer_auth(&token)
            .json(&camera(1)),
    )
    .await;
    let sku = created["sku"].as_str().unwrap();
    let updated = client
        .put(command_api.url(&format!("/api/v1/products/{sku}")))
        .bearer_auth(&token)
        .json(&json!({ "price": "2.00" }))
        .send()
        .await
        .unwrap();
    let position = updated.headers()["x-event-position"]
        .to_str()
        .unwrap()
        .to_owned();
    let detail = client
        .get(query_api.url(&format!("/api/v1/products/{sku}")))
        .header("x-min-position", position)
        .header("x-max-wait-ms", "5000")
        .send()
        .await
        .unwrap();
    assert_eq!(detail.status(), 200);

    let page = |url: String| async move { reqwest::get(url).await.unwrap().text().await.unwrap() };
    // Gauges are refreshed every few seconds; wait for the last of them.
    let mut pages = Default::default();
    for _ in 0..40 {
        pages = (
            page(command_api.url("/metrics")).await,
            page(query_api.url("/metrics")).await,
            page(projector.url("/metrics")).await,
            page(notifier.url("/metrics")).await,
        );
        let ready = !samples(&pages.2, "projector_model_position").is_empty()
            && !samples(&pages.3, "notifier_views_tallied_total").is_empty()
            && !samples(&pages.0, "relay_lag_events").is_empty();
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (command, query, projector, notifier) = pages;
    let expected: [(&str, &str, &str); 14] = [
        ("command-api", &command, "http_requests_total"),
        (
            "command-api",
            &command,
            "http_request_duration_seconds_bucket",
        ),
        ("command-api", &command, "events_appended_total"),
        ("command-api", &command, "relay_lag_events"),
        ("query-api", &query, "http_requests_total"),
        ("query-api", &query, "http_request_duration_seconds_bucket"),
        ("query-api", &query, "query_views_published_total"),
        ("projector", &projector, "projector_lag_events"),
        ("projector", &projector, "projector_model_position"),
        ("projector", &projector, "nats_consumer_pending"),
        ("projector", &projector, "dlq_depth"),
        ("notifier", &notifier, "notifier_mails_sent_total"),
        ("notifier", &notifier, "notifier_mail_failures_total"),
        ("notifier", &notifier, "notifier_views_tallied_total"),
    ];
    for (service, page, name) in expected {
        assert!(
            !samples(page, name).is_empty(),
            "{service} /metrics lacks {name}:\n{page}"
        );
    }
    let route = samples(&command, "http_requests_total")
        .into_iter()
        .any(|l| l.contains(r#"route="/api/v1/products/{sku}""#) && l.contains(r#"method="PUT""#));
    assert!(route, "per-route counts, labelled by pattern: {command}");
    let model = samples(&projector, "projector_model_position")
        .into_iter()
        .any(|l| l.contains(r#"model="products""#));
    assert!(model, "the products model's position: {projector}");
    assert!(
        samples(&query, "events_appended_total").is_empty(),
        "each page is its own service's"
    );
}
