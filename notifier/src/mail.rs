//! Sending mail: SMTP (`smtp://[user:pass@]host:port[?tls=required]`) or `.eml` files
//! (`file:///dir`, for local use), from `MAIL_FROM`.
//!
//! Over a pool of at most `SMTP_CONNECTIONS` connections, and every message has a deadline of
//! its own (`SMTP_SEND_TIMEOUT`): lettre's timeout covers only the connect (lettre issue
//! 1027), so a server that accepts and then stops answering would otherwise hold a send, and
//! the notifier, for ever. A send past its deadline is dropped with its connection and
//! counts as a transient failure (the mail is retried).

use std::{path::PathBuf, time::Duration};

use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::{PoolConfig, authentication::Credentials},
};
use shared::config::{self, ConfigError, Source};

/// Where mail goes, parsed from `SMTP_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTarget {
    Smtp {
        host: String,
        port: u16,
        credentials: Option<(String, String)>,
        tls: bool,
    },
    Files(PathBuf),
}

#[derive(Debug, Clone)]
pub struct MailConfig {
    pub target: MailTarget,
    pub from: Mailbox,
    /// `SMTP_CONNECTIONS`: connections to the SMTP server at most, so mails to that many
    /// recipients go out at once.
    pub connections: u32,
    /// `SMTP_SEND_TIMEOUT` (seconds): one message's whole SMTP conversation.
    pub send_timeout: Duration,
    /// `MAIL_DIGEST_WINDOW` (seconds): after a mail to a recipient, further changes gather
    /// this long into one digest.
    pub digest_window: Duration,
}

impl MailConfig {
    pub const DEFAULT_CONNECTIONS: u32 = 4;
    pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_DIGEST_WINDOW: Duration = Duration::from_secs(10);

    /// `target` and `from` with the default pool and deadline.
    pub fn new(target: MailTarget, from: Mailbox) -> Self {
        Self {
            target,
            from,
            connections: Self::DEFAULT_CONNECTIONS,
            send_timeout: Self::DEFAULT_SEND_TIMEOUT,
            digest_window: Self::DEFAULT_DIGEST_WINDOW,
        }
    }
}

impl MailConfig {
    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        let default_dir = config::data_dir(src).join("mail");
        let raw = config::string(src, "SMTP_URL", "file://");
        let target = parse_target(&raw, default_dir).map_err(|why| {
            ConfigError::new("SMTP_URL", format!("{}: {why}", config::shown(&raw)))
        })?;
        let from_raw = config::string(src, "MAIL_FROM", "CamReviews <noreply@camreviews.local>");
        let from = from_raw
            .parse()
            .map_err(|e| ConfigError::new("MAIL_FROM", format!("{from_raw:?}: {e}")))?;
        let connections = match config::parsed(src, "SMTP_CONNECTIONS", Self::DEFAULT_CONNECTIONS)?
        {
            0 => return Err(ConfigError::new("SMTP_CONNECTIONS", "must be above 0")),
            n => n,
        };
        let send_timeout = config::positive_secs(
            src,
            "SMTP_SEND_TIMEOUT",
            Self::DEFAULT_SEND_TIMEOUT.as_secs() as i64,
        )?;
        let digest_window: u64 = config::parsed(
            src,
            "MAIL_DIGEST_WINDOW",
            Self::DEFAULT_DIGEST_WINDOW.as_secs(),
        )?;
        Ok(Self {
            target,
            from,
            connections,
            send_timeout: Duration::from_secs(send_timeout.unsigned_abs()),
            digest_window: Duration::from_secs(digest_window),
        })
    }
}

fn parse_target(raw: &str, default_dir: PathBuf) -> Result<MailTarget, String> {
    if raw == "file://" {
        return Ok(MailTarget::Files(default_dir));
    }
    let url = url::Url::parse(raw).map_err(|e| e.to_string())?;
    match url.scheme() {
        "file" => Ok(MailTarget::Files(PathBuf::from(url.path()))),
        "smtp" => {
            let host = url.host_str().ok_or("no host")?.to_owned();
            let port = url.port().unwrap_or(25);
            let credentials = (!url.username().is_empty()).then(|| {
                (
                    url.username().to_owned(),
                    url.password().unwrap_or_default().to_owned(),
                )
            });
            let tls = match url.query_pairs().find(|(k, _)| k == "tls") {
                None => false,
                Some((_, v)) if v == "required" => true,
                Some((_, v)) => return Err(format!("tls={v} (only tls=required)")),
            };
            Ok(MailTarget::Smtp {
                host,
                port,
                credentials,
                tls,
            })
        }
        other => Err(format!("scheme {other} (smtp or file)")),
    }
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
}

pub struct Mailer {
    transport: Transport,
    pub from: Mailbox,
    connections: u32,
    send_timeout: Duration,
    health: SmtpHealth,
}

