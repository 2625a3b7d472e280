//! The view tally: counts anonymous product views from `VIEWS`, per product
//! (`product_views`) and per hour (`product_views_hourly`), exactly.
//!
//! Exactness without transactions: the stream is read in order from a checkpoint (an ordered
//! consumer starting after the stream sequence recorded in `notifier_checkpoints`). Every
//! tally document remembers the stream sequence it has counted up to (`last_seq`); a batch
//! adds to a document only the views after that, with an update guarded by the `last_seq` it
//! read. So a batch retried after a crash (before or after some of its writes, with other
//! boundaries) counts each view once, and a second instance doing the same work changes
//! nothing. The checkpoint only says where to resume.

use std::collections::BTreeMap;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Timelike, Utc};
use futures::TryStreamExt;
use mongodb::{
    Database, IndexModel,
    bson::{self, Document, doc},
};
use shared::{
    nats::Prefix,
    read_model::{
        HourlyViewsDoc, PRODUCT_VIEWS, PRODUCT_VIEWS_HOURLY, ProductViewsDoc, views_fields,
    },
    views::ProductViewed,
};
use tokio_util::sync::CancellationToken;

const CHECKPOINTS: &str = "notifier_checkpoints";
const CHECKPOINT_ID: &str = "views";
/// Views counted together, at most.
const MAX_BATCH: usize = 2000;

pub struct Tally {
    pub js: jetstream::Context,
    pub prefix: Prefix,
    pub db: Database,
}

/// One message as read from the stream: `count` views of one product in one hour.
struct View {
    seq: u64,
    sku: String,
    hour: DateTime<Utc>,
    count: i64,
}

impl Tally {
    /// Counts until `shutdown`, resuming from the checkpoint after any failure.
    pub async fn run(self, shutdown: CancellationToken) {
        shared::service::keep_running("view tally", &shutdown, || self.consume(&shutdown)).await;
    }

    async fn consume(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        shared::nats::ensure_streams(&self.js, &self.prefix).await?;
        ensure_indexes(&self.db).await?;
        let after = self.checkpoint().await?;
        let stream = self.js.get_stream(self.prefix.views_stream()).await?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                ..Default::default()
            })
            .await
            .context("reading VIEWS")?;
        let mut messages = consumer.messages().await?;
        while let Some(batch) =
            shared::consumer::next_batch(&mut messages, MAX_BATCH, shutdown, "the VIEWS reader")
                .await?
        {
            let mut views = Vec::with_capacity(batch.len());
            let mut last = 0;
            for message in &batch {
                let seq = message
                    .info()
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .stream_sequence;
                last = seq;
                match serde_json::from_slice::<ProductViewed>(&message.payload) {
                    Ok(view) => views.push(View {
                        seq,
                        sku: view.sku.to_string(),
                        hour: hour_of(view.viewed_at),
                        count: i64::from(view.count),
                    }),
                    Err(e) => tracing::warn!(seq, error = %e, "not a view; skipped"),
                }
            }
            self.count(&views).await?;
            self.db
                .collection::<Document>(CHECKPOINTS)
                .update_one(
                    doc! { "_id": CHECKPOINT_ID },
                    doc! { "$max": { "seq": last as i64 } },
                )
                .upsert(true)
                .await?;
            let tallied: i64 = views.iter().map(|v| v.count).sum();
            metrics::counter!("notifier_views_tallied_total").increment(tallied.unsigned_abs());
            metrics::gauge!("notifier_views_position").set(last as f64);
        }
        Ok(())
    }

    async fn checkpoint(&self) -> anyhow::Result<u64> {
        let checkpoint = self
            .db
            .collection::<Document>(CHECKPOINTS)
            .find_one(doc! { "_id": CHECKPOINT_ID })
            .await?;
        Ok(checkpoint
            .and_then(|c| c.get_i64("seq").ok())
            .map_or(0, |s| s.unsigned_abs()))
    }

    /// Adds the batch's views to the per-product and per-hour tallies, each view once.
    async fn count(&self, views: &[View]) -> anyhow::Result<()> {
        let per_product = group(views, |v| v.sku.clone());
        add(
            &self.db,
            PRODUCT_VIEWS,
            &per_product,
            |key, views, last_seq| {
                bson::to_document(&ProductViewsDoc {
                    sku: key.to_owned(),
                    views,
                    last_seq,
                })
            },
        )
        .await?;
        let per_hour = group(views, |v| format!("{}|{}", v.sku, v.hour.to_rfc3339()));
        add(
            &self.db,
            PRODUCT_VIEWS_HOURLY,
            &per_hour,
            |key, views, last_seq| {
                let (sku, hour) = key.split_once('|').unwrap_or((key, ""));
                let start = DateTime::parse_from_rfc3339(hour)
                    .map(|h| bson::DateTime::from_millis(h.timestamp_millis()))
                    .unwrap_or_else(|_| bson::DateTime::from_millis(0));
                bson::to_document(&HourlyViewsDoc {
                    id: key.to_owned(),
                    sku: sku.to_owned(),
                    bucket_start: start,
                    views,
                    last_seq,
                })
            },
        )
        .await
    }
}

fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(at)
}

/// Stream sequences of the messages and the views each carries, by tally document key.
fn group(views: &[View], key: impl Fn(&View) -> String) -> BTreeMap<String, Vec<(u64, i64)>> {
    let mut groups: BTreeMap<String, Vec<(u64, i64)>> = BTreeMap::new();
    for view in views {
        groups
            .entry(key(view))
            .or_default()
            .push((view.seq, view.count));
    }
    groups
}

/// For each document, adds the views after its `last_seq`, guarded by the `last_seq` read.
/// Retries the documents another writer changed in between. `tally(key, views, last_seq)` is
/// a new document, for the first views of its key.
async fn add(
    db: &Database,
    collection: &str,
    groups: &BTreeMap<String, Vec<(u64, i64)>>,
    tally: impl Fn(&str, i64, i64) -> bson::ser::Result<Document>,
) -> anyhow::Result<()> {
    use views_fields::{ID, LAST_SEQ, VIEWS};
    let tallies = db.collection::<Document>(collection);
    let mut pending: Vec<&String> = groups.keys().collect();
    for _ in 0..5 {
        if pending.is_empty() {
            return Ok(());
        }
        let seen: BTreeMap<String, i64> = tallies
            .find(doc! { ID: { "$in": &pending } })
            .projection(doc! { LAST_SEQ: 1 })
            .await?
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .filter_map(|d| Some((d.get_str(ID).ok()?.to_owned(), d.get_i64(LAST_SEQ).ok()?)))
            .collect();
        let mut statements = Vec::new();
        let mut sent = Vec::new();
        for key in &pending {
            let after = seen.get(*key).copied();
            let seqs = &groups[*key];
            let fresh: i64 = seqs
                .iter()
                .filter(|(s, _)| after.is_none_or(|a| *s as i64 > a))
                .map(|(_, count)| count)
                .sum();
            let last = seqs.iter().map(|(s, _)| *s).max().unwrap_or(0) as i64;
            if fresh == 0 {
                continue;
            }
            let statement = match after {
                Some(after) => doc! {
                    "q": { ID: key.as_str(), LAST_SEQ: after },
                    "u": { "$inc": { VIEWS: fresh }, "$set": { LAST_SEQ: last } },
                },
                None => {
                    // The upsert takes its `_id` from the query.
                    let mut insert = tally(key, fresh, last)?;
                    insert.remove(ID);
                    doc! { "q": { ID: key.as_str() }, "u": { "$setOnInsert": insert }, "upsert": true }
                }
            };
            statements.push(statement);
            sent.push(*key);
        }
        if statements.is_empty() {
            return Ok(());
        }
        let expected = statements.len() as i64;
        let reply = db
            .run_command(doc! { "update": collection, "updates": statements, "ordered": false })
            .await?;
        let modified = reply
            .get_i64("nModified")
            .unwrap_or_else(|_| i64::from(reply.get_i32("nModified").unwrap_or(0)));
        let upserted = reply.get_array("upserted").map_or(0, Vec::len) as i64;
        if modified + upserted == expected {
            return Ok(());
        }
        // Someone else counted some of these meanwhile: look again.
        pending = sent;
    }
    anyhow::bail!("the {collection} tallies kept changing under the counter")
}

pub async fn ensure_indexes(db: &Database) -> anyhow::Result<()> {
    db.collection::<Document>(PRODUCT_VIEWS_HOURLY)
        .create_indexes([
            IndexModel::builder()
                .keys(doc! { views_fields::BUCKET_START: 1, views_fields::SKU: 1 })
                .build(),
            IndexModel::builder()
                .keys(doc! { views_fields::SKU: 1, views_fields::BUCKET_START: 1 })
                .build(),
        ])
        .await?;
    Ok(())
}
