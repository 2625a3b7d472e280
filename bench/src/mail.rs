//! Admin mail at scale, through the real services (in-process) to a local SMTP sink, next to
//! the limit: a raw loop sending mails of the same size with the same mail library (lettre,
//! the same pool size) to the same sink.
//!
//! - plain mails: rounds of one product change each, mailed to every other admin; mails/s;
//! - a burst of `changes` changes by one admin with `admins` admins: changes/s delivered,
//!   mails/s, and the time until every other admin has every change.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use camreviews_tests::SmtpSink;
use futures::StreamExt as _;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, message::MultiPart,
    transport::smtp::PoolConfig,
};
use serde_json::json;

use crate::{
    stats::{Row, measure},
    system::{Servers, System, quiet_telemetry, with_system},
};

pub async fn run(
    servers: &Servers,
    duration: Duration,
    admins: usize,
    changes: usize,
) -> anyhow::Result<Vec<Row>> {
    let sink = Arc::new(SmtpSink::start().await);
    let connections = notifier::mail::MailConfig::DEFAULT_CONNECTIONS;
    let mut rows = vec![raw_loop(&sink, connections, duration).await?];
    let url = sink.url();
    let measured = with_system(servers, |system| {
        let sink = sink.clone();
        async move { through_the_notifier(&system, &sink, &url, admins, changes).await }
    })
    .await?;
    rows.extend(measured);
    Ok(rows)
}

/// The limit: the same library, pool and sink, mails of a one-change size.
async fn raw_loop(sink: &SmtpSink, connections: u32, duration: Duration) -> anyhow::Result<Row> {
    let transport = Arc::new(
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(sink.port)
            .pool_config(PoolConfig::new().max_size(connections))
            .build(),
    );
    let text = "bench (bench) updated the product \"Bench camera 1\" (SKU x) at now.\n\n\
                What changed:\n  price: 1.00 -> 2.00\n";
    let html = "<p>bench (bench) updated the product <strong>Bench camera 1</strong>.</p>\
                <table><tr><td>price</td><td>1.00</td><td>2.00</td></tr></table>";
    measure(
        "raw lettre send loop (the limit), mails",
        connections as usize,
        duration,
        move |worker| {
            let transport = transport.clone();
            async move {
                let message = Message::builder()
                    .from("CamReviews <noreply@camreviews.local>".parse()?)
                    .to(format!("raw{worker}@bench.test").parse()?)
                    .subject("[CamReviews] Bench camera 1 was updated")
                    .multipart(MultiPart::alternative_plain_html(
                        text.to_owned(),
                        html.to_owned(),
                    ))?;
                transport.send(message).await?;
                Ok(())
            }
        },
    )
    .await
}

/// The new prices (`-> N.00`) mailed to `to`, each once.
fn prices_mailed(sink: &SmtpSink, to: &str) -> HashSet<u32> {
    camreviews_tests::smtp::prices_mailed(&sink.mails(), to)
        .into_iter()
        .collect()
}

