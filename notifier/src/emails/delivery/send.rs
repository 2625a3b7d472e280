//! Mailing one claimed digest to its recipient, and recording how it went: `sent`; `dropped`
//! when the recipient is no longer an admin; `failed` (each change parked in `DLQ` for this
//! recipient alone) when their mailbox refuses for good; back to `pending` when the server is
//! away or stalls.

use mongodb::bson::{self, doc};
use shared::EventEnvelope;

use super::{Dispatcher, Outcome};
use crate::{
    emails::{
        admins::Directory,
        content::{Change, Content},
        outbox::{self, DROPPED, Entry, FAILED, PENDING, SENDING, SENT},
    },
    mail::{Mail, is_permanent},
};

impl Dispatcher {
    pub(super) async fn send(
        &self,
        recipient: &str,
        digest: &str,
        entries: &[Entry],
    ) -> anyhow::Result<Outcome> {
        let Some(admin) = Directory::of(&self.db).admin(recipient).await? else {
            self.mark(digest, DROPPED).await?;
            return Ok(Outcome::Sent(0));
        };
        let changes: Vec<Change> = entries.iter().map(|e| e.change.clone()).collect();
        let content = Content::of(&changes);
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
                    self.park.mail(&envelope, recipient, &error).await?;
                }
                self.mark(digest, FAILED).await?;
                metrics::counter!("notifier_mails_failed_total").increment(1);
                Ok(Outcome::Sent(0))
            }
            // Away, busy or stalled: the changes wait again (they may join later ones).
            Err(e) => {
                outbox::entries(&self.db)
                    .update_many(
                        doc! { "digest": digest, "state": SENDING },
                        doc! {
                            "$set": { "state": PENDING },
                            "$unset": { "digest": "", "claimed_at": "" },
                        },
                    )
                    .await?;
                Err(e.context(format!("mailing admin {recipient}")))
            }
        }
    }

    /// Records how the digest's mail ended.
    async fn mark(&self, digest: &str, state: &str) -> anyhow::Result<()> {
        outbox::entries(&self.db)
            .update_many(
                doc! { "digest": digest, "state": SENDING },
                doc! { "$set": { "state": state, "done_at": bson::DateTime::now() } },
            )
            .await?;
        Ok(())
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
mod tests {
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
