//! `camctl events`: the event history from the store (`replay`) or live from NATS (`tail`),
//! printed the same way by both.

pub mod replay;
pub mod tail;

use std::io::Write;

use shared::EventEnvelope;

use crate::cli::Format;

fn write_table_header(out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "{:>10}  {:<27}  {:<22}  {:<45}  {:>7}",
        "POSITION", "OCCURRED AT", "TYPE", "AGGREGATE", "VERSION"
    )?;
    Ok(())
}

fn write_event(out: &mut impl Write, event: &EventEnvelope, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Ndjson => {
            serde_json::to_writer(&mut *out, event)?;
            writeln!(out)?;
        }
        Format::Table => writeln!(
            out,
            "{:>10}  {:<27}  {:<22}  {:<45}  {:>7}",
            event.position,
            event
                .occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            event.event_type,
            format!("{}/{}", event.aggregate_type, event.aggregate_id),
            event.aggregate_version,
        )?,
    }
    Ok(())
}
