//! `camctl projections status`: how far the read models are behind the event store.

use std::{collections::BTreeMap, io::Write};

use anyhow::Context as _;
use chrono::Utc;
use futures::TryStreamExt as _;
use mongodb::{
    Database,
    bson::{Document, doc},
};
use projector::rebuild;
use serde::Serialize;
use shared::{nats::Prefix, read_model};
use sqlx::PgPool;

use crate::{
    cli::{Cli, StatusFormat},
    cmd::{Done, dlq},
    progress::grouped,
};

#[derive(Debug, Serialize)]
pub struct Report {
    /// Every event up to here is applied (or parked).
    pub applied_position: i64,
    /// The last position in the event store.
    pub store_position: i64,
    /// Events in the store after the applied position.
    pub lag_events: i64,
    /// Age of the oldest event not yet applied; 0 when caught up.
    pub lag_seconds: f64,
    pub models: Vec<ModelState>,
    /// Durable consumers on the streams, when NATS answers.
    pub consumers: Vec<ConsumerState>,
    /// Parked messages per consumer; `None` when NATS did not answer.
    pub dead_letters: Option<BTreeMap<String, u64>>,
    /// Why NATS figures are missing, if they are.
    pub nats_error: Option<String>,
    /// The models a running rebuild works on, and since when.
    pub rebuilding: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ModelState {
    pub name: String,
    /// Collection → documents.
    pub documents: BTreeMap<String, u64>,
    pub last_rebuilt_at: Option<String>,
    pub last_rebuild_events: Option<i64>,
    pub last_rebuild_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ConsumerState {
    pub stream: String,
    pub name: String,
    /// Messages not yet delivered.
    pub pending: u64,
    /// Delivered, not yet acknowledged.
    pub acknowledging: usize,
    pub redelivered: usize,
}

pub async fn run(cli: &Cli, format: StatusFormat) -> anyhow::Result<Done> {
    let pool = cli.pool().await?;
    let db = cli.mongo().await?;
    // Without NATS the status still shows the read models; it says what it could not see.
    let nats = cli.jetstream().await.map_err(|e| format!("{e:#}"));
    let report = gather(&pool, &db, nats.as_ref().map_err(Clone::clone)).await?;
    match format {
        StatusFormat::Json => writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&report)?
        )?,
        StatusFormat::Table => print(&report, &mut std::io::stdout().lock())?,
    }
    Ok(Done::Ok)
}

