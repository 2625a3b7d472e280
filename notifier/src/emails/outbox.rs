//! The mail outbox (`notifier_outbox`): one entry per product change and recipient, written by
//! the consumer before it acknowledges the event and drained by [`super::delivery`].
//!
//! An entry moves `pending` → `sending` (claimed under a digest id) → `sent`, or ends `failed`
//! (parked in `DLQ` for its recipient) or `dropped` (the recipient stopped being an admin). Its
//! `_id` is `<event id>:<recipient id>`, so a redelivered event adds nothing.

use std::time::Duration;

use futures::TryStreamExt;
use mongodb::{
    Collection, Database, IndexModel,
    bson::{self, Document, doc},
};
use serde::{Deserialize, Serialize};
use shared::EventEnvelope;

use super::{content::Change, duplicates::only_duplicates};

pub const OUTBOX: &str = "notifier_outbox";

pub const PENDING: &str = "pending";
pub const SENDING: &str = "sending";
pub const SENT: &str = "sent";
pub const FAILED: &str = "failed";
/// The recipient is no longer an admin (demoted, deleted) when their mail was due.
pub const DROPPED: &str = "dropped";

/// One change for one recipient, waiting to be mailed (or mailed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// `<event id>:<recipient id>`: one per change and recipient, whatever redeliveries do.
    #[serde(rename = "_id")]
    pub id: String,
    pub recipient: String,
    /// The event's position: the order a recipient reads changes in.
    pub position: i64,
    pub state: String,
    pub change: Change,
    /// When the change happened (for the age of what waits).
    pub occurred_at: bson::DateTime,
    /// The event as published, to park it for this recipient alone.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<bson::DateTime>,
}

impl Entry {
    /// The id of `envelope`'s entry for `recipient`.
    pub fn id_for(envelope: &EventEnvelope, recipient: &str) -> String {
        format!("{}:{recipient}", envelope.event_id)
    }

    /// `change` (of `envelope`, published as `event_json`), waiting for `recipient`.
    pub fn pending(
        envelope: &EventEnvelope,
        event_json: &str,
        change: &Change,
        recipient: &str,
    ) -> Self {
        Self {
            id: Self::id_for(envelope, recipient),
            recipient: recipient.to_owned(),
            position: envelope.position,
            state: PENDING.to_owned(),
            change: change.clone(),
            occurred_at: bson::DateTime::from_millis(envelope.occurred_at.timestamp_millis()),
            event: event_json.to_owned(),
            digest: None,
            claimed_at: None,
        }
    }
}

pub fn entries(db: &Database) -> Collection<Entry> {
    db.collection(OUTBOX)
}

pub async fn ensure_indexes(db: &Database) -> mongodb::error::Result<()> {
    db.collection::<Document>(OUTBOX)
        .create_indexes([
            IndexModel::builder()
                .keys(doc! { "state": 1, "recipient": 1, "position": 1 })
                .build(),
            IndexModel::builder().keys(doc! { "digest": 1 }).build(),
        ])
        .await
        .map(drop)
}

/// Adds `entries`. A redelivered event finds its entries there already: those inserts fail as
/// duplicates and change nothing.
pub async fn add(db: &Database, entries: &[Entry]) -> mongodb::error::Result<()> {
    match self::entries(db).insert_many(entries).ordered(false).await {
        Ok(_) => Ok(()),
        Err(e) if only_duplicates(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes a parked entry pending again (its copy came back from `DLQ` after the cause was
/// fixed); an entry in any other state is left as it is.
pub async fn reopen(db: &Database, id: &str) -> mongodb::error::Result<()> {
    entries(db)
        .update_one(
            doc! { "_id": id, "state": FAILED },
            doc! { "$set": { "state": PENDING }, "$unset": { "digest": "", "claimed_at": "" } },
        )
        .await
        .map(drop)
}

/// What waits for one recipient: changes not yet mailed and the age of the oldest.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub recipient: String,
    pub changes: usize,
    pub oldest: Duration,
}

/// Every recipient with changes not yet mailed (pending or on their way), most behind first:
/// what `/metrics` sums up and `camctl notifier status` lists.
pub async fn waiting_changes(db: &Database) -> anyhow::Result<Vec<Waiting>> {
    let mut waiting =
        waiting_by_recipient(db, doc! { "state": { "$in": [PENDING, SENDING] } }).await?;
    waiting.sort_by_key(|w| std::cmp::Reverse(w.oldest));
    Ok(waiting)
}

/// The entries matching `filter`, counted per recipient with the age of the oldest.
pub async fn waiting_by_recipient(db: &Database, filter: Document) -> anyhow::Result<Vec<Waiting>> {
    let now = bson::DateTime::now().timestamp_millis();
    let mut groups = db
        .collection::<Document>(OUTBOX)
        .aggregate([
            doc! { "$match": filter },
            doc! { "$group": {
                "_id": "$recipient",
                "count": { "$sum": 1 },
                "oldest": { "$min": "$occurred_at" },
            } },
        ])
        .await?;
    let mut waiting = Vec::new();
    while let Some(group) = groups.try_next().await? {
        let Ok(recipient) = group.get_str("_id") else {
            continue;
        };
        let oldest = group
            .get_datetime("oldest")
            .map_or(now, |d| d.timestamp_millis());
        waiting.push(Waiting {
            recipient: recipient.to_owned(),
            changes: count_of(&group),
            oldest: Duration::from_millis(u64::try_from(now - oldest).unwrap_or(0)),
        });
    }
    Ok(waiting)
}

/// A `$sum` as the server wrote it (an int32, an int64 or a double).
fn count_of(group: &Document) -> usize {
    match group.get("count") {
        Some(bson::Bson::Int32(n)) => usize::try_from(*n).unwrap_or(0),
        Some(bson::Bson::Int64(n)) => usize::try_from(*n).unwrap_or(0),
        Some(bson::Bson::Double(n)) => *n as usize,
        _ => 0,
    }
}
