//! Admin emails: every product change reaches every admin except the one who made it,
//! exactly once per (change, recipient), in the order of the changes.
//!
//! Two stages. The consumer (`notifier`, a durable consumer on `EVENTS`, one event at a time)
//! keeps the notifier's own admin directory (`notifier_admins`) and product names
//! (`notifier_products`) from the events, and for each product change writes one outbox entry
//! per recipient (`notifier_outbox`, `_id` = `<event id>:<recipient id>`, so a redelivery adds
//! nothing) before it acknowledges the event. [`delivery`] then mails the outbox per
//! recipient, in parallel, gathering bursts into digests ([`content`]). A failing write to the
//! store is retried with backoff; after [`MAX_ATTEMPTS`] the event goes to `DLQ` and the
//! others flow.

pub mod content;
pub mod delivery;

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::{StreamExt, TryStreamExt};
use mongodb::{
    Collection, Database,
    bson::{self, Document, doc},
};
use shared::{
    EventEnvelope, Role,
    events::{ProductEvent, UserEvent},
    nats::Prefix,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::mail::Mailer;
use content::Change;

pub const CONSUMER: &str = "notifier";
/// The header naming the one recipient a parked mail was for.
const RECIPIENT: &str = "Dlq-Recipient";
pub const MAX_ATTEMPTS: i64 = 8;
const ADMINS: &str = "notifier_admins";
const PRODUCTS: &str = "notifier_products";

pub struct Emails {
    pub js: jetstream::Context,
    pub prefix: Prefix,
    pub db: Database,
    pub mailer: Arc<Mailer>,
    /// `MAIL_DIGEST_WINDOW`: how long after a mail to a recipient further changes gather.
    pub digest_window: Duration,
    /// Holds each acknowledgement this long (`NOTIFIER_ACK_DELAY_MS`, a testing aid: the crash
    /// test kills the process in this window). Zero in production.
    pub ack_delay: Duration,
    /// Wakes the delivery when changes were added.
    pub wake: Arc<Notify>,
}

impl Emails {
    pub async fn run(self, shutdown: CancellationToken) {
        tokio::spawn(watch_backlog(
            self.js.clone(),
            self.prefix.clone(),
            shutdown.clone(),
        ));
        if let Err(e) = delivery::Dispatcher::ensure_indexes(&self.db).await {
            tracing::warn!(error = %e, "creating the mail outbox indexes failed");
        }
        let dispatcher = delivery::Dispatcher {
            db: self.db.clone(),
            mailer: self.mailer.clone(),
            park: self.parking(),
            window: self.digest_window,
            wake: self.wake.clone(),
        };
        let delivering = tokio::spawn(dispatcher.run(shutdown.clone()));
        shared::service::keep_running("admin emails", &shutdown, || self.consume(&shutdown)).await;
        let _ = delivering.await;
    }

    fn parking(&self) -> Park {
        Park {
            js: self.js.clone(),
            prefix: self.prefix.clone(),
        }
    }

    async fn consume(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        shared::nats::ensure_streams(&self.js, &self.prefix).await?;
        let stream = self.js.get_stream(self.prefix.events_stream()).await?;
        let consumer = stream
            .get_or_create_consumer(
                CONSUMER,
                pull::Config {
                    durable_name: Some(CONSUMER.to_owned()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(10),
                    // One at a time: the directory must be current for each product event.
                    max_ack_pending: 1,
                    ..Default::default()
                },
            )
            .await
            .context("creating the notifier consumer")?;
        let mut messages = consumer.messages().await?;
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                next = messages.next() => match next {
                    Some(message) => message?,
                    None => anyhow::bail!("the consumer's message stream ended"),
                },
            };
            let answer = self.handle(&message).await;
            if !self.ack_delay.is_zero() {
                tokio::time::sleep(self.ack_delay).await;
            }
            message
                .ack_with(answer)
                .await
                .map_err(|e| anyhow::anyhow!("acknowledging: {e}"))?;
        }
    }

    async fn handle(&self, message: &jetstream::Message) -> AckKind {
        if shared::nats::headers::requeued_for_another(message.headers.as_ref(), Some(CONSUMER)) {
            return AckKind::Ack;
        }
        let attempts = message.info().map(|i| i.delivered).unwrap_or(1);
        let outcome = match serde_json::from_slice::<EventEnvelope>(&message.payload) {
            Ok(envelope) => self.apply(&envelope, message).await,
            Err(e) => Err(anyhow::anyhow!("not an event envelope: {e}")),
        };
        match outcome {
            Ok(()) => AckKind::Ack,
            Err(e) if attempts < MAX_ATTEMPTS => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    attempts,
                    "an admin email failed; will retry"
                );
                metrics::counter!("notifier_mail_failures_total").increment(1);
                let delay = Duration::from_millis(500 * 2_u64.pow(attempts.clamp(1, 7) as u32 - 1));
                AckKind::Nak(Some(delay.min(Duration::from_secs(60))))
            }
            Err(e) => match self.dead_letter(message, &format!("{e:#}")).await {
                Ok(()) => AckKind::Term,
                Err(dlq) => {
                    tracing::error!(error = format!("{dlq:#}"), "parking failed; retrying later");
                    AckKind::Nak(Some(Duration::from_secs(30)))
                }
            },
        }
    }

    async fn apply(
        &self,
        envelope: &EventEnvelope,
        message: &jetstream::Message,
    ) -> anyhow::Result<()> {
        match envelope.aggregate_type.as_str() {
            "user" => self.follow_user(envelope).await,
            "product" => self.mail_product_change(envelope, message).await,
            _ => Ok(()),
        }
    }

    fn collection(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    /// Keeps the admin directory: every user with role, email and name (so a demotion or a
    /// deletion stops the mails).
    async fn follow_user(&self, envelope: &EventEnvelope) -> anyhow::Result<()> {
        let id = envelope.aggregate_id.to_string();
        let set = match envelope.decode::<UserEvent>()? {
            UserEvent::UserRegistered {
                username,
                email,
                display_name,
                role,
                ..
            } => doc! {
                "username": username, "email": email, "display_name": display_name,
                "role": role.as_str(), "deleted": false,
            },
            UserEvent::UserProfileUpdated {
                display_name,
                email,
                ..
            } => {
                let mut set = doc! {};
                if let Some(name) = display_name {
                    set.insert("display_name", name);
                }
                if let Some(email) = email {
                    set.insert("email", email);
                }
                set
            }
            UserEvent::UserRoleChanged { role, .. } => doc! { "role": role.as_str() },
            UserEvent::UserDeleted {} => doc! { "deleted": true },
            UserEvent::SessionRevoked { .. } => return Ok(()),
        };
        // In stream order, one at a time: a version guard keeps a replay from going back.
        let version = envelope.aggregate_version;
        let mut set = set;
        set.insert("version", version);
        self.collection(ADMINS)
            .update_one(
                doc! { "_id": &id, "$or": [
                    { "version": { "$lt": version } }, { "version": { "$exists": false } },
                ] },
                doc! { "$set": set },
            )
            .upsert(true)
            .await
            .or_else(|e| {
                if is_duplicate_key(&e) {
                    Ok(Default::default())
                } else {
                    Err(e)
                }
            })?;
        Ok(())
    }

    async fn mail_product_change(
        &self,
        envelope: &EventEnvelope,
        message: &jetstream::Message,
    ) -> anyhow::Result<()> {
        let sku = envelope.aggregate_id.to_string();
        let event = envelope.decode::<ProductEvent>()?;
        let products = self.collection(PRODUCTS);
        let known = products.find_one(doc! { "_id": &sku }).await?;
        let name = match &event {
            ProductEvent::ProductCreated(created) => created.name.clone(),
            ProductEvent::ProductUpdated(update) => update
                .changes
                .get("name")
                .and_then(|c| c.after.as_str().map(str::to_owned))
                .or_else(|| {
                    known
                        .as_ref()
                        .and_then(|p| p.get_str("name").ok().map(str::to_owned))
                })
                .unwrap_or_else(|| sku.clone()),
            ProductEvent::ProductDeleted(_) => known
                .as_ref()
                .and_then(|p| p.get_str("name").ok().map(str::to_owned))
                .unwrap_or_else(|| sku.clone()),
        };
        products
            .update_one(doc! { "_id": &sku }, doc! { "$set": { "name": &name } })
            .upsert(true)
            .await?;

        let actor_id = envelope.actor.as_ref().map(|a| a.user_id.to_string());
        let admins: Vec<Document> = self
            .collection(ADMINS)
            .find(doc! { "role": Role::Admin.as_str(), "deleted": false })
            .await?
            .try_collect()
            .await?;
        let actor = match &actor_id {
            Some(id) => self.collection(ADMINS).find_one(doc! { "_id": id }).await?,
            None => None,
        };
        let change = Change::of(envelope, &event, &name, actor.as_ref());
        // A copy `camctl dlq requeue` sent back retries the one recipient it was parked for
        // (after the cause was fixed); every other recipient was handled already.
        // (A whole event parked after failing too often carries no recipient: its copy is
        // handled like a redelivery, adding whoever has no entry yet.)
        let requeued_for = message
            .headers
            .as_ref()
            .filter(|h| h.get(shared::nats::headers::REQUEUED).is_some())
            .and_then(|h| h.get(RECIPIENT))
            .map(|r| r.as_str().to_owned());
        let outbox = self.db.collection::<delivery::Entry>(delivery::OUTBOX);
        if let Some(recipient) = &requeued_for {
            outbox
                .update_one(
                    doc! { "_id": format!("{}:{recipient}", envelope.event_id), "state": delivery::FAILED },
                    doc! { "$set": { "state": delivery::PENDING }, "$unset": { "digest": "", "claimed_at": "" } },
                )
                .await?;
        }
        let event_json = serde_json::to_string(envelope)?;
        let occurred_at = bson::DateTime::from_millis(envelope.occurred_at.timestamp_millis());
        let entries: Vec<delivery::Entry> = admins
            .iter()
            .filter_map(|admin| admin.get_str("_id").ok())
            .filter(|recipient| Some(*recipient) != actor_id.as_deref())
            .filter(|recipient| requeued_for.as_deref().is_none_or(|r| r == *recipient))
            .map(|recipient| delivery::Entry {
                id: format!("{}:{recipient}", envelope.event_id),
                recipient: recipient.to_owned(),
                position: envelope.position,
                state: delivery::PENDING.to_owned(),
                change: change.clone(),
                occurred_at,
                event: event_json.clone(),
                digest: None,
                claimed_at: None,
            })
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        // A redelivered event finds its entries there already: those inserts fail as
        // duplicates and change nothing.
        match outbox.insert_many(&entries).ordered(false).await {
            Ok(_) => {}
            Err(e) if only_duplicates(&e) => {}
            Err(e) => return Err(e.into()),
        }
        self.wake.notify_one();
        Ok(())
    }

    async fn dead_letter(&self, message: &jetstream::Message, error: &str) -> anyhow::Result<()> {
        shared::nats::dead_letter(
            &self.js,
            &self.prefix,
            shared::nats::DeadLetter {
                consumer: CONSUMER,
                original_subject: &message.subject,
                original: message.headers.as_ref(),
                payload: message.payload.clone(),
                error,
                extra: &[],
            },
        )
        .await
    }
}

