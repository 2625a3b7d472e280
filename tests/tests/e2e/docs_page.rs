//! `/docs` on both APIs: the OpenAPI document covers every route the code serves, and a real
//! headless Chromium, cut off from everything but the service, renders every endpoint.

use std::{collections::BTreeSet, path::PathBuf, process::Stdio};

use camreviews_tests::{Running, TestEnv};
use serde_json::Value;
use tokio::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// `METHOD /path` of every `.route("/path", get(..).post(..))` in a crate's `src/http/`.
fn routes_in_code(krate: &str) -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    let mut files = Vec::new();
    let mut dirs = vec![root().join(krate).join("src/http")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for file in files {
        let source = std::fs::read_to_string(file).unwrap();
        // Routes registered with their documentation (`utoipa_axum::routes!` reads the
        // handler's `#[utoipa::path(...)]`)...
        for attribute in source.split("#[utoipa::path(").skip(1) {
            let method = attribute
                .trim_start()
                .split(|c: char| !c.is_ascii_alphabetic())
                .next()
                .unwrap();
            let path = attribute
                .split("path = \"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap();
            routes.insert(format!("{} {path}", method.to_uppercase()));
        }
        // ...and any registered by hand.
        let mut rest = source.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            // The call's text, up to its closing parenthesis.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            let call = &rest[..end];
            let Some(path) = call.split('"').nth(1) else {
                continue;
            };
            for method in ["get", "post", "put", "delete"] {
                let needle = format!("{method}(");
                // `get(` as a call of its own, not the end of another name.
                let called = call.match_indices(&needle).any(|(i, _)| {
                    !call[..i]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                });
                if called {
                    routes.insert(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
    }
    routes
}

fn routes_in_spec(spec: &Value) -> BTreeSet<String> {
    spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect()
}

/// The page as Chromium rendered it, with every host but loopback unreachable.
async fn rendered(url: &str) -> String {
    let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "chromium".to_owned());
    let profile = tempdir();
    let output = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.display()),
            // Networking to the outside is off: names do not resolve, and everything that is
            // not loopback goes to a proxy that is not there.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--proxy-server=http://127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run {chromium} ({e}); scripts/test.sh installs it (apt-get install chromium)")
        });
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chromium-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn check(service: &Running, krate: &str) {
    let spec: Value = reqwest::get(service.url("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let documented = routes_in_spec(&spec);
    let served = routes_in_code(krate);
    assert!(served.len() > 5, "routes found in {krate}: {served:?}");
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "{krate} serves undocumented routes: {undocumented:?}"
    );
    let phantom: Vec<_> = documented.difference(&served).collect();
    assert!(
        phantom.is_empty(),
        "{krate} documents routes it does not serve: {phantom:?}"
    );
    // Every operation has a summary, an example of each answer, and a schema for it.
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(operation["summary"].is_string(), "{method} {path}");
            for (status, answer) in operation["responses"].as_object().unwrap() {
                for media in answer["content"]
                    .as_object()
                    .into_iter()
                    .flat_map(|c| c.values())
                {
                    assert!(
                        !media["example"].is_null() && media["schema"].is_object(),
                        "{method} {path} {status} has an example and a schema"
                    );
                }
            }
        }
    }

    let dom = rendered(&service.url("/docs")).await;
    let count = documented.len();
    assert!(
        dom.contains(&format!("data-rendered=\"{count}\"")),
        "{krate}: the page renders all {count} operations:\n{}",
        &dom[..dom.len().min(2000)]
    );
    for route in &documented {
        assert!(
            dom.contains(&format!("data-operation=\"{route}\"")),
            "{krate}: {route} is not on the page"
        );
    }
    assert!(
        !dom.contains("id=\"error\">Could not load"),
        "{krate}: the page failed to load its document"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_pages_list_every_endpoint_in_a_browser_without_internet() {
    let env = TestEnv::new().await;
    let command_api = env.spawn_command_api().await;
    let query_api = env.spawn_query_api().await;
    check(&command_api, "command-api").await;
    check(&query_api, "query-api").await;
}
