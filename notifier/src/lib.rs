//! notifier: consumes EVENTS and VIEWS to email admins ([`emails`], sent through [`mail`]),
//! tally anonymous views exactly ([`views`]) and push live notifications to admins ([`live`]);
//! it serves its health and metrics and follows session revocations.

pub mod emails;
pub mod live;
pub mod mail;
pub mod views;

use std::net::SocketAddr;

use anyhow::Context as _;
use shared::{
    auth::Authenticator,
    config::{self, ConfigError, Source},
    read_side::{ReadSide, ReadSideConfig},
    telemetry::TelemetryConfig,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub read_side: ReadSideConfig,
    pub mail: mail::MailConfig,
    /// `NOTIFIER_ACK_DELAY_MS`: a testing aid (see `emails::Emails::ack_delay`); 0 normally.
    pub ack_delay_ms: u64,
    pub telemetry: TelemetryConfig,
}

impl Config {
    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: config::socket_addr(src, "NOTIFIER_ADDR", "127.0.0.1:8084")?,
            read_side: ReadSideConfig::from_env(src)?,
            mail: mail::MailConfig::from_env(src)?,
            ack_delay_ms: config::parsed(src, "NOTIFIER_ACK_DELAY_MS", 0)?,
            telemetry: TelemetryConfig::from_env(src)?,
        })
    }
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    read_side: ReadSide,
    /// Background work that stops with the service (the live feed).
    tasks: CancellationToken,
    emails: emails::Emails,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // The metrics recorder exists before the first thing is counted.
        shared::telemetry::metrics_handle();
        let read_side = ReadSide::connect(&config.read_side, "notifier").await?;
        // The series dashboards graph exist from the start, at zero.
        for counter in [
            "notifier_mails_sent_total",
            "notifier_mail_failures_total",
            "notifier_views_tallied_total",
            "notifier_mail_timeouts_total",
        ] {
            metrics::counter!(counter).increment(0);
        }
        let tasks = CancellationToken::new();
        let live = live::Live::spawn(
            read_side.nats(),
            read_side.prefix.clone(),
            read_side.db.clone(),
            read_side.authenticator.clone(),
            tasks.clone(),
        );
        let mailer = mail::Mailer::new(&config.mail)?;
        let smtp = mailer.health();
        // Reported when failing, without making the notifier unready: its live streams and the
        // view tally do not need the mail server.
        let readiness = read_side.readiness(true).advise("smtp", move || {
            let state = smtp.state();
            async move { state }
        });
        let router = live::router(live)
            .merge(shared::http::ops_router(readiness))
            .layer(tower_http::trace::TraceLayer::new_for_http());
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding NOTIFIER_ADDR {}", config.addr))?;
        Ok(Self {
            listener,
            router,
            emails: emails::Emails {
                js: read_side.js.clone(),
                prefix: read_side.prefix.clone(),
                db: read_side.db.clone(),
                mailer: std::sync::Arc::new(mailer),
                digest_window: config.mail.digest_window,
                wake: std::sync::Arc::default(),
                ack_delay: std::time::Duration::from_millis(config.ack_delay_ms),
            },
            read_side,
            tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Verifies bearer tokens and knows which sessions have ended.
    pub fn authenticator(&self) -> Authenticator {
        self.read_side.authenticator.clone()
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(address = %self.listener.local_addr()?, "notifier listening");
        self.read_side.follow_revocations(shutdown.clone());
        let tally = views::Tally {
            js: self.read_side.js.clone(),
            prefix: self.read_side.prefix.clone(),
            db: self.read_side.db.clone(),
        };
        let tally = tokio::spawn(tally.run(shutdown.clone()));
        let emails = tokio::spawn(self.emails.run(shutdown.clone()));
        // SSE connections end when the live feed stops, so stop it first on shutdown.
        let tasks = self.tasks.clone();
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            stopping.cancelled().await;
            tasks.cancel();
        });
        shared::http::serve(self.listener, self.router, shutdown).await?;
        tally.await.context("the view tally panicked")?;
        emails.await.context("the admin emails panicked")?;
        Ok(())
    }
}
