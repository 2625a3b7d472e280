//! The event store: append and read, optimistic concurrency, idempotent answers.

use eventstore::{
    self as store, AppendError, EventFilter, ExpectedVersion, Metadata, StreamId,
    idempotency::{self, Claim, IdempotencyKey, StoredResponse},
};
use shared::{Actor, Role, events::ProductEvent};
use uuid::Uuid;

use crate::{price_changed, product_created};
use camreviews_tests::TestEnv;

fn product(id: Uuid) -> StreamId {
    StreamId::of::<ProductEvent>(id)
}

async fn count_events(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn appended_events_read_back_identical_and_in_order() {
    let env = TestEnv::new().await;
    let pool = env.pool().await;
    let sku = Uuid::now_v7();
    let actor = Actor {
        user_id: Uuid::now_v7(),
        role: Role::Admin,
    };
    let metadata = Metadata::new(Some(actor.clone()));

    let mut tx = pool.begin().await.unwrap();
    let events = [product_created("M11"), price_changed("5995.00", "5795.00")];
    let appended = store::append_events(
        &mut tx,
        product(sku),
        ExpectedVersion::NoStream,
        &events,
        &metadata,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(appended.version, 2);
    assert_eq!(appended.events.len(), 2);
    assert!(appended.events[0].position < appended.events[1].position);
    assert_eq!(appended.position, appended.events[1].position);

    let read = store::read_stream(&pool, "product", sku).await.unwrap();
    assert_eq!(
        read, appended.events,
        "what was stored is what is read back"
    );
    assert_eq!(read[0].actor, Some(actor));
    assert_eq!(read[1].aggregate_version, 2);
    let decoded: ProductEvent = read[0].decode().unwrap();
    assert!(matches!(decoded, ProductEvent::ProductCreated(c) if c.name == "M11"));
}

#[tokio::test]
async fn a_stale_expected_version_is_rejected_and_nothing_is_written() {
    let env = TestEnv::new().await;
    let pool = env.pool().await;
    let sku = Uuid::now_v7();
    let metadata = Metadata::new(None);
    let mut tx = pool.begin().await.unwrap();
    store::append_events(
        &mut tx,
        product(sku),
        ExpectedVersion::NoStream,
        &[product_created("Q3")],
        &metadata,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    for stale in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(5),
    ] {
        let mut tx = pool.begin().await.unwrap();
        let batch = [
            price_changed("1", "2"),
            price_changed("2", "3"),
            price_changed("3", "4"),
        ];
        let err = store::append_events(&mut tx, product(sku), stale, &batch, &metadata)
            .await
            .unwrap_err();
        assert!(
            matches!(err, AppendError::Conflict { actual: 1, .. }),
            "{stale:?} must conflict at version 1, got {err:?}"
        );
        drop(tx);
    }
    assert_eq!(
        count_events(&pool).await,
        1,
        "no event of a rejected batch was written"
    );
    assert_eq!(
        store::read_stream(&pool, "product", sku)
            .await
            .unwrap()
            .len(),
        1
    );

    let mut tx = pool.begin().await.unwrap();
    let ok = store::append_events(
        &mut tx,
        product(sku),
        ExpectedVersion::Exact(1),
        &[price_changed("1", "2")],
        &metadata,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ok.version, 2, "the right expected version still appends");
}

#[tokio::test]
async fn of_concurrent_writers_expecting_the_same_version_exactly_one_wins() {
    let env = TestEnv::new().await;
    let pool = env.pool().await;
    let sku = Uuid::now_v7();
    let mut tx = pool.begin().await.unwrap();
    store::append_events(
        &mut tx,
        product(sku),
        ExpectedVersion::NoStream,
        &[product_created("X")],
        &Metadata::new(None),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let writers = (0..12).map(|i| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            let event = price_changed("1", &i.to_string());
            let outcome = store::append_events(
                &mut tx,
                product(sku),
                ExpectedVersion::Exact(1),
                &[event],
                &Metadata::new(None),
            )
            .await;
            if outcome.is_ok() {
                tx.commit().await.unwrap();
            }
            outcome.is_ok()
        })
    });
    let wins = futures::future::join_all(writers)
        .await
        .into_iter()
        .filter(|w| *w.as_ref().unwrap())
        .count();
    assert_eq!(wins, 1);
    assert_eq!(
        store::read_stream(&pool, "product", sku)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn the_log_reads_after_a_position_with_filters() {
    let env = TestEnv::new().await;
    let pool = env.pool().await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let mut positions = Vec::new();
    for (sku, events) in [
        (a, vec![product_created("A")]),
        (b, vec![product_created("B")]),
        (a, vec![price_changed("1", "2")]),
    ] {
        let mut tx = pool.begin().await.unwrap();
        let appended = store::append_events(
            &mut tx,
            product(sku),
            ExpectedVersion::Any,
            &events,
            &Metadata::new(None),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        positions.push(appended.position);
    }

    let all = store::read_all(&pool, 0, 100, &EventFilter::default())
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        positions
    );

    let after_first = store::read_all(&pool, positions[0], 100, &EventFilter::default())
        .await
        .unwrap();
    assert_eq!(after_first.len(), 2);

    let only_updates = EventFilter {
        event_types: vec!["ProductUpdated".into()],
        ..Default::default()
    };
    let updates = store::read_all(&pool, 0, 100, &only_updates).await.unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].aggregate_id, a);

    let only_b = EventFilter {
        aggregate_id: Some(b),
        ..Default::default()
    };
    assert_eq!(
        store::read_all(&pool, 0, 100, &only_b).await.unwrap().len(),
        1
    );

    let only_reviews = EventFilter {
        aggregate_type: Some("review".into()),
        ..Default::default()
    };
    assert!(
        store::read_all(&pool, 0, 100, &only_reviews)
            .await
            .unwrap()
            .is_empty()
    );

    let since = all[1].occurred_at;
    let recent = EventFilter {
        since: Some(since),
        ..Default::default()
    };
    assert_eq!(
        store::read_all(&pool, 0, 100, &recent).await.unwrap().len(),
        2
    );
    let before = EventFilter {
        until: Some(since),
        ..Default::default()
    };
    assert_eq!(
        store::read_all(&pool, 0, 100, &before).await.unwrap().len(),
        1
    );

    assert_eq!(
        store::read_all(&pool, 0, 1, &EventFilter::default())
            .await
            .unwrap()
            .len(),
        1,
        "limit holds"
    );
}

