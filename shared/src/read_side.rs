//! What the services on the read side (query-api, notifier) share: the MongoDB read-model
//! store, NATS, and the authenticator that knows which sessions have ended.

use std::time::Duration;

use async_nats::jetstream;
use mongodb::Database;
use tokio_util::sync::CancellationToken;

use crate::{
    auth::{Authenticator, PublicKey, Revocations, TokenVerifier},
    config::{self, ConfigError, MongoConfig, NatsConfig, Source},
    http::Readiness,
    nats::Prefix,
};

#[derive(Debug, Clone)]
pub struct ReadSideConfig {
    pub mongo: MongoConfig,
    pub nats: NatsConfig,
    pub public_key: PublicKey,
    /// Seconds; how far back session revocations matter.
    pub access_token_ttl: i64,
}

impl ReadSideConfig {
    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            mongo: MongoConfig::from_env(src)?,
            nats: NatsConfig::from_env(src)?,
            public_key: PublicKey::from_env(src)?,
            access_token_ttl: config::positive_secs(src, "ACCESS_TOKEN_TTL", 900)?,
        })
    }
}

#[derive(Clone)]
pub struct ReadSide {
    pub db: Database,
    pub js: jetstream::Context,
    pub prefix: Prefix,
    pub authenticator: Authenticator,
    nats: async_nats::Client,
}

impl ReadSide {
    /// Connects lazily: the service starts while a dependency is away, and `/readyz` tells.
    pub async fn connect(config: &ReadSideConfig, app_name: &str) -> anyhow::Result<Self> {
        let db = crate::mongo::connect(&config.mongo, app_name).await?;
        let nats = crate::nats::connect(&config.nats.url, app_name).await?;
        let ttl = Duration::from_secs(config.access_token_ttl.unsigned_abs());
        let authenticator = Authenticator::new(
            TokenVerifier::new(&config.public_key),
            Revocations::new(ttl),
        );
        Ok(Self {
            db,
            js: jetstream::new(nats.clone()),
            prefix: config.nats.prefix.clone(),
            authenticator,
            nats,
        })
    }

    /// MongoDB answers, NATS is connected, recent logouts have been read. With `needs_nats`
    /// false, NATS being away is reported but does not make the service unready (query-api
    /// keeps serving reads without it).
    pub fn readiness(&self, needs_nats: bool) -> Readiness {
        let (db, nats) = (self.db.clone(), self.nats.clone());
        let revocations = self.authenticator.revocations().clone();
        let readiness = Readiness::new()
            .check("mongodb", move || {
                let db = db.clone();
                async move { crate::mongo::ping(&db).await }
            })
            .check("session revocations", move || {
                let caught_up = revocations.is_caught_up();
                async move {
                    if caught_up {
                        Ok(())
                    } else {
                        Err("still reading recent logouts".to_owned())
                    }
                }
            });
        let nats_probe = move || {
            let state = crate::nats::is_connected(&nats);
            async move { state }
        };
        if needs_nats {
            readiness.check("nats", nats_probe)
        } else {
            readiness.advise("nats", nats_probe)
        }
    }

    /// The NATS connection (for plain subscriptions).
    pub fn nats(&self) -> async_nats::Client {
        self.nats.clone()
    }

    /// Starts following `SessionRevoked` events until `shutdown`.
    pub fn follow_revocations(&self, shutdown: CancellationToken) {
        self.authenticator.revocations().spawn_follower(
            self.js.clone(),
            self.prefix.clone(),
            shutdown,
        );
    }
}
