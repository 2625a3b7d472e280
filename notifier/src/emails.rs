//! Admin emails: every product change is mailed to every admin except the one who made it,
//! exactly once per (event, recipient).
//!
//! A durable consumer (`notifier`) reads `EVENTS` in order, one event at a time. User events
//! keep the notifier's own admin directory (`notifier_admins`); product events keep the
//! product names it mails about (`notifier_products`) and are mailed. Each send is recorded
//! (`notifier_sends`, `_id` = `<event id>:<recipient id>`) as soon as the SMTP server accepted
//! it, before the event is acknowledged: a redelivery — after a crash between sending and
//! acknowledging, or a retry after some recipients failed — skips what was sent. A failing
//! SMTP server is retried with backoff; after [`MAX_ATTEMPTS`] the event goes to `DLQ` and the
//! others flow.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::{StreamExt, TryStreamExt};
use mongodb::{
    Collection, Database,
    bson::{self, Document, doc},
};
use serde_json::Value;
use shared::{
    EventEnvelope, Role,
    events::{ProductEvent, UserEvent},
    nats::Prefix,
};
use tokio_util::sync::CancellationToken;

use crate::mail::{Mail, Mailer, is_permanent};

pub const CONSUMER: &str = "notifier";
/// The header naming the one recipient a parked mail was for.
const RECIPIENT: &str = "Dlq-Recipient";
pub const MAX_ATTEMPTS: i64 = 8;
const ADMINS: &str = "notifier_admins";
const PRODUCTS: &str = "notifier_products";
const SENDS: &str = "notifier_sends";

pub struct Emails {
    pub js: jetstream::Context,
    pub prefix: Prefix,
    pub db: Database,
    pub mailer: Mailer,
    /// Holds each acknowledgement this long (`NOTIFIER_ACK_DELAY_MS`, a testing aid: the crash
    /// test kills the process in this window). Zero in production.
    pub ack_delay: Duration,
}

impl Emails {
    pub async fn run(self, shutdown: CancellationToken) {
        tokio::spawn(watch_backlog(
            self.js.clone(),
            self.prefix.clone(),
            shutdown.clone(),
        ));
        shared::service::keep_running("admin emails", &shutdown, || self.consume(&shutdown)).await;
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
        let content = Content::of(envelope, &event, &name, actor.as_ref());
        // A copy `camctl dlq requeue` sent back retries the one recipient it was parked for
        // (after the cause was fixed); every other recipient was handled already.
        // (A whole event parked after failing too often carries no recipient: its copy is
        // handled like a redelivery, mailing whoever has not had it.)
        let requeued_for = message
            .headers
            .as_ref()
            .filter(|h| h.get(shared::nats::headers::REQUEUED).is_some())
            .and_then(|h| h.get(RECIPIENT))
            .map(|r| r.as_str().to_owned());
        let recipients: Vec<Document> = admins
            .into_iter()
            .filter(|admin| {
                let recipient = admin.get_str("_id").unwrap_or_default();
                Some(recipient) != actor_id.as_deref()
                    && requeued_for.as_deref().is_none_or(|r| r == recipient)
            })
            .collect();
        let requeued = requeued_for.is_some();
        // Recipients in parallel, as many as the SMTP pool has connections: one slow or
        // refusing mailbox holds up no other. Every delivery runs to its end (none is
        // cancelled half way, which could lose the record of a mail that went out); the first
        // failure then retries the event, and what was sent is skipped on the retry.
        let deliveries = futures::stream::iter(recipients)
            .map(|admin| self.deliver(envelope, message, &content, admin, requeued))
            .buffer_unordered(self.mailer.connections())
            .collect::<Vec<anyhow::Result<()>>>()
            .await;
        deliveries.into_iter().collect()
    }

