//! The `users` table: credentials and what authorisation needs, written in the same
//! transaction as the user's events. Usernames are unique case-insensitively by a unique
//! index, so two racing registrations cannot both win.

use shared::Role;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    pub id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub is_superuser: bool,
    pub deleted: bool,
}

impl Account {
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Publisher)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("the username is taken")]
    UsernameTaken,
    #[error("a superuser exists already")]
    SuperuserExists,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    username: &str,
    password_hash: &str,
    role: Role,
    is_superuser: bool,
) -> Result<(), InsertError> {
    let outcome = sqlx::query(
        "INSERT INTO users (id, username, password_hash, role, is_superuser) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(username)
    .bind(password_hash)
    .bind(role.as_str())
    .bind(is_superuser)
    .execute(conn)
    .await;
    match outcome {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("users_username_key") => {
            Err(InsertError::UsernameTaken)
        }
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("users_single_superuser_key") => {
            Err(InsertError::SuperuserExists)
        }
        Err(e) => Err(e.into()),
    }
}

const COLUMNS: &str =
    "id, username, password_hash, role, is_superuser, deleted_at IS NOT NULL AS deleted";

pub async fn by_username(
    db: impl PgExecutor<'_>,
    username: &str,
) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE lower(username) = lower($1)"
    ))
    .bind(username)
    .fetch_optional(db)
    .await
}

pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The account, locked for the rest of the transaction.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn set_password(
    conn: &mut PgConnection,
    id: Uuid,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(password_hash)
        .execute(conn)
        .await
        .map(drop)
}

pub async fn set_role(conn: &mut PgConnection, id: Uuid, role: Role) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET role = $2 WHERE id = $1")
        .bind(id)
        .bind(role.as_str())
        .execute(conn)
        .await
        .map(drop)
}

pub async fn mark_deleted(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET deleted_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map(drop)
}

pub async fn superuser_exists(db: impl PgExecutor<'_>) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE is_superuser)")
        .fetch_one(db)
        .await
}
