//! camctl against a real event store.

use std::process::Stdio;

use camreviews_tests::{Api, TestEnv, binary};
use tokio::{io::AsyncWriteExt, process::Command};

async fn camctl(env: &TestEnv, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(binary("camctl"))
        .args(args)
        .env("DATABASE_URL", &env.database_url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .await
        .unwrap();
    let output = child.wait_with_output().await.unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn create_superuser_reads_the_password_from_stdin_and_refuses_a_second_one() {
    let env = TestEnv::new().await;
    let args = [
        "users",
        "create-superuser",
        "--username",
        "Chief",
        "--email",
        "chief@example.com",
    ];
    let (code, stdout, stderr) = camctl(&env, &args, "chief-password\n").await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("created superuser chief"));

    let (code, _, stderr) = camctl(&env, &args, "another-password\n").await;
    assert_eq!(code, 3, "a second superuser is refused: {stderr}");

    let api = Api::new(&env.spawn_command_api().await);
    let tokens = api.login("chief", "chief-password").await;
    let me = api
        .put(
            "/api/v1/users/me",
            serde_json::json!({}),
            Some(&tokens.access),
        )
        .await;
    assert_eq!(me.body["is_superuser"], true);

    let (code, _, stderr) = camctl(
        &env,
        &[
            "users",
            "create-superuser",
            "--username",
            "x y",
            "--email",
            "e@example.com",
        ],
        "pw-pw-pw-pw\n",
    )
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("--username"), "{stderr}");
}

#[tokio::test]
async fn events_replay_prints_every_event_as_ndjson_and_filters_by_type() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    api.register("wanda", "wanda-password").await;
    let tokens = api.login("wanda", "wanda-password").await;
    api.post(
        "/api/v1/auth/logout",
        serde_json::json!({}),
        Some(&tokens.access),
    )
    .await;

    let (code, stdout, _) = camctl(&env, &["events", "replay"], "").await;
    assert_eq!(code, 0);
    let types: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event_type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(types, ["UserRegistered", "SessionRevoked"]);

    let (_, stdout, _) = camctl(
        &env,
        &[
            "events",
            "replay",
            "--type",
            "SessionRevoked",
            "--format",
            "table",
        ],
        "",
    )
    .await;
    assert_eq!(stdout.lines().count(), 2, "a header and one row: {stdout}");
    assert!(stdout.contains("SessionRevoked") && !stdout.contains("UserRegistered"));
}