/// How often the mail backlog is measured.
const BACKLOG_EVERY: Duration = Duration::from_secs(2);

/// Keeps `notifier_mail_backlog_events` (events the mail consumer has not finished: not yet
/// delivered, or being mailed) and `notifier_mail_backlog_age_seconds` (how long the oldest of
/// them has waited since it was published) current, until `shutdown`.
async fn watch_backlog(js: jetstream::Context, prefix: Prefix, shutdown: CancellationToken) {
    loop {
        match backlog(&js, &prefix).await {
            Ok((events, age)) => {
                metrics::gauge!("notifier_mail_backlog_events").set(events as f64);
                metrics::gauge!("notifier_mail_backlog_age_seconds").set(age.as_secs_f64());
            }
            Err(e) => tracing::debug!(error = format!("{e:#}"), "measuring the mail backlog"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(BACKLOG_EVERY) => {}
        }
    }
}

/// Events the mail consumer has not finished, and how long the oldest has waited.
pub async fn backlog(js: &jetstream::Context, prefix: &Prefix) -> anyhow::Result<(u64, Duration)> {
    let stream = js.get_stream(prefix.events_stream()).await?;
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .get_consumer(CONSUMER)
        .await
        .map_err(|e| anyhow::anyhow!("the mail consumer: {e}"))?;
    let info = consumer.info().await?;
    let events = info.num_pending + info.num_ack_pending as u64;
    if events == 0 {
        return Ok((0, Duration::ZERO));
    }
    let oldest = stream
        .get_raw_message(info.ack_floor.stream_sequence + 1)
        .await?;
    let waited = time::OffsetDateTime::now_utc() - oldest.time;
    Ok((events, waited.try_into().unwrap_or(Duration::ZERO)))
}

/// Parks a recipient's mail of an event in `DLQ` (with the recipient in a header), so that
/// `camctl dlq requeue` retries that recipient alone.
#[derive(Clone)]
pub struct Park {
    js: jetstream::Context,
    prefix: Prefix,
}

impl Park {
    pub async fn park(
        &self,
        envelope: &EventEnvelope,
        recipient: &str,
        error: &str,
    ) -> anyhow::Result<()> {
        let original = self.prefix.event_subject(
            &envelope.aggregate_type,
            &envelope.aggregate_id.to_string(),
            &envelope.event_type,
        );
        shared::nats::dead_letter(
            &self.js,
            &self.prefix,
            shared::nats::DeadLetter {
                consumer: CONSUMER,
                original_subject: &original,
                original: None,
                payload: serde_json::to_vec(envelope)?.into(),
                error,
                extra: &[(RECIPIENT, recipient)],
            },
        )
        .await
    }
}

/// True when every failure of an unordered bulk insert is a duplicate key.
fn only_duplicates(error: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    match &*error.kind {
        ErrorKind::InsertMany(failure) => {
            failure.write_concern_error.is_none()
                && failure
                    .write_errors
                    .as_ref()
                    .is_some_and(|errors| errors.iter().all(|e| e.code == 11000))
        }
        _ => is_duplicate_key(error),
    }
}

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    matches!(&*error.kind, ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == 11000)
}

/// The recipient's mailbox: the address as given, the display name only ever as the name.
/// (Formatting `"{name} <{address}>"` and parsing it would let a name like
/// `Eve <eve@evil.example>` choose the address.)
pub(crate) fn recipient_mailbox(
    display_name: Option<&str>,
    address: &str,
) -> Result<lettre::message::Mailbox, lettre::address::AddressError> {
    let address: lettre::Address = address.parse()?;
    let name = display_name
        .map(|n| n.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|n| !n.trim().is_empty());
    Ok(lettre::message::Mailbox::new(name, address))
}

#[cfg(test)]
mod mailbox_tests {
    use super::*;

    #[test]
    fn a_display_name_cannot_choose_the_address() {
        let to = recipient_mailbox(Some("X <evil@x.example>"), "admin@camreviews.test").unwrap();
        assert_eq!(to.email.to_string(), "admin@camreviews.test");
        let written = to.to_string();
        assert!(written.ends_with("<admin@camreviews.test>"), "{written}");
        assert!(
            recipient_mailbox(Some("Ana\r\nBcc: evil@x.example"), "ana@camreviews.test")
                .unwrap()
                .name
                .is_some_and(|n| !n.contains('\n'))
        );
    }
}
