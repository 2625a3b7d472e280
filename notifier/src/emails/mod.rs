//! Admin emails: every product change reaches every admin except the one who made it,
//! exactly once per (change, recipient), in the order of the changes.
//!
//! Two stages. The [`consumer`] (`notifier`, a durable consumer on `EVENTS`, one event at a
//! time) keeps the notifier's own [`admins`] directory and [`products`] names from the events,
//! and for each product change writes one [`outbox`] entry per recipient (`<event id>:<recipient
//! id>`, so a redelivery adds nothing) before it acknowledges the event. [`delivery`] then
//! mails the outbox per recipient, in parallel, gathering bursts into digests ([`content`]).
//! What fails for good is parked in `DLQ` ([`parking`]); the others flow.

mod admins;
mod backlog;
mod consumer;
pub mod content;
pub mod delivery;
mod duplicates;
pub mod outbox;
mod parking;
mod products;

use std::{sync::Arc, time::Duration};

use async_nats::jetstream;
use mongodb::Database;
use shared::nats::Prefix;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::mail::Mailer;
pub use backlog::backlog;

pub const CONSUMER: &str = "notifier";
/// Deliveries of an event whose outbox entries could not be written, before it is parked.
pub const MAX_ATTEMPTS: i64 = 8;

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
    /// Consumes and delivers until `shutdown`; mails on their way are finished and recorded.
    pub async fn run(self, shutdown: CancellationToken) {
        tokio::spawn(backlog::watch(
            self.js.clone(),
            self.prefix.clone(),
            shutdown.clone(),
        ));
        if let Err(e) = outbox::ensure_indexes(&self.db).await {
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

    fn parking(&self) -> parking::Park {
        parking::Park::new(self.js.clone(), self.prefix.clone())
    }
}
