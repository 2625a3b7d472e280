//! The end-to-end test harness. Each test gets its own PostgreSQL database, its own
//! `NATS_PREFIX` (so its own streams) and its own MongoDB database, runs the services
//! in-process on random ports against the real servers, and drops what it created when it
//! ends — the servers outlive the test run. Logs only with `TEST_LOG` set.
//!
//! Servers: `TEST_DATABASE_URL` (an admin connection, default the local `postgres` database),
//! `NATS_URL`, `MONGODB_URL` — `scripts/test.sh` starts what is not running.

// Test support code: a failed set-up step should stop the test loudly.
#![allow(clippy::unwrap_used)]

pub mod api;
mod mongo_server;
mod nats_server;
mod process;
mod running;
pub mod smtp;
pub mod stream;

use std::sync::Once;

pub use api::{Api, Reply, Tokens};
pub use mongo_server::MongoServer;
pub use nats_server::NatsServer;
pub use process::Process;
pub use running::Running;
pub use smtp::SmtpSink;

use shared::{
    config::{MongoConfig, NatsConfig},
    nats::Prefix,
    telemetry::{LogFormat, TelemetryConfig},
};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

pub struct TestEnv {
    pub id: String,
    pub database_url: String,
    admin_url: String,
    db_name: String,
    pub nats_url: String,
    pub prefix: Prefix,
    pub mongo: MongoConfig,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            shared::telemetry::init(&TelemetryConfig {
                filter: env_or("RUST_LOG", "info"),
                format: LogFormat::Pretty,
            });
        }
    });
}

impl TestEnv {
    pub async fn new() -> Self {
        init_logs();
        let id = Uuid::new_v4().simple().to_string()[..12].to_owned();
        let admin_url = env_or(
            "TEST_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        );
        let db_name = format!("camreviews_test_{id}");
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {db_name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let mut database_url = url::Url::parse(&admin_url).unwrap();
        database_url.set_path(&db_name);
        Self {
            database_url: database_url.to_string(),
            admin_url,
            db_name,
            nats_url: env_or("NATS_URL", shared::config::DEFAULT_NATS_URL),
            prefix: Prefix::parse(&format!("t{id}")).unwrap(),
            mongo: MongoConfig {
                url: env_or("MONGODB_URL", shared::config::DEFAULT_MONGODB_URL),
                db: format!("camreviews_test_{id}"),
            },
            id,
        }
    }

    pub fn nats(&self) -> NatsConfig {
        NatsConfig {
            url: self.nats_url.clone(),
            prefix: self.prefix.clone(),
        }
    }

    fn telemetry() -> TelemetryConfig {
        TelemetryConfig {
            filter: "info".into(),
            format: LogFormat::Pretty,
        }
    }

    pub fn command_api_config(&self) -> command_api::Config {
        command_api::Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            database_url: self.database_url.clone(),
            database_max_connections: 10,
            nats: self.nats(),
            telemetry: Self::telemetry(),
            data_dir: self.data_dir(),
            signing_key: self.signing_key(),
            access_token_ttl: 900,
            refresh_token_ttl: 1_209_600,
            superuser: None,
            publish_regions: vec!["south-america".to_owned()],
            blob_dir: self.data_dir().join("blobs"),
            max_image_bytes: 200_000,
            rate_limit: shared::http::RateLimitConfig::OFF,
            session_max_age: 2_592_000,
            password_hash_concurrency: 2,
            upload_quota: command_api::blob_gc::UploadQuota {
                count: 60,
                bytes: 100 * 1024 * 1024,
            },
            blob_gc_grace: std::time::Duration::from_secs(3600),
        }
    }

    /// This test's data directory (dev keys live under it).
    pub fn data_dir(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("camreviews-{}", self.id))
    }

    /// This test's signing key, generated on first use into its data directory.
    pub fn signing_key(&self) -> shared::auth::SigningKey {
        let src: std::collections::HashMap<String, String> = [(
            "CAMREVIEWS_DATA_DIR".to_owned(),
            self.data_dir().display().to_string(),
        )]
        .into();
        shared::auth::SigningKey::from_env(&src).unwrap()
    }

    pub const SUPERUSER: (&'static str, &'static str) = ("root", "root-password-1");

    /// The seed of the superuser `SUPERUSER`, for a `command_api::Config`.
    pub fn superuser_seed() -> Option<command_api::identity::superuser::SuperuserSeed> {
        let (username, password) = Self::SUPERUSER;
        let src: std::collections::HashMap<String, String> = [
            ("SUPERUSER_USERNAME".to_owned(), username.to_owned()),
            ("SUPERUSER_EMAIL".to_owned(), "root@example.com".to_owned()),
            ("SUPERUSER_PASSWORD".to_owned(), password.to_owned()),
        ]
        .into();
        command_api::identity::superuser::SuperuserSeed::from_env(&src).unwrap()
    }

    /// command-api with the superuser `SUPERUSER` seeded at start-up.
    pub async fn spawn_command_api_with_superuser(&self) -> Running {
        let config = command_api::Config {
            superuser: Self::superuser_seed(),
            ..self.command_api_config()
        };
        self.spawn_command_api_with(config).await
    }

    pub async fn spawn_command_api(&self) -> Running {
        self.spawn_command_api_with(self.command_api_config()).await
    }

    pub async fn spawn_command_api_with(&self, config: command_api::Config) -> Running {
        let app = command_api::Application::build(config).await.unwrap();
        let port = app.port();
        Running::spawn(port, |shutdown| app.run_until_stopped(shutdown))
    }

    pub fn read_side_config(&self) -> shared::read_side::ReadSideConfig {
        shared::read_side::ReadSideConfig {
            mongo: self.mongo.clone(),
            nats: self.nats(),
            public_key: self.signing_key().public,
            access_token_ttl: 900,
        }
    }

