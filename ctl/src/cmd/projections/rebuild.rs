//! `camctl projections rebuild`: runs the projector's rebuild protocol
//! ([`projector::rebuild`]) with a progress bar, and prints what it did.

use std::io::Write as _;

use anyhow::Context as _;
use projector::rebuild::{self, Busy, Report};

use crate::{
    cli::Cli,
    cmd::Done,
    progress::{Bar, grouped},
};

pub async fn run(cli: &Cli, name: &str, break_lock: bool) -> anyhow::Result<Done> {
    let models = rebuild::select(name).context("unknown read model")?;
    let pool = cli.pool().await?;
    let db = cli.mongo().await?;
    let mut progress = Bar::new(cli.progress);
    let outcome = async {
        if break_lock && rebuild::break_lock(&db).await? {
            eprintln!("removed the lock of an earlier rebuild");
        }
        rebuild::rebuild(&pool, &db, &models, &mut progress).await
    };
    match outcome.await {
        Ok(report) => print(name, &report),
        Err(e) => match e.downcast::<Busy>() {
            Ok(busy) => {
                eprintln!("error: {busy}");
                Ok(Done::Busy)
            }
            Err(e) => Err(e),
        },
    }
}

fn print(name: &str, report: &Report) -> anyhow::Result<Done> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "rebuilt {name}: {} events replayed in {:.1} s, switched in at position {}, {} applied after the switch",
        grouped(report.events),
        report.elapsed.as_secs_f64(),
        report.switched_at,
        report.settled,
    )?;
    if report.failed.is_empty() {
        return Ok(Done::Ok);
    }
    writeln!(
        out,
        "{} events could not be applied (the live projector parks the same ones in DLQ):",
        report.failed.len()
    )?;
    for (position, reason) in &report.failed {
        writeln!(out, "  position {position}: {reason}")?;
    }
    Ok(Done::Partly)
}
