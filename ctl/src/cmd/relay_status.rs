//! `camctl relay status`: how far the outbox relay has published the event store to NATS.

use std::io::Write as _;

use anyhow::Context as _;
use eventstore::RelayStatus;

use crate::{cli::Cli, cmd::Done};

pub async fn run(cli: &Cli) -> anyhow::Result<Done> {
    let status = RelayStatus::read(&cli.pool().await?)
        .await
        .context("reading relay progress")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "published up to position  {}", status.published)?;
    writeln!(out, "last position handed out  {}", status.last_position)?;
    writeln!(out, "events not yet published  {}", status.pending)?;
    match status.updated_at {
        Some(at) => writeln!(out, "progress last moved       {}", at.to_rfc3339())?,
        None => writeln!(out, "progress last moved       never")?,
    }
    Ok(Done::Ok)
}
