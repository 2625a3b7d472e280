//! command-api's configuration, read once from the environment.

use std::{net::SocketAddr, path::PathBuf};

use shared::{
    config::{self, ConfigError, NatsConfig, Source},
    telemetry::TelemetryConfig,
};

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub database_url: String,
    pub database_max_connections: u32,
    pub nats: NatsConfig,
    pub telemetry: TelemetryConfig,
    pub data_dir: PathBuf,
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
        })
    }
}
