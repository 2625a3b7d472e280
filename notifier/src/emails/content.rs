//! What a mail says: one change (what product, what changed before → after, who, when), or a
//! digest of several, oldest first. Every field is escaped in the HTML part.

use mongodb::bson::Document;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{EventEnvelope, events::ProductEvent};

/// One product change, as it is mailed; kept in the outbox until it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub sku: String,
    pub name: String,
    /// `created`, `updated` or `deleted`.
    pub verb: String,
    /// Who made it: `Display Name (username)`, or `the system`.
    pub who: String,
    /// When, `YYYY-MM-DD HH:MM:SS UTC`.
    pub when: String,
    /// `[field, before, after]`.
    pub rows: Vec<[String; 3]>,
}

impl Change {
    pub fn of(
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
        let (verb, rows): (&str, Vec<[String; 3]>) = match event {
            ProductEvent::ProductCreated(created) => {
                let fields = serde_json::to_value(created).unwrap_or_default();
                let rows = ["name", "brand", "price", "currency", "description", "specs"]
                    .iter()
                    .map(|f| [(*f).to_owned(), "—".to_owned(), show(&fields[*f])])
                    .collect();
                ("created", rows)
            }
            ProductEvent::ProductUpdated(update) => (
                "updated",
                update
                    .changes
                    .iter()
                    .map(|(f, c)| [f.clone(), show(&c.before), show(&c.after)])
                    .collect(),
            ),
            ProductEvent::ProductDeleted(_) => ("deleted", Vec::new()),
        };
        Self {
            sku: envelope.aggregate_id.to_string(),
            name: name.to_owned(),
            verb: verb.to_owned(),
            who,
            when: envelope
                .occurred_at
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
            rows,
        }
    }

    fn text(&self) -> String {
        let Self {
            sku,
            name,
            verb,
            who,
            when,
            rows,
        } = self;
        let mut text = format!("{who} {verb} the product \"{name}\" (SKU {sku}) at {when}.\n");
        if !rows.is_empty() {
            text.push_str("\nWhat changed:\n");
            for [field, before, after] in rows {
                text.push_str(&format!("  {field}: {before} -> {after}\n"));
            }
        }
        text
    }

    fn html(&self) -> String {
        let mut html = format!(
            "<p>{} {} the product <strong>{}</strong> (SKU <code>{}</code>) at {}.</p>",
            escape(&self.who),
            escape(&self.verb),
            escape(&self.name),
            escape(&self.sku),
            escape(&self.when)
        );
        if !self.rows.is_empty() {
            html.push_str("<table><tr><th>field</th><th>before</th><th>after</th></tr>");
            for [field, before, after] in &self.rows {
                html.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(field),
                    escape(before),
                    escape(after)
                ));
            }
            html.push_str("</table>");
        }
        html
    }
}

/// A mail's subject and its plain-text and HTML parts.
pub struct Content {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Content {
    /// One change as a mail of its own; several as a digest, in the order given.
    pub fn of(changes: &[Change]) -> Self {
        if let [one] = changes {
            return Self {
                subject: format!("[CamReviews] {} was {}", one.name, one.verb),
                text: one.text(),
                html: one.html(),
            };
        }
        let count = changes.len();
        let mut text = format!("{count} product changes, oldest first.\n");
        let mut html = format!("<p>{count} product changes, oldest first.</p>");
        for change in changes {
            text.push_str("\n----\n");
            text.push_str(&change.text());
            html.push_str("<hr>");
            html.push_str(&change.html());
        }
        Self {
            subject: format!("[CamReviews] {count} product changes"),
            text,
            html,
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "—".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(n: u32) -> Change {
        Change {
            sku: format!("sku-{n}"),
            name: format!("Camera <{n}>"),
            verb: "updated".into(),
            who: "Ana (ana)".into(),
            when: "2026-12-02 07:00:00 UTC".into(),
            rows: vec![["price".into(), format!("{n}.00"), format!("{}.00", n + 1)]],
        }
    }

    #[test]
    fn one_change_is_a_mail_of_its_own() {
        let content = Content::of(&[change(1)]);
        assert_eq!(content.subject, "[CamReviews] Camera <1> was updated");
        assert!(content.text.contains("price: 1.00 -> 2.00"));
        assert!(content.html.contains("Camera &lt;1&gt;"), "escaped");
    }

    #[test]
    fn a_digest_lists_every_change_once_in_order() {
        let changes: Vec<Change> = (1..=3).map(change).collect();
        let content = Content::of(&changes);
        assert_eq!(content.subject, "[CamReviews] 3 product changes");
        let at = |needle: &str| content.text.find(needle).unwrap();
        assert!(at("1.00 -> 2.00") < at("2.00 -> 3.00"));
        assert!(at("2.00 -> 3.00") < at("3.00 -> 4.00"));
        assert_eq!(content.text.matches("Ana (ana) updated").count(), 3);
        assert_eq!(content.html.matches("<table>").count(), 3);
    }
}
