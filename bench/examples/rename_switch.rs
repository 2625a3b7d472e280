//! A minimal reproduction: is `renameCollection` with `dropTarget` atomic for readers on the
//! MongoDB-wire server at `MONGODB_URL`?
//!
//! One task fills a shadow collection with the same N documents and renames it over the live
//! one, again and again; readers meanwhile read the live collection in pages of 100, sorted by
//! an indexed key (as query-api lists products), and report any listing that lacks a document
//! or any read that fails. On a server whose rename is atomic, every listing has all N.
//!
//! `cargo run --release -p camreviews-bench --example rename_switch` (docs/performance.md).

// A report for a person at a terminal: its answer is what it prints.
#![allow(clippy::print_stdout)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::TryStreamExt;
use mongodb::{
    Client, Collection, IndexModel,
    bson::{Document, doc},
};

const DOCUMENTS: i64 = 150;
const SWITCHES: usize = 200;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("MONGODB_URL")
        .unwrap_or_else(|_| "mongodb://127.0.0.1:27017/?directConnection=true".into());
    let client = Client::with_uri_str(&url).await?;
    let db = client.database(&format!("rename_switch_{}", std::process::id()));
    fill(&db.collection("live")).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let (listings, short, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (live, stop) = (db.collection::<Document>("live"), stop.clone());
        let (listings, short, failed) = (listings.clone(), short.clone(), failed.clone());
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match list_all(&live).await {
                    Ok(n) if n == DOCUMENTS => {}
                    Ok(n) => {
                        short.fetch_add(1, Ordering::Relaxed);
                        if short.load(Ordering::Relaxed) <= 3 {
                            eprintln!("a listing had {n} of {DOCUMENTS} documents");
                        }
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        if failed.load(Ordering::Relaxed) <= 3 {
                            eprintln!("a read failed: {e}");
                        }
                    }
                }
                listings.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let admin = client.database("admin");
    let started = Instant::now();
    for _ in 0..SWITCHES {
        fill(&db.collection("shadow")).await?;
        admin
            .run_command(doc! {
                "renameCollection": format!("{}.shadow", db.name()),
                "to": format!("{}.live", db.name()),
                "dropTarget": true,
            })
            .await?;
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await?;
    }
    db.drop().await?;
    let (listings, short, failed) = (
        listings.load(Ordering::Relaxed),
        short.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    println!(
        "{SWITCHES} switches in {:.1} s; {listings} listings read meanwhile: {short} incomplete, \
         {failed} failed",
        elapsed.as_secs_f64()
    );
    if short + failed > 0 {
        println!("renameCollection with dropTarget is NOT atomic for readers on this server");
        std::process::exit(1);
    }
    println!("renameCollection with dropTarget looked atomic for readers");
    Ok(())
}

async fn fill(collection: &Collection<Document>) -> anyhow::Result<()> {
    collection.drop().await?;
    collection
        .create_index(IndexModel::builder().keys(doc! { "rank": 1 }).build())
        .await?;
    let documents: Vec<Document> = (0..DOCUMENTS)
        .map(|n| doc! { "_id": format!("doc-{n:04}"), "rank": n, "deleted": false })
        .collect();
    collection.insert_many(documents).await?;
    Ok(())
}

/// Every document, in pages of 100 by `rank` descending (a keyset on the indexed key).
async fn list_all(live: &Collection<Document>) -> mongodb::error::Result<i64> {
    let mut seen = 0;
    let mut below: Option<i64> = None;
    loop {
        let mut filter = doc! { "deleted": false };
        if let Some(rank) = below {
            filter.insert("rank", doc! { "$lt": rank });
        }
        let page: Vec<Document> = live
            .find(filter)
            .sort(doc! { "rank": -1 })
            .limit(100)
            .await?
            .try_collect()
            .await?;
        seen += page.len() as i64;
        match page.last().and_then(|d| d.get_i64("rank").ok()) {
            Some(rank) if page.len() == 100 => below = Some(rank),
            _ => return Ok(seen),
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