    pub fn query_api_config(&self) -> query_api::Config {
        query_api::Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            read_side: self.read_side_config(),
            cache_bytes: 8 << 20,
            views_buffer: query_api::views::BUFFER,
            list_index_products: query_api::listing::MAX_PRODUCTS,
            blob_dir: self.data_dir().join("blobs"),
            max_wait: std::time::Duration::from_millis(query_api::http::MAX_WAIT_MS),
            rate_limit: shared::http::RateLimitConfig::OFF,
            telemetry: Self::telemetry(),
        }
    }

    pub async fn spawn_query_api(&self) -> Running {
        self.spawn_query_api_with(self.query_api_config()).await
    }

    pub async fn spawn_query_api_with(&self, config: query_api::Config) -> Running {
        let app = query_api::Application::build(config).await.unwrap();
        let port = app.port();
        Running::spawn(port, |shutdown| app.run_until_stopped(shutdown))
    }

    pub async fn spawn_projector(&self) -> Running {
        self.spawn_projector_into(self.mongo.clone(), projector::consumer::CONSUMER)
            .await
    }

    /// A projector writing to `mongo` through the durable consumer `consumer`.
    pub async fn spawn_projector_into(&self, mongo: MongoConfig, consumer: &str) -> Running {
        let config = projector::Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            mongo,
            nats: self.nats(),
            consumer: consumer.to_owned(),
            telemetry: Self::telemetry(),
        };
        let app = projector::Application::build(config).await.unwrap();
        let port = app.port();
        Running::spawn(port, |shutdown| app.run_until_stopped(shutdown))
    }

    /// A notifier mailing through the SMTP server at `smtp_url`.
    pub async fn spawn_notifier_mailing(&self, smtp_url: &str) -> Running {
        let src: std::collections::HashMap<String, String> =
            [("SMTP_URL".to_owned(), smtp_url.to_owned())].into();
        let mail = notifier::mail::MailConfig {
            // Quick digests: tests need not wait the production window.
            digest_window: std::time::Duration::from_secs(1),
            ..notifier::mail::MailConfig::from_env(&src).unwrap()
        };
        self.spawn_notifier_with(mail).await
    }

    /// A notifier mailing as `mail` says.
    pub async fn spawn_notifier_with(&self, mail: notifier::mail::MailConfig) -> Running {
        let config = notifier::Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            read_side: self.read_side_config(),
            mail,
            ack_delay_ms: 0,
            telemetry: Self::telemetry(),
        };
        let app = notifier::Application::build(config).await.unwrap();
        let port = app.port();
        Running::spawn(port, |shutdown| app.run_until_stopped(shutdown))
    }

    pub async fn spawn_notifier(&self) -> Running {
        let config = notifier::Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            read_side: self.read_side_config(),
            mail: notifier::mail::MailConfig::new(
                notifier::mail::MailTarget::Files(self.data_dir().join("mail")),
                "CamReviews <noreply@camreviews.local>".parse().unwrap(),
            ),
            ack_delay_ms: 0,
            telemetry: Self::telemetry(),
        };
        let app = notifier::Application::build(config).await.unwrap();
        let port = app.port();
        Running::spawn(port, |shutdown| app.run_until_stopped(shutdown))
    }

    /// The environment a read-side binary (projector, query-api, notifier) needs for this
    /// test's servers.
    pub fn read_side_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MONGODB_URL", self.mongo.url.clone()),
            ("MONGODB_DB", self.mongo.db.clone()),
            ("NATS_URL", self.nats_url.clone()),
            ("NATS_PREFIX", self.prefix.as_str().to_owned()),
            ("CAMREVIEWS_DATA_DIR", self.data_dir().display().to_string()),
        ]
    }

    /// A pool on this test's database, with migrations applied.
    pub async fn pool(&self) -> sqlx::PgPool {
        eventstore::connect(&self.database_url, 24).await.unwrap()
    }

    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        let client = async_nats::connect(&self.nats_url).await.unwrap();
        async_nats::jetstream::new(client)
    }

    async fn cleanup(
        admin_url: String,
        db_name: String,
        nats_url: String,
        prefix: Prefix,
        mongo: MongoConfig,
    ) {
        if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
                .execute(&mut admin)
                .await;
        }
        if let Ok(client) = async_nats::connect(&nats_url).await {
            let js = async_nats::jetstream::new(client);
            for name in [
                prefix.events_stream(),
                prefix.views_stream(),
                prefix.dlq_stream(),
            ] {
                let _ = js.delete_stream(&name).await;
            }
        }
        if let Ok(db) = shared::mongo::connect(&mongo, "tests").await {
            let _ = db.drop().await;
        }
    }
}

impl Drop for TestEnv {
    /// Drops the database, the streams and the MongoDB database, even when the test panicked.
    fn drop(&mut self) {
        let args = (
            self.admin_url.clone(),
            self.db_name.clone(),
            self.nats_url.clone(),
            self.prefix.clone(),
            self.mongo.clone(),
        );
        let cleaner = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(Self::cleanup(args.0, args.1, args.2, args.3, args.4));
            }
        });
        let _ = cleaner.join();
    }
}

/// Sends `request` and reads its answer as JSON (whatever the status).
pub async fn json_of(request: reqwest::RequestBuilder) -> serde_json::Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Resident memory of a process (`std::process::id()` for this one), in bytes.
pub fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A binary of the workspace; they sit next to the test binary's `deps/` folder
/// (`scripts/test.sh` builds them first).
pub fn binary(name: &str) -> std::path::PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --bins`",
        path.display()
    );
    path
}

/// Polls `probe` until it yields a value; panics after `within`.
pub async fn eventually<T, F, Fut>(within: std::time::Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
