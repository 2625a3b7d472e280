//! Invariant 2 (no skipped events) under fire: many writers, transactions held open so that
//! later positions commit first, rollbacks that leave holes, two relays competing for the
//! lead. Every committed event must reach JetStream exactly once, in position order, with each
//! aggregate's versions in order and without gaps.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use camreviews_tests::{TestEnv, stream};
use command_api::relay::{Relay, RelayConfig, Scope};
use eventstore::{self as store, ExpectedVersion, Metadata, StreamId};
use rand::{Rng, SeedableRng, rngs::StdRng};
use shared::events::ProductEvent;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::price_changed;

const TARGET_EVENTS: usize = 20_000;
const WRITERS: usize = 16;
const AGGREGATES: usize = 400;

/// One writer: appends 1–3 events per transaction until the target is reached. Some
/// transactions sleep before appending, some sleep *after* taking their positions (so later
/// positions commit first), some roll back. Returns the ids of the events it committed.
async fn writer(
    pool: sqlx::PgPool,
    aggregates: Arc<Vec<Uuid>>,
    total: Arc<AtomicUsize>,
) -> Vec<Uuid> {
    let mut rng = StdRng::from_entropy();
    let mut committed = Vec::new();
    while total.load(Ordering::Relaxed) < TARGET_EVENTS {
        let aggregate = aggregates[rng.gen_range(0..aggregates.len())];
        let events: Vec<_> = (0..rng.gen_range(1..=3))
            .map(|_| price_changed("1", "2"))
            .collect();
        let mut tx = pool.begin().await.unwrap();
        if rng.gen_bool(0.05) {
            let pause: f64 = rng.gen_range(0.001..0.010);
            sqlx::query("SELECT pg_sleep($1)")
                .bind(pause)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        let stream = StreamId::of::<ProductEvent>(aggregate);
        let appended = store::append_events(
            &mut tx,
            stream,
            ExpectedVersion::Any,
            &events,
            &Metadata::new(None),
        )
        .await
        .unwrap();
        let fate = rng.gen_range(0..100);
        if fate < 10 {
            let pause: f64 = rng.gen_range(0.002..0.020);
            sqlx::query("SELECT pg_sleep($1)")
                .bind(pause)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        if fate >= 97 {
            tx.rollback().await.unwrap();
            continue;
        }
        tx.commit().await.unwrap();
        total.fetch_add(events.len(), Ordering::Relaxed);
        committed.extend(appended.events.iter().map(|e| e.event_id));
    }
    committed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_committed_event_reaches_jetstream_once_in_order_despite_late_commits() {
    torture(Scope::Database).await;
}

/// The same with the relay waiting for every database's transactions (a role that cannot see
/// other sessions' transaction ids).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_wide_wait_is_gap_safe_too() {
    torture(Scope::Server).await;
}

async fn torture(scope: Scope) {
    let env = TestEnv::new().await;
    let pool = env.pool().await;
    // Two relays, as in two command-api instances: one leads, the other stands by.
    let js = env.jetstream().await;
    let shutdown = CancellationToken::new();
    let config = RelayConfig {
        wait_scope: Some(scope),
        ..RelayConfig::default()
    };
    let relays: Vec<_> = (0..2)
        .map(|_| {
            let relay = Relay::new(pool.clone(), js.clone(), env.prefix.clone(), config.clone());
            tokio::spawn(relay.run(shutdown.clone()))
        })
        .collect();

    let aggregates: Arc<Vec<Uuid>> = Arc::new((0..AGGREGATES).map(|_| Uuid::now_v7()).collect());
    let total = Arc::new(AtomicUsize::new(0));
    let writers =
        (0..WRITERS).map(|_| tokio::spawn(writer(pool.clone(), aggregates.clone(), total.clone())));
    let committed: Vec<Uuid> = futures::future::join_all(writers)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    assert!(committed.len() >= TARGET_EVENTS);
    let rolled_back_holes: i64 = sqlx::query_scalar(
        "SELECT (SELECT last_value FROM events_position_seq) - count(*) FROM events",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        rolled_back_holes > 0,
        "the run must include rolled-back positions"
    );

    let name = env.prefix.events_stream();
    let received = stream::read_events(&js, &name, committed.len(), Duration::from_secs(180)).await;
    if received.len() != committed.len() {
        let seen: HashSet<Uuid> = received.iter().map(|e| e.event_id).collect();
        let missing: Vec<Uuid> = committed
            .iter()
            .filter(|id| !seen.contains(id))
            .copied()
            .collect();
        let positions: Vec<(i64, String)> = sqlx::query_as(
            "SELECT position, txid::text FROM events WHERE event_id = ANY($1) ORDER BY position",
        )
        .bind(&missing)
        .fetch_all(&pool)
        .await
        .unwrap();
        let progress: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, position FROM relay_progress")
                .fetch_all(&pool)
                .await
                .unwrap();
        panic!(
            "{} of {} committed events arrived; stream holds {}; missing (position, txid): {positions:?}; relay progress {progress:?}",
            received.len(),
            committed.len(),
            stream::message_count(&js, &name).await,
        );
    }

    // Nothing extra shows up later either.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stream::message_count(&js, &name).await,
        committed.len() as u64
    );

    let ids: HashSet<Uuid> = received.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), received.len(), "no event arrived twice");
    assert_eq!(
        ids,
        committed.iter().copied().collect(),
        "exactly the committed events arrived"
    );

    assert!(
        received.windows(2).all(|w| w[0].position < w[1].position),
        "the stream is in global position order"
    );
    let mut versions: HashMap<Uuid, Vec<i64>> = HashMap::new();
    for event in &received {
        versions
            .entry(event.aggregate_id)
            .or_default()
            .push(event.aggregate_version);
    }
    for (aggregate, seen) in versions {
        let expected: Vec<i64> = (1..=seen.len() as i64).collect();
        assert_eq!(
            seen, expected,
            "aggregate {aggregate}: versions in order, no gap"
        );
    }

    shutdown.cancel();
    for relay in relays {
        relay.await.unwrap();
    }
}
