//! command-api's configuration, read once from the environment.

use std::{net::SocketAddr, path::PathBuf};

use shared::{
    auth::SigningKey,
    config::{self, ConfigError, NatsConfig, Source},
    telemetry::TelemetryConfig,
};

use crate::identity::superuser::SuperuserSeed;

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub database_url: String,
    pub database_max_connections: u32,
    pub nats: NatsConfig,
    pub telemetry: TelemetryConfig,
    pub data_dir: PathBuf,
    pub signing_key: SigningKey,
    /// Seconds.
    pub access_token_ttl: i64,
    /// Seconds.
    pub refresh_token_ttl: i64,
    pub superuser: Option<SuperuserSeed>,
}

impl Config {
    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: config::socket_addr(src, "COMMAND_API_ADDR", "127.0.0.1:8081")?,
            database_url: config::database_url(src)?,
            database_max_connections: config::parsed(src, "DATABASE_MAX_CONNECTIONS", 20)?,
            nats: NatsConfig::from_env(src)?,
            telemetry: TelemetryConfig::from_env(src)?,
            data_dir: config::data_dir(src),
            signing_key: SigningKey::from_env(src)?,
            access_token_ttl: config::positive_secs(src, "ACCESS_TOKEN_TTL", 900)?,
            refresh_token_ttl: config::positive_secs(src, "REFRESH_TOKEN_TTL", 1_209_600)?,
            superuser: SuperuserSeed::from_env(src)?,
        })
    }
}
