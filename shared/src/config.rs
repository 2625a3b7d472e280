//! Typed configuration, read once at start-up from the environment names in `API.md`.
//!
//! Every reader returns a [`ConfigError`] naming the variable, so `main` can stop the process
//! with one clear line instead of failing later on first use.

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, str::FromStr};

/// A configuration value that could not be used. Its `Display` is the one line printed at exit.
#[derive(Debug, thiserror::Error)]
#[error("invalid {name}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

impl ConfigError {
    pub fn new(name: &'static str, reason: impl Into<String>) -> Self {
        Self {
            name,
            reason: reason.into(),
        }
    }
}

/// Where values come from: the process environment in production, a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Source for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

/// Reads one variable; an empty value counts as unset.
fn raw(src: &dyn Source, name: &str) -> Option<String> {
    src.get(name).filter(|v| !v.trim().is_empty())
}

pub fn string(src: &dyn Source, name: &'static str, default: &str) -> String {
    raw(src, name).unwrap_or_else(|| default.to_owned())
}

pub fn optional(src: &dyn Source, name: &'static str) -> Option<String> {
    raw(src, name)
}

pub fn parsed<T>(src: &dyn Source, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match raw(src, name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|e| ConfigError::new(name, format!("{v:?}: {e}"))),
    }
}

pub fn socket_addr(
    src: &dyn Source,
    name: &'static str,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let value = string(src, name, default);
    value.parse().map_err(|_| {
        ConfigError::new(
            name,
            format!("{value:?} is not an address like 127.0.0.1:8081"),
        )
    })
}

/// A value as an error message may show it: a URL with its password replaced by `***`;
/// anything else that does not parse as a URL is not shown at all (it may be a key or a
/// password put in the wrong variable), only its length.
pub fn shown(value: &str) -> String {
    match url::Url::parse(value) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password fails only for URLs that cannot have one.
            let _ = parsed.set_password(Some("***"));
            format!("{:?}", parsed.as_str())
        }
        Ok(parsed) => format!("{:?}", parsed.as_str()),
        Err(_) => format!(
            "(a value of {} characters, not shown)",
            value.chars().count()
        ),
    }
}

/// A URL whose scheme is one of `schemes`.
pub fn url(
    src: &dyn Source,
    name: &'static str,
    default: &str,
    schemes: &[&str],
) -> Result<String, ConfigError> {
    let value = string(src, name, default);
    let parsed = url::Url::parse(&value)
        .map_err(|e| ConfigError::new(name, format!("{} is not a URL ({e})", shown(&value))))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(ConfigError::new(
            name,
            format!(
                "{} must start with {}://",
                shown(&value),
                schemes.join(":// or ")
            ),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) && parsed.scheme() != "file" {
        return Err(ConfigError::new(
            name,
            format!("{} names no host", shown(&value)),
        ));
    }
    Ok(value)
}

/// A positive number of seconds.
pub fn positive_secs(
    src: &dyn Source,
    name: &'static str,
    default: i64,
) -> Result<i64, ConfigError> {
    let value = parsed(src, name, default)?;
    if value <= 0 {
        return Err(ConfigError::new(
            name,
            format!("{value} is not a positive number of seconds"),
        ));
    }
    Ok(value)
}

/// The local data directory (dev keys, file mail, blobs) unless a variable says otherwise.
pub fn data_dir(src: &dyn Source) -> PathBuf {
    PathBuf::from(string(src, "CAMREVIEWS_DATA_DIR", ".data"))
}

/// `BLOB_DIR`: where uploaded images live (shared by command-api and query-api); default
/// `blobs` under the data directory.
pub fn blob_dir(src: &dyn Source) -> PathBuf {
    match raw(src, "BLOB_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => data_dir(src).join("blobs"),
    }
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/camreviews";
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_MONGODB_URL: &str = "mongodb://127.0.0.1:27017/?directConnection=true";

pub fn database_url(src: &dyn Source) -> Result<String, ConfigError> {
    url(
        src,
        "DATABASE_URL",
        DEFAULT_DATABASE_URL,
        &["postgres", "postgresql"],
    )
}

#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub url: String,
    pub prefix: crate::nats::Prefix,
}

impl NatsConfig {
    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        let url = url(
            src,
            "NATS_URL",
            DEFAULT_NATS_URL,
            &["nats", "tls", "ws", "wss"],
        )?;
        let prefix = crate::nats::Prefix::parse(&string(src, "NATS_PREFIX", ""))
            .map_err(|reason| ConfigError::new("NATS_PREFIX", reason))?;
        Ok(Self { url, prefix })
    }
}

#[derive(Debug, Clone)]
pub struct MongoConfig {
    pub url: String,
    pub db: String,
}

impl MongoConfig {
    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        let url = url(
            src,
            "MONGODB_URL",
            DEFAULT_MONGODB_URL,
            &["mongodb", "mongodb+srv"],
        )?;
        let db = string(src, "MONGODB_DB", "camreviews");
        let valid = !db.is_empty()
            && db.len() < 64
            && !db.contains(['/', '\\', '.', ' ', '"', '$', '*', '<', '>', ':', '|', '?']);
        if !valid {
            return Err(ConfigError::new(
                "MONGODB_DB",
                format!("{db:?} is not a database name"),
            ));
        }
        Ok(Self { url, db })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let src = env(&[]);
        assert_eq!(database_url(&src).unwrap(), DEFAULT_DATABASE_URL);
        let nats = NatsConfig::from_env(&src).unwrap();
        assert_eq!(nats.url, DEFAULT_NATS_URL);
        assert!(nats.prefix.is_empty());
    }

    #[test]
    fn a_nonsense_database_url_names_the_variable() {
        let err = database_url(&env(&[("DATABASE_URL", "nonsense")])).unwrap_err();
        assert_eq!(err.name, "DATABASE_URL");
        assert!(err.to_string().starts_with("invalid DATABASE_URL"));
    }

    #[test]
    fn error_messages_never_show_a_password_or_a_value_that_is_no_url() {
        let err = database_url(&env(&[(
            "DATABASE_URL",
            "mysql://camreviews:s3cret-pw@db:3306/x",
        )]))
        .unwrap_err();
        assert!(!err.to_string().contains("s3cret-pw"), "{err}");
        assert!(err.to_string().contains("camreviews:***@db"), "{err}");
        let err = database_url(&env(&[("DATABASE_URL", "hunter2-the-password")])).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_wrong_scheme_is_rejected() {
        let err = database_url(&env(&[("DATABASE_URL", "mysql://x/y")])).unwrap_err();
        assert!(err.reason.contains("postgres://"), "{err}");
    }

    #[test]
    fn a_bad_socket_address_names_the_variable() {
        let err =
            socket_addr(&env(&[("X_ADDR", "localhost")]), "X_ADDR", "127.0.0.1:1").unwrap_err();
        assert_eq!(err.name, "X_ADDR");
    }

    #[test]
    fn a_nats_prefix_with_a_dot_is_rejected() {
        let err = NatsConfig::from_env(&env(&[("NATS_PREFIX", "a.b")])).unwrap_err();
        assert_eq!(err.name, "NATS_PREFIX");
    }

    #[test]
    fn numbers_that_do_not_parse_name_the_variable() {
        let err = parsed::<u64>(
            &env(&[("ACCESS_TOKEN_TTL", "soon")]),
            "ACCESS_TOKEN_TTL",
            900,
        )
        .unwrap_err();
        assert_eq!(err.name, "ACCESS_TOKEN_TTL");
    }
}