async fn through_the_notifier(
    system: &System,
    sink: &SmtpSink,
    smtp_url: &str,
    admins: usize,
    changes: usize,
) -> anyhow::Result<Vec<Row>> {
    // Plain mails are measured with no digest window (each change goes alone as soon as it
    // can); the burst with the default window, by a second notifier once the first stopped.
    let plain_notifier = spawn_notifier(system, smtp_url, Duration::ZERO).await?;
    let post = |path: &str, body: serde_json::Value| {
        system
            .client
            .post(format!("{}{path}", system.command))
            .bearer_auth(&system.token)
            .json(&body)
            .send()
    };
    for n in 0..admins {
        let created = post(
            "/api/v1/admins",
            json!({ "username": format!("mail-admin-{n}"), "email": format!("a{n}@bench.test"), "password": "bench-password-1" }),
        )
        .await?;
        anyhow::ensure!(
            created.status().is_success(),
            "admin {n}: {}",
            created.status()
        );
    }
    let created: serde_json::Value = post("/api/v1/products", crate::system::camera(0))
        .await?
        .json()
        .await?;
    let sku = created["sku"].as_str().unwrap_or_default().to_owned();
    let recipients: Vec<String> = (0..admins).map(|n| format!("a{n}@bench.test")).collect();
    let wait_for = |count: usize, within: Duration| async move {
        let started = Instant::now();
        while sink.mails().len() < count && started.elapsed() < within {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sink.mails().len()
    };
    let mut seen = wait_for(admins, Duration::from_secs(60)).await;

    // Plain mails: one change at a time, each mailed to every other admin before the next.
    let rounds = 5;
    let started = Instant::now();
    for round in 1..=rounds {
        post("/api/v1/products", crate::system::camera(round)).await?;
        seen = wait_for(seen + admins, Duration::from_secs(60)).await;
    }
    let plain = started.elapsed();
    plain_notifier.cancel();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = notifier::mail::MailConfig::DEFAULT_DIGEST_WINDOW;
    let _burst_notifier = spawn_notifier(system, smtp_url, window).await?;
    let mut rows = vec![Row {
        scenario: format!("notifier, plain mails ({rounds} changes x {admins} admins, window 0)"),
        concurrency: notifier::mail::MailConfig::DEFAULT_CONNECTIONS as usize,
        ops_per_sec: (rounds * admins) as f64 / plain.as_secs_f64(),
        p50_ms: 0.0,
        p99_ms: plain.as_secs_f64() * 1000.0 / rounds as f64,
        operations: rounds * admins,
    }];

    // The burst.
    let before = sink.mails().len();
    let started = Instant::now();
    let client = system.client.clone();
    let url = format!("{}/api/v1/products/{sku}", system.command);
    let token = system.token.clone();
    let burst = futures::stream::iter(1..=changes)
        .map(|n| {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            async move {
                client
                    .put(&url)
                    .bearer_auth(&token)
                    .json(&json!({ "price": format!("{n}.00") }))
                    .send()
                    .await
                    .map(drop)
            }
        })
        .buffer_unordered(8);
    burst
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
    let issued = started.elapsed();
    loop {
        let done = recipients
            .iter()
            .all(|to| prices_mailed(sink, to).len() >= changes);
        if done || started.elapsed() > Duration::from_secs(600) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let all = started.elapsed();
    let mails = sink.mails().len() - before;
    rows.push(Row {
        scenario: format!(
            "notifier burst: changes delivered ({changes} x {admins} admins, window {} s; issued in {:.1} s, all delivered after {:.1} s)",
            window.as_secs(),
            issued.as_secs_f64(),
            all.as_secs_f64()
        ),
        concurrency: 8,
        ops_per_sec: (changes * admins) as f64 / all.as_secs_f64(),
        p50_ms: 0.0,
        p99_ms: all.as_secs_f64() * 1000.0,
        operations: changes * admins,
    });
    rows.push(Row {
        scenario: format!(
            "notifier burst: mails ({:.1} per admin)",
            mails as f64 / admins as f64
        ),
        concurrency: 8,
        ops_per_sec: mails as f64 / all.as_secs_f64(),
        p50_ms: 0.0,
        p99_ms: all.as_secs_f64() * 1000.0,
        operations: mails,
    });
    Ok(rows)
}

/// A notifier mailing to `smtp_url` with `window`, until the token it returns is cancelled
/// (or the system stops).
async fn spawn_notifier(
    system: &System,
    smtp_url: &str,
    window: Duration,
) -> anyhow::Result<tokio_util::sync::CancellationToken> {
    let src = std::collections::HashMap::from([("SMTP_URL".to_owned(), smtp_url.to_owned())]);
    let app = notifier::Application::build(notifier::Config {
        addr: "127.0.0.1:0".parse()?,
        read_side: system.read_side(),
        mail: notifier::mail::MailConfig {
            digest_window: window,
            ..notifier::mail::MailConfig::from_env(&src)?
        },
        ack_delay_ms: 0,
        telemetry: quiet_telemetry(),
    })
    .await?;
    let stop = system.shutdown.child_token();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    Ok(stop)
}
