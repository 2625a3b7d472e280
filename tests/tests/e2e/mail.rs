//! Admin emails over real SMTP: every other admin gets one mail per product change, exactly
//! once, through crashes and SMTP outages.

use std::time::Duration;

use camreviews_tests::{
    Process, SmtpSink, Tokens,
    smtp::{Received, prices_mailed},
};
use serde_json::json;

use crate::catalog::{Catalog, camera, subject_of};

/// Creates admins `names` (password `<name>-password`); their tokens.
async fn admins(catalog: &Catalog, names: &[&str]) -> Vec<Tokens> {
    let mut tokens = Vec::new();
    for name in names {
        let created = catalog
            .command
            .post(
                "/api/v1/admins",
                json!({ "username": name, "email": format!("{name}@example.com"), "password": format!("{name}-password"), "display_name": format!("Admin {name}") }),
                Some(&catalog.root.access),
            )
            .await;
        assert_eq!(created.status, 201, "{:?}", created.body);
        tokens.push(
            catalog
                .command
                .login(name, &format!("{name}-password"))
                .await,
        );
    }
    tokens
}

/// Waits until the sink holds `count` mails (and then a little longer, to catch extras).
async fn mails(sink: &SmtpSink, count: usize, within: Duration) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + within;
    while sink.mails().len() < count && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    sink.mails()
}

