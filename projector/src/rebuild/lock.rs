//! The rebuild lock: one document in `projector_rebuilds`, owned by one run, with a
//! heartbeat and the phase projectors look at (they write the shadows while it is
//! `building`, and give up on them by setting it to `abandoned`).

use std::time::Duration;

use anyhow::Context as _;
use mongodb::{
    Database,
    bson::{self, Document, doc},
};
use shared::read_model::{self, REBUILD_LOCK_ID as LOCK_ID, REBUILDS};
use uuid::Uuid;

use super::Model;

/// A lock whose holder has not shown signs of life for this long may be broken.
const STALE_AFTER: Duration = Duration::from_secs(read_model::REBUILD_STALE_SECS.unsigned_abs());
/// The phase a projector sets when it cannot write the shadows: the rebuild must not switch.
const ABANDONED: &str = read_model::REBUILD_ABANDONED;

#[derive(Debug, thiserror::Error)]
#[error("another rebuild has been running since {since} (host {host}, pid {pid})")]
pub struct Busy {
    pub since: String,
    pub host: String,
    pub pid: i64,
}

impl From<&Document> for Busy {
    fn from(holder: &Document) -> Self {
        Busy {
            since: holder
                .get_datetime("since")
                .map(|t| t.to_string())
                .unwrap_or_default(),
            host: holder.get_str("host").unwrap_or_default().to_owned(),
            pid: holder.get_i64("pid").unwrap_or(0),
        }
    }
}

/// The lock, held by this run.
pub(super) struct Lock {
    rebuilds: mongodb::Collection<Document>,
    owner: String,
}

impl Lock {
    /// Takes the lock for `models`, or says who holds it ([`Busy`]).
    pub(super) async fn take(db: &Database, models: &[&Model]) -> anyhow::Result<Self> {
        let rebuilds = db.collection::<Document>(REBUILDS);
        let owner = Uuid::new_v4().to_string();
        let now = bson::DateTime::now();
        let lock = doc! {
            "_id": LOCK_ID,
            "owner": &owner,
            "phase": "preparing",
            "since": now,
            "alive_at": now,
            "host": hostname(),
            "pid": i64::from(std::process::id()),
            "models": models.iter().map(|m| m.name).collect::<Vec<_>>(),
        };
        if let Err(e) = rebuilds.insert_one(lock).await {
            if let Some(holder) = rebuilds.find_one(doc! { "_id": LOCK_ID }).await? {
                return Err(Busy::from(&holder).into());
            }
            return Err(e).context("taking the rebuild lock");
        }
        Ok(Self { rebuilds, owner })
    }

    pub(super) async fn phase(&self, phase: &str) -> anyhow::Result<()> {
        self.set(doc! { "phase": phase, "alive_at": bson::DateTime::now() })
            .await
    }

    pub(super) async fn heartbeat(&self) -> anyhow::Result<()> {
        self.set(doc! { "alive_at": bson::DateTime::now() }).await
    }

    /// After the switch, a projector giving up on the replaced copies changes nothing: the
    /// new models are in place.
    pub(super) async fn phase_after_switch(&self, phase: &str) -> anyhow::Result<()> {
        self.rebuilds
            .update_one(
                doc! { "_id": LOCK_ID, "owner": &self.owner },
                doc! { "$set": { "phase": phase, "alive_at": bson::DateTime::now() } },
            )
            .await?;
        Ok(())
    }

    /// Sets `fields` of the lock, if it is still ours and nobody abandoned the rebuild.
    pub(super) async fn set(&self, fields: Document) -> anyhow::Result<()> {
        let updated = self
            .rebuilds
            .update_one(
                doc! { "_id": LOCK_ID, "owner": &self.owner, "phase": { "$ne": ABANDONED } },
                doc! { "$set": fields },
            )
            .await?;
        if updated.matched_count == 1 {
            return Ok(());
        }
        let holder = self.rebuilds.find_one(doc! { "_id": LOCK_ID }).await?;
        match holder {
            Some(lock) if lock.get_str("owner") == Ok(self.owner.as_str()) => anyhow::bail!(
                "a projector could not write the new models and abandoned this rebuild (see its \
                 log); nothing was switched in"
            ),
            _ => anyhow::bail!(
                "the rebuild lock was taken away (camctl projections rebuild --break-lock?)"
            ),
        }
    }

    /// Deletes the lock if it is still ours.
    pub(super) async fn release(self) -> anyhow::Result<()> {
        self.rebuilds
            .delete_one(doc! { "_id": LOCK_ID, "owner": &self.owner })
            .await?;
        Ok(())
    }
}

/// Breaks a lock left by a rebuild that died (killed, or its machine gone): only one whose
/// holder has shown no sign of life for a minute. `Ok(false)`: there was no lock.
pub async fn break_lock(db: &Database) -> anyhow::Result<bool> {
    let rebuilds = db.collection::<Document>(REBUILDS);
    let Some(holder) = rebuilds.find_one(doc! { "_id": LOCK_ID }).await? else {
        return Ok(false);
    };
    let alive_at = holder
        .get_datetime("alive_at")
        .map(|t| t.timestamp_millis())
        .unwrap_or(0);
    let silent = bson::DateTime::now().timestamp_millis() - alive_at;
    if silent < STALE_AFTER.as_millis() as i64 {
        return Err(Busy::from(&holder).into());
    }
    // Exactly the lock looked at, not one taken meanwhile.
    let since = holder.get("since").cloned().unwrap_or(bson::Bson::Null);
    rebuilds
        .delete_one(doc! { "_id": LOCK_ID, "since": since })
        .await?;
    Ok(true)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}
