//! Does the MongoDB-wire server at `MONGODB_URL` answer range queries on a *descending* key of
//! a compound index exactly? The Python SecantusDB missed the boundary value of `$gte`/`$lte`
//! on such keys, which is why every read-model index is ascending (docs/performance.md).
//!
//! `cargo run -p camreviews-bench --example descending_index`: prints each query's count
//! with and without the index; exit code 1 if any differ.

// A report for a person at a terminal: its answer is what it prints.
#![allow(clippy::print_stdout)]

use mongodb::{
    Client, IndexModel,
    bson::{Document, doc},
};
use shared::read_model::product_fields::{DELETED, ID, PRICE_CENTS};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("MONGODB_URL")
        .unwrap_or_else(|_| "mongodb://127.0.0.1:27017/?directConnection=true".into());
    let client = Client::with_uri_str(&url).await?;
    let db = client.database(&format!("descending_index_{}", std::process::id()));
    let indexed = db.collection::<Document>("indexed");
    let plain = db.collection::<Document>("plain");
    indexed
        .create_index(
            IndexModel::builder()
                .keys(doc! { DELETED: 1, PRICE_CENTS: -1, ID: -1 })
                .build(),
        )
        .await?;
    let documents: Vec<Document> = (0..500_i64)
        .map(|n| doc! { ID: format!("p{n:04}"), DELETED: false, PRICE_CENTS: (n % 50) * 100 })
        .collect();
    indexed.insert_many(documents.clone()).await?;
    plain.insert_many(documents).await?;

    let queries = [
        doc! { DELETED: false, PRICE_CENTS: { "$gte": 2000 } },
        doc! { DELETED: false, PRICE_CENTS: { "$lte": 2000 } },
        doc! { DELETED: false, PRICE_CENTS: { "$gte": 1000, "$lte": 3000 } },
        doc! { DELETED: false, PRICE_CENTS: { "$lt": 2000 } },
    ];
    let mut differ = false;
    for query in queries {
        let with_index = indexed.count_documents(query.clone()).await?;
        let without = plain.count_documents(query.clone()).await?;
        let sorted = indexed
            .find(query.clone())
            .sort(doc! { PRICE_CENTS: -1, ID: -1 })
            .await?;
        let sorted = futures::TryStreamExt::try_collect::<Vec<_>>(sorted)
            .await?
            .len() as u64;
        println!("{query}: {with_index} with the index, {sorted} sorted, {without} without");
        differ |= with_index != without || sorted != without;
    }
    db.drop().await?;
    if differ {
        println!("descending index keys give wrong range answers on this server");
        std::process::exit(1);
    }
    println!("descending index keys answer range queries exactly");
    Ok(())
}