    /// Mails one admin of one event, unless that was done before; records the outcome.
    async fn deliver(
        &self,
        envelope: &EventEnvelope,
        message: &jetstream::Message,
        content: &Content,
        admin: Document,
        requeued: bool,
    ) -> anyhow::Result<()> {
        let recipient = admin.get_str("_id").unwrap_or_default().to_owned();
        let record_id = format!("{}:{recipient}", envelope.event_id);
        let sends = self.collection(SENDS);
        if let Some(record) = sends.find_one(doc! { "_id": &record_id }).await? {
            // Sent before this redelivery; or parked, unless this is the requeued copy.
            let parked = record.get_str("outcome") == Ok("failed");
            if !(parked && requeued) {
                return Ok(());
            }
        }
        // Still working on it: no redelivery while this recipient's mail goes out.
        message
            .ack_with(AckKind::Progress)
            .await
            .map_err(|e| anyhow::anyhow!("extending the ack wait: {e}"))?;
        let address = admin.get_str("email").unwrap_or_default();
        let to = recipient_mailbox(admin.get_str("display_name").ok(), address);
        let sent = match to {
            Ok(to) => {
                self.mailer
                    .send(Mail {
                        to,
                        subject: content.subject.clone(),
                        text: content.text.clone(),
                        html: content.html.clone(),
                        message_id: format!("<{record_id}@camreviews>"),
                    })
                    .await
            }
            Err(e) => Err(anyhow::anyhow!("no usable address {address:?}: {e}")),
        };
        let outcome = match sent {
            Ok(()) => "sent",
            // This recipient will never take it (a 5xx, a bad address): park it for this
            // recipient alone and go on, so one bad address blocks nobody.
            Err(e) if is_permanent(&e) => {
                let error = format!("mailing admin {recipient}: {e:#}");
                self.park(envelope, &recipient, &error).await?;
                "failed"
            }
            // The server is away, busy or stalled: retry the event (what was sent is
            // recorded).
            Err(e) => return Err(e.context(format!("mailing admin {recipient}"))),
        };
        sends
            .replace_one(
                doc! { "_id": &record_id },
                doc! {
                    "event_id": envelope.event_id.to_string(),
                    "recipient": &recipient, "outcome": outcome, "at": bson::DateTime::now(),
                },
            )
            .upsert(true)
            .await?;
        let counter = if outcome == "sent" {
            "notifier_mails_sent_total"
        } else {
            "notifier_mails_failed_total"
        };
        metrics::counter!(counter).increment(1);
        Ok(())
    }

    /// Parks one recipient's mail of an event in `DLQ`.
    async fn park(
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

async fn backlog(js: &jetstream::Context, prefix: &Prefix) -> anyhow::Result<(u64, Duration)> {
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

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    matches!(&*error.kind, ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == 11000)
}

/// What a mail says: what product, what changed (before → after), who, when.
struct Content {
    subject: String,
    text: String,
    html: String,
}

impl Content {
    fn of(
        envelope: &EventEnvelope,
        event: &ProductEvent,
        name: &str,
        actor: Option<&Document>,
    ) -> Self {
        let who = actor
            .map(|a| {
                format!(
                    "{} ({})",
                    a.get_str("display_name").unwrap_or_default(),
                    a.get_str("username").unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "the system".to_owned());
        let when = envelope
            .occurred_at
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string();
        let (verb, changes): (&str, Vec<(String, String, String)>) = match event {
            ProductEvent::ProductCreated(created) => {
                let fields = serde_json::to_value(created).unwrap_or_default();
                let rows = ["name", "brand", "price", "currency", "description", "specs"]
                    .iter()
                    .map(|f| ((*f).to_owned(), "—".to_owned(), show(&fields[*f])))
                    .collect();
                ("created", rows)
            }
            ProductEvent::ProductUpdated(update) => (
                "updated",
                update
                    .changes
                    .iter()
                    .map(|(f, c)| (f.clone(), show(&c.before), show(&c.after)))
                    .collect(),
            ),
            ProductEvent::ProductDeleted(_) => ("deleted", Vec::new()),
        };
        let sku = envelope.aggregate_id;
        let subject = format!("[CamReviews] {name} was {verb}");
        let mut text = format!("{who} {verb} the product \"{name}\" (SKU {sku}) at {when}.\n");
        if !changes.is_empty() {
            text.push_str("\nWhat changed:\n");
            for (field, before, after) in &changes {
                text.push_str(&format!("  {field}: {before} -> {after}\n"));
            }
        }
        let escape = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let mut html = format!(
            "<p>{} {verb} the product <strong>{}</strong> (SKU <code>{sku}</code>) at {when}.</p>",
            escape(&who),
            escape(name)
        );
        if !changes.is_empty() {
            html.push_str("<table><tr><th>field</th><th>before</th><th>after</th></tr>");
            for (field, before, after) in &changes {
                html.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(field),
                    escape(before),
                    escape(after)
                ));
            }
            html.push_str("</table>");
        }
        Self {
            subject,
            text,
            html,
        }
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "—".to_owned(),
        other => other.to_string(),
    }
}

/// The recipient's mailbox: the address as given, the display name only ever as the name.
/// (Formatting `"{name} <{address}>"` and parsing it would let a name like
/// `Eve <eve@evil.example>` choose the address.)
fn recipient_mailbox(
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
