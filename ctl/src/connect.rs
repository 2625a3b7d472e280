//! Connections to the stores, from the global options. Each command opens only the ones it
//! needs, so a command that reads PostgreSQL works while NATS is down, and the other way round.

use anyhow::Context as _;
use shared::nats::Prefix;
use sqlx::PgPool;

use crate::cli::Cli;

impl Cli {
    /// The event store (PostgreSQL).
    pub async fn pool(&self) -> anyhow::Result<PgPool> {
        PgPool::connect(&self.database_url)
            .await
            .context("connecting to PostgreSQL (DATABASE_URL)")
    }

    /// The read models (MongoDB), checked to answer.
    pub async fn mongo(&self) -> anyhow::Result<mongodb::Database> {
        let config = shared::config::MongoConfig {
            url: self.mongodb_url.clone(),
            db: self.mongodb_db.clone(),
        };
        let db = shared::mongo::connect(&config, "camctl").await?;
        shared::mongo::ping(&db)
            .await
            .map_err(|e| anyhow::anyhow!("connecting to MongoDB (MONGODB_URL): {e}"))?;
        Ok(db)
    }

    /// JetStream, and the prefix of this deployment's stream names and subjects.
    pub async fn jetstream(&self) -> anyhow::Result<(async_nats::jetstream::Context, Prefix)> {
        let prefix =
            Prefix::parse(&self.nats_prefix).map_err(|e| anyhow::anyhow!("NATS_PREFIX {e}"))?;
        let client = shared::nats::options_for(&self.nats_url)?
            .name("camctl")
            .connection_timeout(std::time::Duration::from_secs(5))
            .connect(&self.nats_url)
            .await
            .with_context(|| {
                format!(
                    "connecting to NATS at {} (NATS_URL)",
                    shared::config::shown(&self.nats_url)
                )
            })?;
        Ok((async_nats::jetstream::new(client), prefix))
    }
}
