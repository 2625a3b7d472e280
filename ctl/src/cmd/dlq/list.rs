//! `camctl dlq list`: the parked messages, oldest first.

use std::io::Write as _;

use super::Letter;
use crate::{
    cli::{Cli, Format},
    cmd::Done,
};

pub async fn run(cli: &Cli, consumer: Option<&str>, format: Format) -> anyhow::Result<Done> {
    let (js, prefix) = cli.jetstream().await?;
    let letters = super::parked(&js, &prefix, consumer).await?;
    print(&letters, format)?;
    Ok(Done::Ok)
}

fn print(letters: &[Letter], format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Ndjson => {
            for letter in letters {
                serde_json::to_writer(&mut out, letter)?;
                writeln!(out)?;
            }
        }
        Format::Table => {
            writeln!(
                out,
                "{:>8}  {:<20}  {:<15}  {:<22}  {:>9}  REASON / ORIGINAL SUBJECT",
                "SEQUENCE", "PARKED AT", "CONSUMER", "EVENT TYPE", "POSITION"
            )?;
            for l in letters {
                writeln!(
                    out,
                    "{:>8}  {:<20}  {:<15}  {:<22}  {:>9}  {}{}\n{:>82}{}",
                    l.sequence,
                    l.parked_at.get(..19).unwrap_or(&l.parked_at),
                    l.consumer,
                    l.event_type.as_deref().unwrap_or("-"),
                    l.event_position.map_or("-".into(), |p| p.to_string()),
                    l.error,
                    l.recipient
                        .as_deref()
                        .map(|r| format!(" (recipient {r})"))
                        .unwrap_or_default(),
                    "",
                    l.original_subject,
                )?;
            }
            writeln!(out, "{} parked", letters.len())?;
        }
    }
    Ok(())
}
