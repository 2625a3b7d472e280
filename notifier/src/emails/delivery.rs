//! Delivery: the outbox of changes to mail (`notifier_outbox`, one document per change and
//! recipient) drained per recipient, in parallel across recipients.
//!
//! A recipient's first change after a quiet period is mailed at once. Changes that arrive
//! while that mail is on its way, or within the digest window after it (`MAIL_DIGEST_WINDOW`),
//! wait and go out together as one digest, oldest first; so a burst of 100 changes reaches
//! each admin in a handful of mails. At most `SMTP_CONNECTIONS` mails are on their way at
//! once, one per recipient, so each recipient reads the changes of a product in order.
//!
//! A document moves `pending` → `sending` (claimed under a digest id, which is also the mail's
//! `Message-ID`) → `sent`; a mailbox refused for good parks each of its changes in `DLQ` for
//! that recipient (`failed`); a server that is away or stalls puts them back to `pending` and
//! the recipient waits out a growing delay. A notifier killed between the server accepting a
//! digest and recording it sends that digest again after a restart, with the same
//! `Message-ID`, so a receiving system can recognise the repeat; that window is the one
//! write after the server's answer.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::TryStreamExt;
use mongodb::{
    Collection, Database, IndexModel,
    bson::{self, Document, doc},
};
use serde::{Deserialize, Serialize};
use shared::{EventEnvelope, Role};
use tokio::{sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{ADMINS, Park, content::Change, recipient_mailbox};
use crate::mail::{Mail, Mailer, is_permanent};

pub const OUTBOX: &str = "notifier_outbox";
/// Changes in one digest at most (more wait for the next).
const MAX_DIGEST: i64 = 500;
/// How often the outbox is looked at when nothing wakes the dispatcher.
const TICK: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The least time between two looks at the outbox.
const MIN_SCAN: Duration = Duration::from_millis(100);

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

pub const PENDING: &str = "pending";
const SENDING: &str = "sending";
const SENT: &str = "sent";
pub const FAILED: &str = "failed";
/// The recipient is no longer an admin (demoted, deleted) when their mail was due.
const DROPPED: &str = "dropped";

pub struct Dispatcher {
    pub db: Database,
    pub mailer: Arc<Mailer>,
    pub park: Park,
    pub window: Duration,
    /// Woken when changes are added.
    pub wake: Arc<Notify>,
}

/// Per recipient: when they may be mailed next, and how long the next failure waits.
#[derive(Default)]
struct Recipient {
    busy: bool,
    ready_at: Option<Instant>,
    backoff: Option<Duration>,
    /// When their last mail went out.
    last_sent: Option<Instant>,
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
    let now = bson::DateTime::now().timestamp_millis();
    let mut groups = db
        .collection::<Document>(OUTBOX)
        .aggregate([
            doc! { "$match": { "state": { "$in": [PENDING, SENDING] } } },
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
    waiting.sort_by_key(|w| std::cmp::Reverse(w.oldest));
    Ok(waiting)
}

fn count_of(group: &Document) -> usize {
    match group.get("count") {
        Some(bson::Bson::Int32(n)) => usize::try_from(*n).unwrap_or(0),
        Some(bson::Bson::Int64(n)) => usize::try_from(*n).unwrap_or(0),
        Some(bson::Bson::Double(n)) => *n as usize,
        _ => 0,
    }
}

/// How many changes a delivery mailed (0: nothing was left, or it was parked or dropped);
/// an error when the server was away or stalled (the changes wait again).
enum Outcome {
    Sent(usize),
}

impl Dispatcher {
    fn outbox(&self) -> Collection<Entry> {
        self.db.collection(OUTBOX)
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

    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut recipients: HashMap<String, Recipient> = HashMap::new();
        let mut working: JoinSet<(String, anyhow::Result<Outcome>)> = JoinSet::new();
        // Who had changes waiting at the last look, not yet started.
        let mut waiting: HashMap<String, (usize, Duration)> = HashMap::new();
        let mut last_scan: Option<Instant> = None;
        let mut woken = true;
        loop {
            while let Some(done) = working.try_join_next() {
                if let Ok((recipient, outcome)) = done {
                    this.settle(&mut recipients, &recipient, outcome);
                }
            }
            // At most ten looks at the outbox a second, however often changes arrive; one at
            // least every `TICK`.
            let since = last_scan.map_or(TICK, |t| t.elapsed());
            if (woken && since >= MIN_SCAN) || since >= TICK {
                match this.waiting().await {
                    Ok(found) => {
                        this.publish_lag(&found);
                        waiting = found;
                    }
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "reading the mail outbox failed");
                    }
                }
                last_scan = Some(Instant::now());
                woken = false;
            }
            // A delivery that ends starts the next due recipient at once, without a new look.
            this.start_due(&mut recipients, &mut working, &mut waiting);
            let since = last_scan.map_or(TICK, |t| t.elapsed());
            let next_look = TICK.saturating_sub(since);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = this.wake.notified() => woken = true,
                () = tokio::time::sleep(next_look.max(Duration::from_millis(10))) => {}
                Some(Ok((recipient, outcome))) = working.join_next(), if !working.is_empty() => {
                    this.settle(&mut recipients, &recipient, outcome);
                }
            }
        }
        // Mails on their way finish (each is bounded by its deadline) and are recorded.
        while working.join_next().await.is_some() {}
    }

    fn publish_lag(&self, waiting: &HashMap<String, (usize, Duration)>) {
        let total: usize = waiting.values().map(|(count, _)| count).sum();
        let oldest = waiting
            .values()
            .map(|(_, age)| *age)
            .max()
            .unwrap_or_default();
        metrics::gauge!("notifier_mail_pending_changes").set(total as f64);
        metrics::gauge!("notifier_mail_pending_recipients").set(waiting.len() as f64);
        metrics::gauge!("notifier_mail_oldest_pending_seconds").set(oldest.as_secs_f64());
    }

    fn settle(
        &self,
        recipients: &mut HashMap<String, Recipient>,
        recipient: &str,
        outcome: anyhow::Result<Outcome>,
    ) {
        let state = recipients.entry(recipient.to_owned()).or_default();
        state.busy = false;
        match outcome {
            Ok(Outcome::Sent(0)) => {}
            Ok(Outcome::Sent(_)) => {
                state.backoff = None;
                state.last_sent = Some(Instant::now());
                state.ready_at = Some(Instant::now() + self.window);
            }
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    recipient,
                    "an admin mail failed; will retry"
                );
                metrics::counter!("notifier_mail_failures_total").increment(1);
                let backoff = state
                    .backoff
                    .map_or(Duration::from_millis(500), |b| (b * 2).min(MAX_BACKOFF));
                state.backoff = Some(backoff);
                state.ready_at = Some(Instant::now() + backoff);
            }
        }
    }

    /// Starts a delivery for every recipient with changes waiting who is due, as many as
    /// there are connections; publishes what waits.
    /// Starts a delivery for every recipient in `waiting` who is due, as many as there are
    /// connections; the ones started leave `waiting`.
    fn start_due(
        self: &Arc<Self>,
        recipients: &mut HashMap<String, Recipient>,
        working: &mut JoinSet<(String, anyhow::Result<Outcome>)>,
        waiting: &mut HashMap<String, (usize, Duration)>,
    ) {
        let now = Instant::now();
        // Forget recipients with nothing waiting whose window has passed: the map holds only
        // recipients with work or a recent mail.
        recipients.retain(|r, s| {
            s.busy || waiting.contains_key(r) || s.ready_at.is_some_and(|t| t > now)
        });
        let mut started = Vec::new();
        for (recipient, (_, age)) in waiting.iter() {
            if working.len() >= self.mailer.connections() {
                break;
            }
            let state = recipients.entry(recipient.clone()).or_default();
            let due = state.ready_at.is_none_or(|t| t <= now);
            if state.busy || !due {
                continue;
            }
            state.busy = true;
            // After a quiet period the first change goes alone, at once; what follows within
            // the window (or piled up while the server was failing) goes as a digest.
            // Quiet: the oldest waiting change came more than a window after the last mail.
            let quiet = state.backoff.is_none()
                && state
                    .last_sent
                    .is_none_or(|t| t.elapsed().saturating_sub(*age) > self.window);
            let this = self.clone();
            let recipient = recipient.clone();
            started.push(recipient.clone());
            working.spawn(async move {
                let outcome = this.deliver(&recipient, quiet).await;
                (recipient, outcome)
            });
        }
        for recipient in started {
            waiting.remove(&recipient);
        }
    }

    /// Recipients with changes not yet mailed (pending, or claimed by a notifier that stopped
    /// mid-send): how many, and the age of the oldest.
    async fn waiting(&self) -> anyhow::Result<HashMap<String, (usize, Duration)>> {
        let now = bson::DateTime::now().timestamp_millis();
        let stale = bson::DateTime::from_millis(now - self.stale_after().as_millis() as i64);
        let mut groups = self
            .db
            .collection::<Document>(OUTBOX)
            .aggregate([
                doc! { "$match": { "$or": [
                    { "state": PENDING },
                    { "state": SENDING, "claimed_at": { "$lt": stale } },
                ] } },
                doc! { "$group": {
                    "_id": "$recipient",
                    "count": { "$sum": 1 },
                    "oldest": { "$min": "$occurred_at" },
                } },
            ])
            .await?;
        // A recipient whose digest is on its way (from this notifier or another) waits for it:
        // their changes go out in order.
        let mut busy = std::collections::HashSet::new();
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
        let mut waiting = HashMap::new();
        while let Some(group) = groups.try_next().await? {
            let Ok(recipient) = group.get_str("_id") else {
                continue;
            };
            let count = count_of(&group);
            let oldest = group
                .get_datetime("oldest")
                .map_or(now, |d| d.timestamp_millis());
            let age = Duration::from_millis(u64::try_from(now - oldest).unwrap_or(0));
            if count > 0 && !busy.contains(recipient) {
                waiting.insert(recipient.to_owned(), (count, age));
            }
        }
        Ok(waiting)
    }

    /// A claim older than this was left by a notifier that stopped mid-send: every send ends
    /// (or is given up) within its deadline, and is recorded right after.
    fn stale_after(&self) -> Duration {
        self.mailer.send_timeout() + Duration::from_secs(5)
    }

    /// Mails one recipient what waits for them: a digest left half-sent by a stopped
    /// notifier first (again, under its id), else whatever is pending.
    async fn deliver(&self, recipient: &str, quiet: bool) -> anyhow::Result<Outcome> {
        let stale = bson::DateTime::from_millis(
            bson::DateTime::now().timestamp_millis() - self.stale_after().as_millis() as i64,
        );
        let left = self
            .outbox()
            .find_one(
                doc! { "recipient": recipient, "state": SENDING, "claimed_at": { "$lt": stale } },
            )
            .await?;
        let digest = match left.and_then(|e| e.digest) {
            Some(digest) => {
                self.outbox()
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
                None => return Ok(Outcome::Sent(0)),
            },
        };
        let entries: Vec<Entry> = self
            .outbox()
            .find(doc! { "digest": &digest, "state": SENDING })
            .sort(doc! { "position": 1 })
            .await?
            .try_collect()
            .await?;
        if entries.is_empty() {
            return Ok(Outcome::Sent(0));
        }
        self.send(recipient, &digest, &entries).await
    }

    /// Claims the recipient's oldest `limit` pending changes under a new digest id.
    async fn claim(&self, recipient: &str, limit: i64) -> anyhow::Result<Option<String>> {
        let ids: Vec<String> = self
            .outbox()
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
        self.outbox()
            .update_many(
                doc! { "_id": { "$in": &ids }, "state": PENDING },
                doc! { "$set": { "state": SENDING, "digest": &digest, "claimed_at": bson::DateTime::now() } },
            )
            .await?;
        Ok(Some(digest))
    }

    async fn send(
        &self,
        recipient: &str,
        digest: &str,
        entries: &[Entry],
    ) -> anyhow::Result<Outcome> {
        let admin = self
            .db
            .collection::<Document>(ADMINS)
            .find_one(doc! { "_id": recipient })
            .await?;
        let still_admin = admin.as_ref().is_some_and(|a| {
            a.get_str("role") == Ok(Role::Admin.as_str()) && !a.get_bool("deleted").unwrap_or(false)
        });
        let Some(admin) = admin.filter(|_| still_admin) else {
            self.mark(digest, DROPPED).await?;
            return Ok(Outcome::Sent(0));
        };
        let changes: Vec<Change> = entries.iter().map(|e| e.change.clone()).collect();
        let content = super::content::Content::of(&changes);
        let address = admin.get_str("email").unwrap_or_default();
        let sent = match recipient_mailbox(admin.get_str("display_name").ok(), address) {
            Ok(to) => {
                self.mailer
                    .send(Mail {
                        to,
                        subject: content.subject,
                        text: content.text,
                        html: content.html,
                        message_id: format!("<{digest}@camreviews>"),
                    })
                    .await
            }
            Err(e) => Err(anyhow::anyhow!("no usable address {address:?}: {e}")),
        };
        match sent {
            Ok(()) => {
                self.mark(digest, SENT).await?;
                metrics::counter!("notifier_mails_sent_total").increment(1);
                metrics::counter!("notifier_changes_mailed_total").increment(entries.len() as u64);
                Ok(Outcome::Sent(entries.len()))
            }
            // This recipient will never take it (a 5xx, a bad address): park each change for
            // this recipient alone, so one bad address blocks nobody.
            Err(e) if is_permanent(&e) => {
                let error = format!("mailing admin {recipient}: {e:#}");
                for entry in entries {
                    let envelope: EventEnvelope = serde_json::from_str(&entry.event)?;
                    self.park.park(&envelope, recipient, &error).await?;
                }
                self.mark(digest, FAILED).await?;
                metrics::counter!("notifier_mails_failed_total").increment(1);
                Ok(Outcome::Sent(0))
            }
            // Away, busy or stalled: the changes wait again (they may join later ones).
            Err(e) => {
                self.outbox()
                    .update_many(
                        doc! { "digest": digest, "state": SENDING },
                        doc! { "$set": { "state": PENDING }, "$unset": { "digest": "", "claimed_at": "" } },
                    )
                    .await?;
                Err(e.context(format!("mailing admin {recipient}")))
            }
        }
    }

    async fn mark(&self, digest: &str, state: &str) -> anyhow::Result<()> {
        self.outbox()
            .update_many(
                doc! { "digest": digest, "state": SENDING },
                doc! { "$set": { "state": state, "done_at": bson::DateTime::now() } },
            )
            .await?;
        Ok(())
    }
}
