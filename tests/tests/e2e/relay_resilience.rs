//! The relay survives the broker going away and its own crash, losing nothing and
//! duplicating nothing.

use std::{collections::HashSet, time::Duration};

use camreviews_tests::{NatsServer, TestEnv, stream};
use command_api::relay::{Relay, RelayConfig};
use eventstore::{self as store, ExpectedVersion, Metadata, StreamId};
use shared::{EventEnvelope, events::ProductEvent};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{price_changed, product_created};

/// Appends `transactions` transactions of `per_tx` events, each to a new product; returns
/// the committed event ids in position order.
async fn append(pool: &sqlx::PgPool, transactions: usize, per_tx: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for _ in 0..transactions {
        let mut events = vec![product_created("P")];
        events.extend((1..per_tx).map(|_| price_changed("1", "2")));
        let mut tx = pool.begin().await.unwrap();
        let stream = StreamId::of::<ProductEvent>(Uuid::now_v7());
        let appended = store::append_events(
            &mut tx,
            stream,
            ExpectedVersion::NoStream,
            &events,
            &Metadata::new(None),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        ids.extend(appended.events.iter().map(|e| e.event_id));
    }
    ids
}

fn assert_exactly_once_in_order(received: &[EventEnvelope], committed: &[Uuid]) {
    let got: Vec<Uuid> = received.iter().map(|e| e.event_id).collect();
    assert_eq!(
        got.len(),
        committed.len(),
        "every committed event arrived, once"
    );
    assert_eq!(
        got.iter().collect::<HashSet<_>>().len(),
        got.len(),
        "no duplicates"
    );
    assert_eq!(got, committed, "in commit (= position) order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_committed_while_nats_is_down_arrive_once_it_is_back() {
    let mut nats = NatsServer::start().await;
    let mut env = TestEnv::new().await;
    env.nats_url = nats.url();
    let pool = env.pool().await;
    let api = env.spawn_command_api().await;
    let name = env.prefix.events_stream();

    let mut committed = append(&pool, 50, 2).await;
    let js = env.jetstream().await;
    assert_eq!(
        stream::wait_for_count(&js, &name, 100, Duration::from_secs(30)).await,
        100
    );

    nats.kill().await;
    // Commands keep committing while the broker is gone.
    committed.extend(append(&pool, 100, 2).await);
    // Longer than the publish-ack timeout (5s), so the relay's publishes fail and it has to
    // back off, resync from the stream's tail and retry: not just the client's reconnect.
    tokio::time::sleep(Duration::from_secs(7)).await;
    nats.restart().await;

    let js = env.jetstream().await;
    let received = stream::read_events(&js, &name, committed.len(), Duration::from_secs(60)).await;
    assert_exactly_once_in_order(&received, &committed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stream::message_count(&js, &name).await,
        committed.len() as u64
    );
    api.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_batch_resumes_without_loss_or_duplicates() {
    let env = TestEnv::new().await;
    let pool = env.pool().await;
    let committed = append(&pool, 100, 50).await; // 5,000 events
    let js = env.jetstream().await;
    let name = env.prefix.events_stream();
    let config = RelayConfig {
        batch_size: 50,
        ..RelayConfig::default()
    };

    // Start a relay and kill it (abort: no clean-up runs) as soon as it has published some.
    let relay = Relay::new(pool.clone(), js.clone(), env.prefix.clone(), config.clone());
    let task = tokio::spawn(relay.run(CancellationToken::new()));
    let published_at_kill = loop {
        let count = stream::message_count(&js, &name).await;
        if count > 0 {
            task.abort();
            break count;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let _ = task.await;
    assert!(
        published_at_kill < committed.len() as u64,
        "the kill landed mid-way"
    );

    // A new relay (as after a process restart) takes over and finishes the job.
    let shutdown = CancellationToken::new();
    let relay = Relay::new(pool.clone(), js.clone(), env.prefix.clone(), config);
    let task = tokio::spawn(relay.run(shutdown.clone()));
    let received = stream::read_events(&js, &name, committed.len(), Duration::from_secs(60)).await;
    assert_exactly_once_in_order(&received, &committed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stream::message_count(&js, &name).await,
        committed.len() as u64
    );
    shutdown.cancel();
    task.await.unwrap();

    let progress: i64 = sqlx::query_scalar("SELECT position FROM relay_progress")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        progress,
        received.last().unwrap().position,
        "the stored progress caught up"
    );
}
