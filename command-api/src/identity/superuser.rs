//! The first superuser, created at start-up from `SUPERUSER_*` when none exists (and by
//! `camctl users create-superuser`).

use shared::{
    Role,
    config::{self, ConfigError, Source},
};
use sqlx::PgPool;

use crate::{
    commands::users::{self, Registration},
    domain::values::{Email, Password, Username},
    identity::{accounts, password::Hasher},
};

#[derive(Clone)]
pub struct SuperuserSeed {
    pub username: Username,
    pub email: Email,
    pub password: Password,
}

impl std::fmt::Debug for SuperuserSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuperuserSeed")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl SuperuserSeed {
    /// All three `SUPERUSER_*` variables, or none.
    pub fn from_env(src: &dyn Source) -> Result<Option<Self>, ConfigError> {
        let username = config::optional(src, "SUPERUSER_USERNAME");
        let email = config::optional(src, "SUPERUSER_EMAIL");
        let password = config::optional(src, "SUPERUSER_PASSWORD");
        if username.is_none() && email.is_none() && password.is_none() {
            return Ok(None);
        }
        let username = username.ok_or_else(|| {
            ConfigError::new(
                "SUPERUSER_USERNAME",
                "is required with the other SUPERUSER_* variables",
            )
        })?;
        let email = email.ok_or_else(|| {
            ConfigError::new(
                "SUPERUSER_EMAIL",
                "is required with the other SUPERUSER_* variables",
            )
        })?;
        let password = password.ok_or_else(|| {
            ConfigError::new(
                "SUPERUSER_PASSWORD",
                "is required with the other SUPERUSER_* variables",
            )
        })?;
        Ok(Some(Self {
            username: Username::parse(&username)
                .map_err(|e| ConfigError::new("SUPERUSER_USERNAME", e))?,
            email: Email::parse(&email).map_err(|e| ConfigError::new("SUPERUSER_EMAIL", e))?,
            password: Password::parse(&password)
                .map_err(|e| ConfigError::new("SUPERUSER_PASSWORD", e))?,
        }))
    }
}

/// Creates the superuser unless one exists. Returns true if it created one.
pub async fn ensure(pool: &PgPool, hasher: &Hasher, seed: &SuperuserSeed) -> anyhow::Result<bool> {
    if accounts::superuser_exists(pool).await? {
        return Ok(false);
    }
    let password_hash = hasher
        .hash(seed.password.as_str().to_owned())
        .await
        .map_err(anyhow::Error::from)?;
    let mut tx = pool.begin().await?;
    let registration = Registration {
        username: seed.username.as_str().to_owned(),
        email: seed.email.as_str().to_owned(),
        display_name: seed.username.as_str().to_owned(),
        role: Role::Admin,
        region: None,
        is_superuser: true,
        password_hash,
    };
    match users::register(&mut tx, registration, None).await {
        Ok((user, _)) => {
            tx.commit().await?;
            tracing::info!(user_id = %user.id, username = %user.username, "created the superuser");
            Ok(true)
        }
        // Another instance created it at the same moment.
        Err(shared::ApiError::Conflict(_)) => Ok(false),
        Err(e) => Err(anyhow::anyhow!(
            "creating the superuser {:?}: {e}",
            seed.username.as_str()
        )),
    }
}
