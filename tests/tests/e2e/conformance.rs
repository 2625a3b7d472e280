//! Both APIs against their own OpenAPI documents, as an independent client would check them:
//! schemathesis (PyPI, installed by `scripts/test.sh` into `.tools/venv`) generates requests
//! from `/api/v1/openapi.json` — valid ones and invalid ones — sends them to the running
//! services and checks every answer: no server error, a documented status, a documented
//! content type, a body that fits the documented schema, invalid data refused and valid data
//! accepted. Per-operation allowances (a valid request refused for a reason no schema can
//! express: a wrong current password, a stale `If-Match`) are in `tests/schemathesis.toml`,
//! each with its reason.

use std::{path::PathBuf, process::Command};

use camreviews_tests::{Api, Running, TestEnv};

const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_schema_conformance,negative_data_rejection,positive_data_acceptance";

fn config_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemathesis.toml")
}

/// Operations that end the caller's own session (logging out, ending one's sessions, a
/// password change): fuzzed in a run of their own, so the token the other operations are
/// fuzzed with stays valid.
const ENDING_SESSIONS: [&str; 4] = [
    "POST /api/v1/auth/logout",
    "DELETE /api/v1/users/me/sessions",
    "DELETE /api/v1/users/{id}/sessions",
    "PUT /api/v1/users/me",
];

/// An endless server-sent event stream, which a request/response fuzzer cannot wait out; its
/// statuses and problems are the event log's, tested in `event_log.rs`.
const ENDLESS: &str = "GET /api/v1/events/stream";

/// Which operations of a document a run takes.
enum Only<'a> {
    All,
    Excluding(&'a [&'a str]),
    Including(&'a [&'a str]),
}

/// Runs schemathesis against `service`, signed in with `token`; panics with its report on any
/// failure.
fn fuzz(service: &Running, token: &str, name: &str, only: Only) {
    let bin = std::env::var("SCHEMATHESIS_BIN").unwrap_or_else(|_| "schemathesis".to_owned());
    // Only the run of the operations that end sessions may lose its own.
    let keeps_session = !matches!(only, Only::Including(_));
    let mut command = Command::new(&bin);
    command
        .arg("--config-file")
        .arg(config_file())
        .args(["--no-color", "run"])
        .arg(service.url("/api/v1/openapi.json"))
        .args(["--url", &service.url("")])
        .args(["--checks", CHECKS])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "30", "--seed", "20261202"])
        // One worker: generation is CPU-bound Python, so more would not be faster, and
        // hypothesis's source inspection is not thread-safe (an "AST constructor recursion
        // depth mismatch" error with several).
        .args(["--workers", "1"])
        .args(["--no-shrink", "--generation-database", "none"])
        .args(["--request-timeout", "10"]);
    match only {
        Only::All => {}
        Only::Excluding(names) => {
            for name in names {
                command.args(["--exclude-name", name]);
            }
        }
        Only::Including(names) => {
            for name in names {
                command.args(["--include-name", name]);
            }
        }
    }
    let output = command.output().unwrap_or_else(|e| {
        panic!("cannot run {bin} ({e}); scripts/test.sh installs it (pip install schemathesis)")
    });
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{name} does not conform to its OpenAPI document:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !keeps_session || !report.contains("Authentication failed"),
        "{name}: the run lost its session, so operations went untested:\n{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn both_apis_answer_as_their_openapi_documents_say() {
    let env = TestEnv::new().await;
    let command = env.spawn_command_api_with_superuser().await;
    let _projector = env.spawn_projector().await;
    // Reads asking for a position the read models will never reach (the fuzzer picks any)
    // give up after 100 ms instead of 5 s, so the run takes minutes, not hours.
    let query = env
        .spawn_query_api_with(query_api::Config {
            max_wait: std::time::Duration::from_millis(100),
            ..env.query_api_config()
        })
        .await;
    let api = Api::new(&command);
    let (username, password) = TestEnv::SUPERUSER;
    let admin = api.login(username, password).await;
    // Something to read, so reads answer 200 as well as 404.
    for name in ["Q3", "X100VI"] {
        let created = api
            .post(
                "/api/v1/products",
                serde_json::json!({ "name": name, "brand": "Leica", "price": "5995.00" }),
                Some(&admin.access),
            )
            .await;
        assert_eq!(created.status, 201, "{:?}", created.body);
    }
    let tokens = [admin.access, api.login(username, password).await.access];
    let (command, query) = tokio::task::spawn_blocking(move || {
        let [token, ending] = &tokens;
        fuzz(&query, token, "query-api", Only::All);
        let mut excluded = ENDING_SESSIONS.to_vec();
        excluded.push(ENDLESS);
        fuzz(&command, token, "command-api", Only::Excluding(&excluded));
        fuzz(
            &command,
            ending,
            "command-api (ending sessions)",
            Only::Including(&ENDING_SESSIONS),
        );
        (command, query)
    })
    .await
    .unwrap();
    drop((command, query));
}
