//! Delivery: the outbox drained per recipient, in parallel across recipients.
//!
//! A recipient's first change after a quiet period is mailed at once. Changes that arrive
//! while that mail is on its way, or within the digest window after it (`MAIL_DIGEST_WINDOW`),
//! wait and go out together as one digest, oldest first; so a burst of 100 changes reaches
//! each admin in a handful of mails. At most `SMTP_CONNECTIONS` mails are on their way at
//! once, one per recipient, so each recipient reads the changes of a product in order.
//!
//! This module paces the recipients: who is due, and how long one waits after a mail or a
//! failure. What a recipient's next mail holds is [`claim`]ed (the entries move `pending` →
//! `sending` under a digest id, which is also the mail's `Message-ID`); [`send`] mails it and
//! records how it went (`sent`; `failed`, parked in `DLQ` for that recipient, when the mailbox
//! refuses for good; back to `pending` when the server is away or stalls, and the recipient
//! waits out a growing delay). A notifier killed between the server accepting a digest and
//! recording it sends that digest again after a restart, with the same `Message-ID`, so a
//! receiving system can recognise the repeat; that window is the one write after the server's
//! answer.

mod claim;
mod send;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use mongodb::Database;
use tokio::{sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::parking::Park;
use crate::mail::Mailer;
// `camctl notifier status` reads what waits from here.
pub use super::outbox::{Waiting, waiting_changes};

/// How often the outbox is looked at when nothing wakes the dispatcher.
const TICK: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The least time between two looks at the outbox.
const MIN_SCAN: Duration = Duration::from_millis(100);

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

/// Per recipient due a look: how many changes wait, and the age of the oldest.
type Due = HashMap<String, (usize, Duration)>;

/// How many changes a delivery mailed (0: nothing was left, or it was parked or dropped);
/// an error when the server was away or stalled (the changes wait again).
enum Outcome {
    Sent(usize),
}

impl Dispatcher {
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut recipients: HashMap<String, Recipient> = HashMap::new();
        let mut working: JoinSet<(String, anyhow::Result<Outcome>)> = JoinSet::new();
        // Who had changes waiting at the last look, not yet started.
        let mut waiting = Due::new();
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
                match this.due().await {
                    Ok(found) => {
                        publish_lag(&found);
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

    /// Records how a recipient's delivery went: after a mail they wait out the digest window,
    /// after a failure a delay that doubles up to [`MAX_BACKOFF`].
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

    /// Starts a delivery for every recipient in `waiting` who is due, as many as there are
    /// connections; the ones started leave `waiting`.
    fn start_due(
        self: &Arc<Self>,
        recipients: &mut HashMap<String, Recipient>,
        working: &mut JoinSet<(String, anyhow::Result<Outcome>)>,
        waiting: &mut Due,
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

    /// Mails one recipient what waits for them (see [`claim`]).
    async fn deliver(&self, recipient: &str, quiet: bool) -> anyhow::Result<Outcome> {
        match self.next_digest(recipient, quiet).await? {
            Some((digest, entries)) => self.send(recipient, &digest, &entries).await,
            None => Ok(Outcome::Sent(0)),
        }
    }
}

/// Publishes what waits: changes, recipients, and the age of the oldest change.
fn publish_lag(waiting: &Due) {
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