fn recipients(mails: &[Received]) -> Vec<String> {
    let mut to: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    to
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_admin_gets_one_mail_naming_the_product_and_the_change() {
    let sink = SmtpSink::start().await;
    let catalog = Catalog::start().await;
    let _notifier = catalog.env.spawn_notifier_mailing(&sink.url()).await;
    admins(&catalog, &["bea", "cai"]).await;

    let (sku, _) = catalog.create(camera(7)).await;
    let created = mails(&sink, 2, Duration::from_secs(10)).await;
    assert_eq!(recipients(&created), ["bea@example.com", "cai@example.com"]);

    // Admin "root" (A) changes the price: B and C hear of it, A does not.
    catalog.update(&sku, json!({ "price": "5795.00" })).await;
    let all = mails(&sink, 4, Duration::from_secs(10)).await;
    assert_eq!(all.len(), 4, "exactly one more mail each");
    let update = &all[2..];
    assert_eq!(recipients(update), ["bea@example.com", "cai@example.com"]);
    for mail in update {
        assert!(
            mail.data.contains("Camera 0007"),
            "names the product:\n{}",
            mail.data
        );
        assert!(mail.data.contains("price"), "{}", mail.data);
        assert!(
            mail.data.contains("-> 5795.00"),
            "before -> after:\n{}",
            mail.data
        );
        assert!(mail.data.contains("text/html"), "has an HTML part");
        assert!(mail.data.contains("text/plain"), "has a plain-text part");
        assert!(mail.data.contains("root"), "says who");
    }
    assert!(
        all.iter()
            .all(|m| !m.to.contains(&"root@example.com".to_owned()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_a_hundred_changes_reaches_each_other_admin_in_a_few_digests() {
    let sink = SmtpSink::start().await;
    let catalog = Catalog::start().await;
    let src = std::collections::HashMap::from([("SMTP_URL".to_owned(), sink.url())]);
    let mail = notifier::mail::MailConfig {
        digest_window: Duration::from_secs(2),
        ..notifier::mail::MailConfig::from_env(&src).unwrap()
    };
    let notifier = catalog.env.spawn_notifier_with(mail).await;
    admins(&catalog, &["bea", "cai"]).await;
    let (sku, _) = catalog.create(camera(5)).await;
    assert_eq!(mails(&sink, 2, Duration::from_secs(10)).await.len(), 2);

    let started = std::time::Instant::now();
    for n in 1..=100 {
        catalog
            .update(&sku, json!({ "price": format!("{n}.00") }))
            .await;
    }
    let every: Vec<u32> = (1..=100).collect();
    camreviews_tests::eventually(Duration::from_secs(60), || async {
        let all = sink.mails();
        let done = ["bea@example.com", "cai@example.com"]
            .iter()
            .all(|to| prices_mailed(&all, to).len() >= 100);
        done.then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(3)).await; // nothing more comes
    let all = sink.mails();
    for to in ["bea@example.com", "cai@example.com"] {
        assert_eq!(
            prices_mailed(&all, to),
            every,
            "{to}: each change exactly once, in order"
        );
        let burst_mails = all.iter().filter(|m| m.to.iter().any(|t| t == to)).count() - 1;
        assert!(
            (1..=10).contains(&burst_mails),
            "{to} got {burst_mails} mails for 100 changes"
        );
    }
    assert!(
        all.iter()
            .all(|m| !m.to.contains(&"root@example.com".to_owned())),
        "the actor gets none"
    );
    assert_eq!(notifier.metric("notifier_mail_pending_changes").await, 0.0);
}

/// The mails with distinct `Message-ID`s (a digest sent again after a crash carries its id
/// again, so a receiving system recognises the repeat).
fn distinct(mails: Vec<Received>) -> Vec<Received> {
    let mut seen = std::collections::HashSet::new();
    mails
        .into_iter()
        .filter(|m| {
            let id = m
                .data
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                .map(str::to_owned);
            seen.insert(id.unwrap_or_else(|| m.data.clone()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notifier_killed_in_the_middle_of_a_burst_loses_and_repeats_nothing() {
    let sink = SmtpSink::start().await;
    let catalog = Catalog::start().await;
    admins(&catalog, &["bea", "cai"]).await;
    let mut env = catalog.env.read_side_env();
    env.push(("SMTP_URL", sink.url()));
    env.push(("MAIL_DIGEST_WINDOW", "1".to_owned()));
    let mut notifier = Process::start("notifier", "NOTIFIER_ADDR", &env).await;
    let (sku, _) = catalog.create(camera(2)).await;
    assert_eq!(mails(&sink, 2, Duration::from_secs(15)).await.len(), 2);

    for n in 1..=60 {
        catalog
            .update(&sku, json!({ "price": format!("{n}.00") }))
            .await;
        if n == 30 {
            // Some of the burst is out, some waits: SIGKILL, and start again.
            notifier.kill().await;
            notifier = Process::start("notifier", "NOTIFIER_ADDR", &env).await;
        }
    }
    let every: Vec<u32> = (1..=60).collect();
    camreviews_tests::eventually(Duration::from_secs(60), || async {
        let all = distinct(sink.mails());
        let done = ["bea@example.com", "cai@example.com"]
            .iter()
            .all(|to| prices_mailed(&all, to).len() >= 60);
        done.then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = distinct(sink.mails());
    for to in ["bea@example.com", "cai@example.com"] {
        assert_eq!(
            prices_mailed(&all, to),
            every,
            "{to}: none lost, none repeated"
        );
    }
    drop(notifier);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_sending_and_acknowledging_sends_nothing_twice() {
    let sink = SmtpSink::start().await;
    let catalog = Catalog::start().await;
    let team = admins(&catalog, &["bea", "cai"]).await;
    let mut env = catalog.env.read_side_env();
    env.push(("SMTP_URL", sink.url()));
    env.push(("MAIL_DIGEST_WINDOW", "1".to_owned()));
    let slow = [
        env.clone(),
        vec![("NOTIFIER_ACK_DELAY_MS", "4000".to_owned())],
    ]
    .concat();
    let mut notifier = Process::start("notifier", "NOTIFIER_ADDR", &slow).await;

    let (sku, _) = catalog.create(camera(1)).await;
    // The mails for the creation are out; the acknowledgement is being held: kill it now.
    assert_eq!(mails(&sink, 2, Duration::from_secs(15)).await.len(), 2);
    notifier.kill().await;
    let _restarted = Process::start("notifier", "NOTIFIER_ADDR", &env).await;

    // The creation is redelivered (after the 10 s ack wait) and skipped; the next change,
    // which queues behind it, is mailed.
    catalog
        .update(&sku, json!({ "name": "After the crash" }))
        .await;
    let all = mails(&sink, 4, Duration::from_secs(30)).await;
    assert_eq!(
        all.len(),
        4,
        "no second mail for the creation: {:?}",
        recipients(&all)
    );
    assert!(all[2..].iter().all(|m| m.data.contains("After the crash")));
    drop(team);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mails_wait_out_an_smtp_outage_and_arrive_when_it_ends() {
    let mut sink = SmtpSink::start().await;
    let catalog = Catalog::start().await;
    let notifier = catalog.env.spawn_notifier_mailing(&sink.url()).await;
    let ops = camreviews_tests::Api::new(&notifier);
    admins(&catalog, &["bea"]).await;
    let (sku, _) = catalog.create(camera(1)).await;
    assert_eq!(mails(&sink, 1, Duration::from_secs(10)).await.len(), 1);

    sink.stop();
    catalog.update(&sku, json!({ "price": "1.00" })).await;
    catalog.update(&sku, json!({ "price": "2.00" })).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sink.mails().len(),
        1,
        "nothing gets through while SMTP is down"
    );
    // The outage and the lag are visible: /readyz names SMTP (the notifier stays ready for
    // its other work), /metrics the changes waiting and how long the oldest has waited.
    let ready = camreviews_tests::eventually(Duration::from_secs(10), || async {
        let ready = ops.get("/readyz", None).await;
        ready.body["degraded"]["smtp"].is_string().then_some(ready)
    })
    .await;
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    let age = camreviews_tests::eventually(Duration::from_secs(10), || async {
        let pending = notifier.metric("notifier_mail_pending_changes").await;
        let age = notifier
            .metric("notifier_mail_oldest_pending_seconds")
            .await;
        (pending >= 1.0 && age >= 2.0).then_some(age)
    })
    .await;
    assert!(age < 60.0, "{age}");
    assert_eq!(notifier.metric("notifier_smtp_failing").await, 1.0);
    // And camctl says the same, per admin.
    let (code, out, err) = crate::ctl::camctl(&catalog.env, &["notifier", "status"], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("changes not yet mailed    2, to 1 admins"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("bea ") && l.contains(" 2 ")),
        "{out}"
    );

    sink.restart().await;
    // Both changes arrive, once each and in order (together, in a digest, or one by one).
    let all = camreviews_tests::eventually(Duration::from_secs(30), || async {
        let all = sink.mails();
        (prices_mailed(&all, "bea@example.com").len() >= 2).then_some(all)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(prices_mailed(&sink.mails(), "bea@example.com"), [1, 2]);
    assert!(all.len() <= 3);
    camreviews_tests::eventually(Duration::from_secs(10), || async {
        let ready = ops.get("/readyz", None).await;
        let caught_up = notifier.metric("notifier_mail_pending_changes").await == 0.0
            && notifier.metric("notifier_mail_backlog_events").await == 0.0;
        (ready.body.get("degraded").is_none() && caught_up).then_some(())
    })
    .await;
}

/// An SMTP server in front of `sink` whose first `stalled` connections get the greeting and
/// then silence (a hung server); later connections are passed through to the sink.
async fn stalling_front(sink: &SmtpSink, stalled: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink_port = sink.port;
    tokio::spawn(async move {
        let mut held = Vec::new();
        for n in 0.. {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            if n < stalled {
                use tokio::io::AsyncWriteExt as _;
                let _ = client.write_all(b"220 camreviews.test ESMTP\r\n").await;
                held.push(client); // never answered, never closed
                continue;
            }
            tokio::spawn(async move {
                if let Ok(mut upstream) =
                    tokio::net::TcpStream::connect(("127.0.0.1", sink_port)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    format!("smtp://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_stalls_one_mail_until_its_deadline_and_no_other() {
    let sink = SmtpSink::start().await;
    let front = stalling_front(&sink, 1).await;
    let catalog = Catalog::start().await;
    let target = notifier::mail::MailConfig::from_env(&std::collections::HashMap::from([(
        "SMTP_URL".to_owned(),
        front,
    )]))
    .unwrap()
    .target;
    let mail = notifier::mail::MailConfig {
        send_timeout: Duration::from_secs(3),
        ..notifier::mail::MailConfig::new(
            target,
            "CamReviews <noreply@camreviews.local>".parse().unwrap(),
        )
    };
    let _notifier = catalog.env.spawn_notifier_with(mail).await;
    admins(&catalog, &["bea", "cai"]).await;

    let started = std::time::Instant::now();
    catalog.create(camera(3)).await;
    // One of the two mails meets the hung connection; the other goes out at once on another.
    let first = mails(&sink, 1, Duration::from_secs(10)).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the other mail waited for the hung one: {:?}",
        started.elapsed()
    );
    // The hung one is given up after its deadline and retried on a new connection.
    let all = mails(&sink, 2, Duration::from_secs(30)).await;
    assert_eq!(recipients(&all), ["bea@example.com", "cai@example.com"]);
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_that_refuses_for_good_is_parked_and_blocks_nobody() {
    let sink = SmtpSink::start().await;
    let catalog = Catalog::start().await;
    let _notifier = catalog.env.spawn_notifier_mailing(&sink.url()).await;
    admins(&catalog, &["bea", "bounce"]).await;

    let (sku, _) = catalog.create(camera(1)).await;
    catalog.update(&sku, json!({ "price": "3.00" })).await;
    // Bea gets both at once; the refused mailbox does not hold anything up.
    let all = mails(&sink, 2, Duration::from_secs(10)).await;
    assert_eq!(recipients(&all), ["bea@example.com", "bea@example.com"]);

    let js = catalog.env.jetstream().await;
    let dlq = catalog.env.prefix.dlq_stream();
    let parked =
        camreviews_tests::stream::wait_for_count(&js, &dlq, 2, Duration::from_secs(10)).await;
    assert_eq!(
        parked, 2,
        "one parked mail per event for the refused mailbox"
    );

    // The fix: the admin's address is corrected. Requeueing one letter mails that recipient
    // that change, once; nobody else gets it again.
    let bounce = subject_of(
        &catalog
            .command
            .login("bounce", "bounce-password")
            .await
            .access,
    );
    let fixed = catalog
        .command
        .put(
            &format!("/api/v1/admins/{bounce}"),
            json!({ "email": "fixed@example.com" }),
            Some(&catalog.root.access),
        )
        .await;
    assert_eq!(fixed.status, 200, "{:?}", fixed.body);
    tokio::time::sleep(Duration::from_secs(1)).await; // the notifier's directory follows
    let (code, out, err) =
        crate::ctl::camctl(&catalog.env, &["dlq", "list", "--format", "ndjson"], "").await;
    assert_eq!(code, 0, "{err}");
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["consumer"], "notifier");
    assert_eq!(first["recipient"], bounce.as_str());
    let sequence = first["sequence"].to_string();
    let (code, _, err) =
        crate::ctl::camctl(&catalog.env, &["dlq", "requeue", "--seq", &sequence], "").await;
    assert_eq!(code, 0, "{err}");
    let all = mails(&sink, 3, Duration::from_secs(10)).await;
    assert_eq!(
        recipients(&all),
        ["bea@example.com", "bea@example.com", "fixed@example.com"],
        "the requeued mail reaches the fixed address alone, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_file_url_mails_are_written_as_eml_files() {
    let catalog = Catalog::start().await;
    // `spawn_notifier` mails to files under the test's data directory (`file://`).
    let _notifier = catalog.env.spawn_notifier().await;
    admins(&catalog, &["bea"]).await;
    catalog.create(camera(3)).await;
    let dir = catalog.env.data_dir().join("mail");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let written = loop {
        let files: Vec<_> = std::fs::read_dir(&dir)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if !files.is_empty() || tokio::time::Instant::now() > deadline {
            break files;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0].extension().and_then(|e| e.to_str()), Some("eml"));
    let mail = std::fs::read_to_string(&written[0]).unwrap();
    assert!(
        mail.contains("To: \"Admin bea\" <bea@example.com>") || mail.contains("bea@example.com")
    );
    assert!(mail.contains("Camera 0003"));
}
