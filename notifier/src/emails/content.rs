//! What a mail says: one change (what product, what changed before → after, who, when), or a
//! digest of several, oldest first.
//!
//! The HTML part is a `maud` template: every value it interpolates is escaped by the template
//! itself, so a product called `Camera <7>` cannot add markup and no call site can forget to
//! escape. The plain-text part shows the values as they are.

use maud::{Markup, html};
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

    fn html(&self) -> Markup {
        let Self {
            sku,
            name,
            verb,
            who,
            when,
            rows,
        } = self;
        html! {
            p {
                (who) " " (verb) " the product " strong { (name) }
                " (SKU " code { (sku) } ") at " (when) "."
            }
            @if !rows.is_empty() {
                table {
                    tr { th { "field" } th { "before" } th { "after" } }
                    @for [field, before, after] in rows {
                        tr { td { (field) } td { (before) } td { (after) } }
                    }
                }
            }
        }
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
                html: one.html().into_string(),
            };
        }
        let count = changes.len();
        let mut text = format!("{count} product changes, oldest first.\n");
        for change in changes {
            text.push_str("\n----\n");
            text.push_str(&change.text());
        }
        let html = html! {
            p { (count) " product changes, oldest first." }
            @for change in changes {
                hr;
                (change.html())
            }
        };
        Self {
            subject: format!("[CamReviews] {count} product changes"),
            text,
            html: html.into_string(),
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

    #[test]
    fn one_change_renders_as_a_paragraph_and_a_table_of_what_changed() {
        // Pinned: the e2e tests read prices from the mail source by the text part's `-> `,
        // which the HTML part must not repeat.
        let content = Content::of(&[change(1)]);
        assert_eq!(
            content.html,
            "<p>Ana (ana) updated the product <strong>Camera &lt;1&gt;</strong> \
             (SKU <code>sku-1</code>) at 2026-12-02 07:00:00 UTC.</p>\
             <table><tr><th>field</th><th>before</th><th>after</th></tr>\
             <tr><td>price</td><td>1.00</td><td>2.00</td></tr></table>"
        );
    }

    #[test]
    fn markup_in_any_field_is_escaped_in_html_and_kept_as_is_in_text() {
        let hostile = r#"Tom & "Jerry" <script>"#;
        let mut one = change(1);
        one.name = hostile.to_owned();
        one.who = format!("{hostile} (tom)");
        one.rows = vec![["description".into(), hostile.into(), "<b>new</b>".into()]];
        let escaped = "Tom &amp; &quot;Jerry&quot; &lt;script&gt;";
        for content in [Content::of(&[one.clone()]), Content::of(&[change(2), one])] {
            let Content { html, text, .. } = &content;
            assert!(
                !html.contains("<script>") && !html.contains("<b>"),
                "{html}"
            );
            assert!(
                html.contains(&format!("<p>{escaped} (tom) updated")),
                "{html}"
            );
            assert!(
                html.contains(&format!("<strong>{escaped}</strong>")),
                "{html}"
            );
            assert!(html.contains(&format!("<td>{escaped}</td>")), "{html}");
            assert!(html.contains("<td>&lt;b&gt;new&lt;/b&gt;</td>"), "{html}");
            assert!(text.contains(&format!("{hostile} (tom) updated")), "{text}");
            assert!(
                text.contains(&format!("the product \"{hostile}\"")),
                "{text}"
            );
            assert!(
                text.contains(&format!("description: {hostile} -> <b>new</b>")),
                "{text}"
            );
            assert!(!text.contains("&amp;") && !text.contains("&lt;"), "{text}");
        }
    }

    #[test]
    fn a_digest_separates_its_changes_with_rules_in_html() {
        let changes: Vec<Change> = (1..=2).map(change).collect();
        let html = Content::of(&changes).html;
        assert!(html.starts_with("<p>2 product changes, oldest first.</p><hr><p>Ana (ana)"));
        assert_eq!(html.matches("<hr>").count(), 2);
    }

    #[test]
    fn a_deletion_has_no_table() {
        let mut gone = change(1);
        gone.verb = "deleted".into();
        gone.rows.clear();
        let content = Content::of(&[gone]);
        assert_eq!(content.subject, "[CamReviews] Camera <1> was deleted");
        assert!(!content.html.contains("<table>"));
        assert!(!content.text.contains("What changed"));
    }
}