/// Whether the mail server is failing: since when and why, from the last sends. A mailbox
/// the server refuses for good says nothing about the server and is not counted.
#[derive(Clone, Default)]
pub struct SmtpHealth {
    failing: std::sync::Arc<std::sync::Mutex<Option<(std::time::Instant, String)>>>,
}

impl SmtpHealth {
    fn record(&self, outcome: &anyhow::Result<()>) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(()) => *failing = None,
            Err(e) if is_permanent(e) => {}
            Err(e) => {
                let since = failing
                    .as_ref()
                    .map_or_else(std::time::Instant::now, |f| f.0);
                *failing = Some((since, format!("{e:#}")));
            }
        }
        metrics::gauge!("notifier_smtp_failing").set(f64::from(u8::from(failing.is_some())));
    }

    /// `Err(why)` while the last sends failed (for `/readyz`).
    pub fn state(&self) -> Result<(), String> {
        let failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        match &*failing {
            None => Ok(()),
            Some((since, why)) => Err(format!(
                "failing for {} s: {why}",
                since.elapsed().as_secs()
            )),
        }
    }
}

/// A failure that retrying will not cure: the server refused for good, or the address is
/// unusable.
pub fn is_permanent(error: &anyhow::Error) -> bool {
    match error.downcast_ref::<lettre::transport::smtp::Error>() {
        Some(smtp) => smtp.is_permanent(),
        None => error.to_string().starts_with("no usable address"),
    }
}

/// One mail: plain text and HTML of the same content.
pub struct Mail {
    pub to: Mailbox,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Stable for a given (event, recipient), so a receiving system can spot a repeat.
    pub message_id: String,
}

impl Mailer {
    pub fn new(config: &MailConfig) -> anyhow::Result<Self> {
        let transport = match &config.target {
            MailTarget::Files(dir) => {
                std::fs::create_dir_all(dir)?;
                Transport::Files(AsyncFileTransport::new(dir))
            }
            MailTarget::Smtp {
                host,
                port,
                credentials,
                tls,
            } => {
                let mut builder = if *tls {
                    AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?
                } else {
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                };
                builder = builder
                    .port(*port)
                    .timeout(Some(config.send_timeout.min(Duration::from_secs(10))))
                    .pool_config(PoolConfig::new().max_size(config.connections));
                if let Some((user, password)) = credentials {
                    builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
                }
                Transport::Smtp(builder.build())
            }
        };
        Ok(Self {
            transport,
            from: config.from.clone(),
            connections: config.connections,
            send_timeout: config.send_timeout,
            health: SmtpHealth::default(),
        })
    }

    pub fn health(&self) -> SmtpHealth {
        self.health.clone()
    }

    /// One message's deadline.
    pub fn send_timeout(&self) -> Duration {
        self.send_timeout
    }

    /// How many sends may run at once (the pool's size).
    pub fn connections(&self) -> usize {
        self.connections as usize
    }

    pub async fn send(&self, mail: Mail) -> anyhow::Result<()> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(mail.to)
            .subject(mail.subject)
            .message_id(Some(mail.message_id))
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))?;
        let send = async {
            match &self.transport {
                Transport::Smtp(smtp) => smtp
                    .send(message)
                    .await
                    .map(drop)
                    .map_err(anyhow::Error::from),
                Transport::Files(files) => files
                    .send(message)
                    .await
                    .map(drop)
                    .map_err(anyhow::Error::from),
            }
        };
        let outcome = match tokio::time::timeout(self.send_timeout, send).await {
            Ok(sent) => sent,
            Err(_) => {
                metrics::counter!("notifier_mail_timeouts_total").increment(1);
                Err(anyhow::anyhow!(
                    "the mail server did not finish within {:?}",
                    self.send_timeout
                ))
            }
        };
        self.health.record(&outcome);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_and_file_urls_parse() {
        let dir = PathBuf::from("/d");
        assert_eq!(
            parse_target("smtp://u:p@mail.example.com:587?tls=required", dir.clone()).unwrap(),
            MailTarget::Smtp {
                host: "mail.example.com".into(),
                port: 587,
                credentials: Some(("u".into(), "p".into())),
                tls: true
            }
        );
        assert_eq!(
            parse_target("smtp://127.0.0.1:2525", dir.clone()).unwrap(),
            MailTarget::Smtp {
                host: "127.0.0.1".into(),
                port: 2525,
                credentials: None,
                tls: false
            }
        );
        assert_eq!(
            parse_target("file://", dir.clone()).unwrap(),
            MailTarget::Files(dir.clone())
        );
        assert_eq!(
            parse_target("file:///var/mail/out", dir.clone()).unwrap(),
            MailTarget::Files("/var/mail/out".into())
        );
        assert!(parse_target("http://x", dir.clone()).is_err());
        assert!(parse_target("smtp://x:25?tls=maybe", dir).is_err());
    }
}
