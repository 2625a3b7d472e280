//! command-api's configuration, read once from the environment.

use std::{net::SocketAddr, path::PathBuf};

use shared::{
    auth::SigningKey,
    config::{self, ConfigError, NatsConfig, Source},
    telemetry::TelemetryConfig,
};

use crate::{domain::values::Region, identity::superuser::SuperuserSeed};

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
    /// `PUBLISH_REGIONS`: regions whose publishers may write reviews.
    pub publish_regions: Vec<String>,
    /// `BLOB_DIR`: where uploaded images are stored.
    pub blob_dir: PathBuf,
    /// `MAX_IMAGE_BYTES`: the upload limit for one image.
    pub max_image_bytes: u64,
    /// `RATE_LIMIT_ANONYMOUS`, `RATE_LIMIT_USER`, `TRUST_PROXY_HEADERS`.
    pub rate_limit: shared::http::RateLimitConfig,
    /// `SESSION_MAX_AGE` (seconds): a session ends this long after its login, however often
    /// it is refreshed.
    pub session_max_age: i64,
    /// `PASSWORD_HASH_CONCURRENCY`: password hashes run at once (default: the core count).
    pub password_hash_concurrency: usize,
    /// `UPLOAD_QUOTA_COUNT`, `UPLOAD_QUOTA_BYTES`: images and bytes one user may upload per
    /// hour.
    pub upload_quota: crate::blob_gc::UploadQuota,
    /// `BLOB_GC_GRACE` (seconds): how long an unreferenced image's bytes are kept.
    pub blob_gc_grace: std::time::Duration,
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
            rate_limit: shared::http::RateLimitConfig::from_env(src)?,
            publish_regions: publish_regions(src)?,
            blob_dir: config::blob_dir(src),
            session_max_age: config::positive_secs(src, "SESSION_MAX_AGE", 2_592_000)?,
            password_hash_concurrency: match config::parsed(
                src,
                "PASSWORD_HASH_CONCURRENCY",
                std::thread::available_parallelism().map_or(2, usize::from),
            )? {
                0 => {
                    return Err(ConfigError::new(
                        "PASSWORD_HASH_CONCURRENCY",
                        "must be above 0",
                    ));
                }
                n => n,
            },
            upload_quota: crate::blob_gc::UploadQuota {
                count: config::parsed(src, "UPLOAD_QUOTA_COUNT", 60)?,
                bytes: config::parsed(src, "UPLOAD_QUOTA_BYTES", 100 * 1024 * 1024)?,
            },
            blob_gc_grace: std::time::Duration::from_secs(
                config::positive_secs(src, "BLOB_GC_GRACE", 3600)?.unsigned_abs(),
            ),
            max_image_bytes: match config::parsed(src, "MAX_IMAGE_BYTES", 5_242_880_u64)? {
                0 => return Err(ConfigError::new("MAX_IMAGE_BYTES", "must be above 0")),
                n => n,
            },
        })
    }
}

/// A comma list of known regions (`south-america` by default).
fn publish_regions(src: &dyn Source) -> Result<Vec<String>, ConfigError> {
    let raw = config::string(src, "PUBLISH_REGIONS", "south-america");
    raw.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| {
            Region::parse(r)
                .map(|region| region.as_str().to_owned())
                .map_err(|why| ConfigError::new("PUBLISH_REGIONS", format!("{r:?} {why}")))
        })
        .collect()
}
