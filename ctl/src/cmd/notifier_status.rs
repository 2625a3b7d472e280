//! `camctl notifier status`: how far behind admin mail is — the events the notifier's mail
//! consumer has not finished, and per admin the changes not yet mailed and how long the
//! oldest has waited (the same figures as the notifier's `/metrics`).

use std::io::Write as _;

use mongodb::bson::{Document, doc};

use crate::{cli::Cli, cmd::Done};

pub async fn run(cli: &Cli) -> anyhow::Result<Done> {
    let (js, prefix) = cli.jetstream().await?;
    let db = cli.mongo().await?;
    let waiting = notifier::emails::outbox::waiting_changes(&db).await?;
    let consumer = notifier::emails::backlog(&js, &prefix).await;
    let admins = db.collection::<Document>("notifier_admins");
    let mut out = std::io::stdout().lock();
    match consumer {
        Ok((events, age)) => writeln!(
            out,
            "events not yet taken in   {events} (oldest waiting {:.1} s)",
            age.as_secs_f64()
        )?,
        Err(e) => writeln!(out, "events not yet taken in   unknown ({e:#})")?,
    }
    let total: usize = waiting.iter().map(|w| w.changes).sum();
    writeln!(
        out,
        "changes not yet mailed    {total}, to {} admins",
        waiting.len()
    )?;
    if waiting.is_empty() {
        return Ok(Done::Ok);
    }
    writeln!(out, "{:<24} {:>8} {:>12}", "admin", "changes", "oldest (s)")?;
    for w in &waiting {
        let name = admins
            .find_one(doc! { "_id": &w.recipient })
            .await?
            .and_then(|a| a.get_str("username").ok().map(str::to_owned))
            .unwrap_or_else(|| w.recipient.clone());
        writeln!(
            out,
            "{name:<24} {:>8} {:>12.1}",
            w.changes,
            w.oldest.as_secs_f64()
        )?;
    }
    Ok(Done::Ok)
}