#[tokio::test]
async fn the_event_store_refuses_updates_and_deletes() {
    let env = TestEnv::new().await;
    let pool = env.pool().await;
    let mut tx = pool.begin().await.unwrap();
    store::append_events(
        &mut tx,
        product(Uuid::now_v7()),
        ExpectedVersion::NoStream,
        &[product_created("Z")],
        &Metadata::new(None),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(
        sqlx::query("UPDATE events SET event_type = 'X'")
            .execute(&pool)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM events")
            .execute(&pool)
            .await
            .is_err()
    );
    assert_eq!(count_events(&pool).await, 1);
}

fn key(k: &str, fingerprint: &str) -> IdempotencyKey {
    IdempotencyKey {
        scope: "user-1".into(),
        key: k.into(),
        fingerprint: fingerprint.into(),
    }
}

/// Runs one command under an idempotency key, as a handler does: claim, append, record, commit.
async fn idempotent_create(pool: &sqlx::PgPool, key: &IdempotencyKey, sku: Uuid) -> StoredResponse {
    let mut tx = pool.begin().await.unwrap();
    match idempotency::claim(&mut tx, key).await.unwrap() {
        Claim::Replay(first) => first,
        Claim::Mismatch => panic!("unexpected mismatch"),
        Claim::Fresh => {
            let appended = store::append_events(
                &mut tx,
                product(sku),
                ExpectedVersion::NoStream,
                &[product_created("I")],
                &Metadata::new(None),
            )
            .await
            .unwrap();
            let answer = StoredResponse {
                status: 201,
                headers: vec![("x-event-position".into(), appended.position.to_string())],
                body: format!("{{\"sku\":\"{sku}\",\"position\":{}}}", appended.position)
                    .into_bytes(),
            };
            idempotency::record(&mut tx, key, &answer).await.unwrap();
            tx.commit().await.unwrap();
            answer
        }
    }
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_writes_nothing_more() {
    let env = TestEnv::new().await;
    let pool = env.pool().await;
    let k = key("create-1", "POST /api/v1/products sha256:aa");

    let first = idempotent_create(&pool, &k, Uuid::now_v7()).await;
    // The retry would have created a different product; instead it gets the first answer.
    let again = idempotent_create(&pool, &k, Uuid::now_v7()).await;
    assert_eq!(again, first);
    assert_eq!(count_events(&pool).await, 1);

    let mut tx = pool.begin().await.unwrap();
    let other_request = key("create-1", "POST /api/v1/products sha256:bb");
    assert_eq!(
        idempotency::claim(&mut tx, &other_request).await.unwrap(),
        Claim::Mismatch
    );
}

#[tokio::test]
async fn concurrent_requests_with_one_idempotency_key_write_once() {
    let env = TestEnv::new().await;
    let pool = env.pool().await;
    let k = key("race", "POST /x");
    let racers = (0..8).map(|_| {
        let (pool, k) = (pool.clone(), k.clone());
        tokio::spawn(async move { idempotent_create(&pool, &k, Uuid::now_v7()).await })
    });
    let answers: Vec<_> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "every racer saw the same answer"
    );
    assert_eq!(count_events(&pool).await, 1);
}

#[tokio::test]
async fn a_rejected_command_releases_its_idempotency_key() {
    let env = TestEnv::new().await;
    let pool = env.pool().await;
    let k = key("retry-after-reject", "POST /x");
    let mut tx = pool.begin().await.unwrap();
    assert_eq!(idempotency::claim(&mut tx, &k).await.unwrap(), Claim::Fresh);
    drop(tx); // the command was rejected: rolled back

    let answer = idempotent_create(&pool, &k, Uuid::now_v7()).await;
    assert_eq!(answer.status, 201);
    assert_eq!(count_events(&pool).await, 1);
}
