//! The read-model store: a MongoDB client that connects lazily (services start while MongoDB
//! is away; `/readyz` tells), and its readiness probe. Plain MongoDB: a real `mongod` and the
//! MongoDB-wire server used in development behave alike.

use std::time::Duration;

use anyhow::Context as _;
use mongodb::{Client, Database, bson::doc, options::ClientOptions};

use crate::config::MongoConfig;

pub async fn connect(config: &MongoConfig, app_name: &str) -> anyhow::Result<Database> {
    let mut options = ClientOptions::parse(&config.url)
        .await
        .context("parsing MONGODB_URL")?;
    options.app_name = Some(app_name.to_owned());
    options.server_selection_timeout = Some(Duration::from_secs(2));
    options.connect_timeout = Some(Duration::from_secs(2));
    let client = Client::with_options(options).context("creating the MongoDB client")?;
    Ok(client.database(&config.db))
}

pub async fn ping(db: &Database) -> Result<(), String> {
    db.run_command(doc! { "ping": 1 })
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}
