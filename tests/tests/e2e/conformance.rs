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

/// Runs schemathesis against `service`, signed in with `token`; panics with its report on any
/// failure.
fn fuzz(service: &Running, token: &str, name: &str) {
    let bin = std::env::var("SCHEMATHESIS_BIN").unwrap_or_else(|_| "schemathesis".to_owned());
    let output = Command::new(&bin)
        .arg("--config-file")
        .arg(config_file())
        .args(["--no-color", "run"])
        .arg(service.url("/api/v1/openapi.json"))
        .args(["--url", &service.url("")])
        .args(["--checks", CHECKS])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args([
            "--max-examples",
            "30",
            "--seed",
            "20261202",
            "--workers",
            "2",
        ])
        .args(["--generation-database", "none", "--request-timeout", "10"])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {bin} ({e}); scripts/test.sh installs it (pip install schemathesis)")
        });
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{name} does not conform to its OpenAPI document:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn both_apis_answer_as_their_openapi_documents_say() {
    let env = TestEnv::new().await;
    let command = env.spawn_command_api_with_superuser().await;
    let _projector = env.spawn_projector().await;
    let query = env.spawn_query_api().await;
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
    let token = admin.access.clone();
    let (command, query) = tokio::task::spawn_blocking(move || {
        fuzz(&query, &token, "query-api");
        fuzz(&command, &token, "command-api");
        (command, query)
    })
    .await
    .unwrap();
    drop((command, query));
}
