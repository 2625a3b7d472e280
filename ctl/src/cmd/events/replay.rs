//! `camctl events replay`: stored events in position order, filtered, read from the event
//! store itself, so it sees every event, published or not.

use std::io::{BufWriter, Write as _};

use anyhow::Context as _;
use eventstore::{EventFilter, horizon};
use sqlx::PgPool;

use super::{write_event, write_table_header};
use crate::{
    cli::{Cli, Format, ReplayArgs},
    cmd::Done,
    progress::Bar,
};

/// Events read at a time.
const PAGE: i64 = 1000;

pub async fn run(cli: &Cli, args: &ReplayArgs) -> anyhow::Result<Done> {
    let pool = cli.pool().await?;
    let mut progress = Bar::new(cli.progress);
    let filter = EventFilter {
        event_types: args.types.clone(),
        aggregate_type: args.aggregate_type.clone(),
        aggregate_id: args.aggregate_id,
        since: args.since,
        until: args.until,
        // Only settled positions: nothing can still appear below them, so a later replay
        // `--from-position` the next one misses nothing.
        through: Some(settled_horizon(&pool).await?),
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    if matches!(args.format, Format::Table) {
        write_table_header(&mut out)?;
    }
    let mut after = (args.from_position - 1).max(0);
    let total = eventstore::count_all(&pool, after, &filter)
        .await
        .context("counting events")?;
    progress.start("replaying", "events", total.unsigned_abs());
    loop {
        let page = eventstore::read_all(&pool, after, PAGE, &filter)
            .await
            .context("reading events")?;
        let Some(last) = page.last() else { break };
        after = last.position;
        progress.advance(page.len() as u64);
        for event in page {
            write_event(&mut out, &event.upcast(), args.format)?;
        }
    }
    out.flush()?;
    progress.finish();
    Ok(Done::Ok)
}

/// The position below which no event can still appear, waiting out transactions in flight.
async fn settled_horizon(pool: &PgPool) -> anyhow::Result<i64> {
    let scope = horizon::Scope::detect(pool).await?;
    horizon::settled(pool, scope, 0, async || {
        eprintln!("waiting for transactions in flight to finish...");
        Ok(())
    })
    .await
}
