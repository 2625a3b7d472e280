//! camctl against a real event store.

use std::process::Stdio;

use camreviews_tests::{Api, TestEnv, binary};
use tokio::{io::AsyncWriteExt, process::Command};

/// Runs camctl against this test's stores; its exit code, standard output and error.
pub async fn camctl(env: &TestEnv, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(binary("camctl"))
        .args(args)
        .env_clear()
        .env("DATABASE_URL", &env.database_url)
        .env("MONGODB_URL", &env.mongo.url)
        .env("MONGODB_DB", &env.mongo.db)
        .env("NATS_URL", &env.nats_url)
        .env("NATS_PREFIX", env.prefix.as_str())
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

#[tokio::test]
async fn help_names_the_commands_and_exit_codes_and_bad_usage_exits_2() {
    let env = TestEnv::new().await;
    let (code, stdout, _) = camctl(&env, &["--help"], "").await;
    assert_eq!(code, 0);
    for needle in [
        "events",
        "projections",
        "dlq",
        "users",
        "Exit codes",
        "5  busy",
    ] {
        assert!(
            stdout.contains(needle),
            "--help lacks {needle:?}:\n{stdout}"
        );
    }
    let (code, stdout, _) = camctl(&env, &["projections", "rebuild", "--help"], "").await;
    assert_eq!(code, 0);
    assert!(stdout.contains("users, products"), "{stdout}");
    for bad in [
        &["projections", "rebuild", "everything"][..],
        &["dlq", "requeue"],
        &["events", "replay", "--since", "yesterday"],
        &["no-such-command"],
    ] {
        let (code, _, stderr) = camctl(&env, bad, "").await;
        assert_eq!(code, 2, "{bad:?}: {stderr}");
    }
}

#[tokio::test]
async fn events_replay_starts_at_a_position_filters_and_shows_progress() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    let mut ids = Vec::new();
    for name in ["amy", "ben", "cat", "dan"] {
        ids.push(
            api.register(name, "a-good-password").await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (code, stdout, stderr) = camctl(
        &env,
        &[
            "events",
            "replay",
            "--from-position",
            "3",
            "--progress",
            "always",
        ],
        "",
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let positions: Vec<i64> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["position"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(positions, [3, 4], "from position 3, inclusive");
    assert!(
        stderr.contains("events/s") && stderr.contains("ETA") && stderr.contains("100%"),
        "a progress bar: {stderr:?}"
    );

    let (_, stdout, stderr) = camctl(
        &env,
        &[
            "events",
            "replay",
            "--aggregate-id",
            &ids[1],
            "--aggregate-type",
            "user",
        ],
        "",
    )
    .await;
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains(&ids[1]));
    assert!(
        stderr.is_empty(),
        "no progress bar unless asked or on a terminal: {stderr:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_prints_events_as_they_are_published() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    api.register("early", "a-good-password").await;
    let js = env.jetstream().await;
    // The tail shows what reaches the stream after it starts. An accepted command's event is
    // in the store at once but on the stream only when the relay has published it: wait for
    // that, or "early" is new to the tail too.
    camreviews_tests::eventually(std::time::Duration::from_secs(10), || async {
        // The relay creates the stream when it starts: it may not be there yet.
        let mut stream = js.get_stream(env.prefix.events_stream()).await.ok()?;
        let last = stream.info().await.ok()?.state.last_sequence;
        let message = stream.get_raw_message(last).await.ok()?;
        String::from_utf8_lossy(&message.payload)
            .contains("\"early\"")
            .then_some(())
    })
    .await;
    let mut tail = Command::new(binary("camctl"))
        .args([
            "events",
            "tail",
            "--filter",
            "events.user.>",
            "--format",
            "ndjson",
            "--count",
            "2",
        ])
        .env_clear()
        .env("NATS_URL", &env.nats_url)
        .env("NATS_PREFIX", env.prefix.as_str())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Writes start once the tail's consumer exists (it shows what is new).
    camreviews_tests::eventually(std::time::Duration::from_secs(10), || async {
        let mut stream = js.get_stream(env.prefix.events_stream()).await.unwrap();
        (stream.info().await.unwrap().state.consumer_count > 0).then_some(())
    })
    .await;
    api.register("first", "a-good-password").await;
    api.register("second", "a-good-password").await;
    let output = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        tail.wait().await.unwrap();
        let mut stdout = String::new();
        use tokio::io::AsyncReadExt as _;
        tail.stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .await
            .unwrap();
        stdout
    })
    .await
    .expect("the tail stops after --count events");
    let names: Vec<String> = output
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["data"]["username"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["first", "second"], "only new events, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_status_shows_position_lag_and_each_read_model() {
    let catalog = crate::catalog::Catalog::start().await;
    let (_, position) = catalog.create(crate::catalog::camera(1)).await;
    let live = shared::mongo::connect(&catalog.env.mongo, "tests")
        .await
        .unwrap();
    crate::catalog::replay::wait_applied(&live, position).await;

    let (code, stdout, stderr) = camctl(
        &catalog.env,
        &["projections", "status", "--format", "json"],
        "",
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["applied_position"], position);
    assert_eq!(status["store_position"], position);
    assert_eq!(status["lag_events"], 0);
    let models: Vec<&str> = status["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["users", "products", "reviews"]);
    assert_eq!(status["models"][1]["documents"]["products"], 1);
    assert!(
        status["consumers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "projector" && c["pending"] == 0),
        "{status}"
    );

    let (code, table, _) = camctl(&catalog.env, &["projections", "status"], "").await;
    assert_eq!(code, 0);
    assert!(
        table.contains("READ MODEL") && table.contains("products 1"),
        "{table}"
    );
}