async fn gather(
    pool: &PgPool,
    db: &Database,
    nats: Result<&(async_nats::jetstream::Context, Prefix), String>,
) -> anyhow::Result<Report> {
    let applied = read_model::applied_position(db).await?;
    let eventstore::status::Behind {
        store_position,
        events: lag_events,
        oldest,
    } = eventstore::status::Behind::read(pool, applied)
        .await
        .context("reading the event store")?;
    let lag_seconds = oldest.map_or(0.0, |at| {
        ((Utc::now() - at).num_milliseconds().max(0) as f64) / 1000.0
    });

    let rebuilds: BTreeMap<String, Document> = db
        .collection::<Document>(read_model::REBUILDS)
        .find(doc! {})
        .await?
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .filter_map(|d| Some((d.get_str("_id").ok()?.to_owned(), d)))
        .collect();
    let mut models = Vec::new();
    let names = read_model::Collections::current(db).await?;
    for model in &rebuild::MODELS {
        let mut documents = BTreeMap::new();
        for name in model.collections {
            let n = names
                .collection::<Document>(db, name)
                .count_documents(doc! {})
                .await?;
            documents.insert((*name).to_owned(), n);
        }
        let last = rebuilds.get(model.name);
        models.push(ModelState {
            name: model.name.to_owned(),
            documents,
            last_rebuilt_at: last
                .and_then(|d| d.get_datetime("finished_at").ok())
                .map(|t| t.to_string()),
            last_rebuild_events: last.and_then(|d| d.get_i64("events").ok()),
            last_rebuild_seconds: last.and_then(|d| d.get_f64("seconds").ok()),
        });
    }
    let rebuilding = rebuilds.get(read_model::REBUILD_LOCK_ID).map(|lock| {
        format!(
            "{} ({}) since {}",
            lock.get_array("models")
                .map(|m| m
                    .iter()
                    .filter_map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default(),
            lock.get_str("phase").unwrap_or("preparing"),
            lock.get_datetime("since")
                .map(|t| t.to_string())
                .unwrap_or_default()
        )
    });

    let mut consumers = Vec::new();
    let (mut dead_letters, mut nats_error) = (None, None);
    if let Err(e) = &nats {
        nats_error = Some(e.clone());
    }
    if let Ok((js, prefix)) = nats {
        for stream_name in [prefix.events_stream(), prefix.views_stream()] {
            let Ok(stream) = js.get_stream(&stream_name).await else {
                continue;
            };
            let mut infos = stream.consumers();
            while let Ok(Some(info)) = infos.try_next().await {
                if info.config.durable_name.is_none() {
                    continue;
                }
                consumers.push(ConsumerState {
                    stream: stream_name.clone(),
                    name: info.name.clone(),
                    pending: info.num_pending,
                    acknowledging: info.num_ack_pending,
                    redelivered: info.num_redelivered,
                });
            }
        }
        match dlq::parked(js, prefix, None).await {
            Ok(letters) => {
                let mut counts = BTreeMap::new();
                for letter in letters {
                    *counts.entry(letter.consumer).or_insert(0) += 1;
                }
                dead_letters = Some(counts);
            }
            Err(e) => nats_error = Some(format!("{e:#}")),
        }
    }
    Ok(Report {
        applied_position: applied,
        store_position,
        lag_events,
        lag_seconds,
        models,
        consumers,
        dead_letters,
        nats_error,
        rebuilding,
    })
}

fn print(report: &Report, out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(out, "applied position   {}", report.applied_position)?;
    writeln!(out, "event store        {}", report.store_position)?;
    writeln!(
        out,
        "lag                {} events, {:.1} s",
        grouped(report.lag_events.unsigned_abs()),
        report.lag_seconds
    )?;
    if let Some(rebuilding) = &report.rebuilding {
        writeln!(out, "rebuilding         {rebuilding}")?;
    }
    if let Some(error) = &report.nats_error {
        writeln!(
            out,
            "NATS               unavailable ({error}): consumers and dead letters not shown"
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<10}  {:<36}  LAST REBUILT",
        "READ MODEL", "DOCUMENTS"
    )?;
    for model in &report.models {
        let documents = model
            .documents
            .iter()
            .map(|(name, n)| format!("{name} {}", grouped(*n)))
            .collect::<Vec<_>>()
            .join(", ");
        let rebuilt = match (&model.last_rebuilt_at, model.last_rebuild_events) {
            (Some(at), Some(events)) => format!(
                "{at} ({} events, {:.1} s)",
                grouped(events.unsigned_abs()),
                model.last_rebuild_seconds.unwrap_or(0.0)
            ),
            _ => "never".into(),
        };
        writeln!(out, "{:<10}  {documents:<36}  {rebuilt}", model.name)?;
    }
    if !report.consumers.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:<16}  {:<16}  {:>9}  {:>13}  {:>11}  {:>12}",
            "STREAM", "CONSUMER", "PENDING", "ACKNOWLEDGING", "REDELIVERED", "DEAD LETTERS"
        )?;
        for c in &report.consumers {
            writeln!(
                out,
                "{:<16}  {:<16}  {:>9}  {:>13}  {:>11}  {:>12}",
                c.stream,
                c.name,
                grouped(c.pending),
                c.acknowledging,
                c.redelivered,
                report
                    .dead_letters
                    .as_ref()
                    .and_then(|d| d.get(&c.name).copied())
                    .unwrap_or(0),
            )?;
        }
    }
    Ok(())
}
