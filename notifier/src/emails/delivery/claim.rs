//! What a recipient's next mail holds: a digest left half-sent by a notifier that stopped
//! mid-send, again under its own id (so the repeat carries the same `Message-ID`), else their
//! oldest pending changes claimed under a new digest id.
//!
//! Every send ends (or is given up) within its deadline and is recorded right after, so a
//! claim older than that plus a margin was left by a notifier that stopped.

use std::{collections::HashSet, time::Duration};

use futures::TryStreamExt;
use mongodb::bson::{self, Document, doc};
use uuid::Uuid;

use super::{Dispatcher, Due};
use crate::emails::outbox::{self, Entry, OUTBOX, PENDING, SENDING};

/// Changes in one digest at most (more wait for the next).
const MAX_DIGEST: i64 = 500;

impl Dispatcher {
    /// Recipients with changes not yet mailed (pending, or claimed by a notifier that stopped
    /// mid-send): how many, and the age of the oldest. A recipient whose digest is on its way
    /// (from this notifier or another) is left out: their changes go out in order.
    pub(super) async fn due(&self) -> anyhow::Result<Due> {
        let stale = self.stale_since();
        let waiting = outbox::waiting_by_recipient(
            &self.db,
            doc! { "$or": [
                { "state": PENDING },
                { "state": SENDING, "claimed_at": { "$lt": stale } },
            ] },
        )
        .await?;
        let mut busy = HashSet::new();
        let mut sending = self
            .db
            .collection::<Document>(OUTBOX)
            .find(doc! { "state": SENDING, "claimed_at": { "$gte": stale } })
            .projection(doc! { "recipient": 1 })
            .await?;
        while let Some(entry) = sending.try_next().await? {
            if let Ok(recipient) = entry.get_str("recipient") {
                busy.insert(recipient.to_owned());
            }
        }
        Ok(waiting
            .into_iter()
            .filter(|w| w.changes > 0 && !busy.contains(&w.recipient))
            .map(|w| (w.recipient, (w.changes, w.oldest)))
            .collect())
    }

    /// The digest to mail `recipient` next and its entries, oldest first; `None` when nothing
    /// is left. After a quiet period a new digest holds one change (it goes alone, at once).
    pub(super) async fn next_digest(
        &self,
        recipient: &str,
        quiet: bool,
    ) -> anyhow::Result<Option<(String, Vec<Entry>)>> {
        let left = outbox::entries(&self.db)
            .find_one(doc! {
                "recipient": recipient, "state": SENDING, "claimed_at": { "$lt": self.stale_since() },
            })
            .await?;
        let digest = match left.and_then(|e| e.digest) {
            Some(digest) => {
                outbox::entries(&self.db)
                    .update_many(
                        doc! { "digest": &digest, "state": SENDING },
                        doc! { "$set": { "claimed_at": bson::DateTime::now() } },
                    )
                    .await?;
                digest
            }
            None => match self
                .claim(recipient, if quiet { 1 } else { MAX_DIGEST })
                .await?
            {
                Some(digest) => digest,
                None => return Ok(None),
            },
        };
        let entries: Vec<Entry> = outbox::entries(&self.db)
            .find(doc! { "digest": &digest, "state": SENDING })
            .sort(doc! { "position": 1 })
            .await?
            .try_collect()
            .await?;
        Ok((!entries.is_empty()).then_some((digest, entries)))
    }

    /// Claims the recipient's oldest `limit` pending changes under a new digest id.
    async fn claim(&self, recipient: &str, limit: i64) -> anyhow::Result<Option<String>> {
        let ids: Vec<String> = outbox::entries(&self.db)
            .find(doc! { "recipient": recipient, "state": PENDING })
            .sort(doc! { "position": 1 })
            .limit(limit)
            .await?
            .map_ok(|e| e.id)
            .try_collect()
            .await?;
        if ids.is_empty() {
            return Ok(None);
        }
        let digest = Uuid::now_v7().to_string();
        outbox::entries(&self.db)
            .update_many(
                doc! { "_id": { "$in": &ids }, "state": PENDING },
                doc! { "$set": {
                    "state": SENDING, "digest": &digest, "claimed_at": bson::DateTime::now(),
                } },
            )
            .await?;
        Ok(Some(digest))
    }

    /// Claims made before this were left by a notifier that stopped mid-send.
    fn stale_since(&self) -> bson::DateTime {
        let stale_after = self.mailer.send_timeout() + Duration::from_secs(5);
        bson::DateTime::from_millis(
            bson::DateTime::now().timestamp_millis() - stale_after.as_millis() as i64,
        )
    }
}
