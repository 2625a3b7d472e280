//! User commands, run by [`super::aggregate::execute`] like every other aggregate's. The
//! account row (credentials, role, sessions) is locked first, so commands on one user run one
//! at a time with logins and refreshes, and is kept in step in the same transaction.

use eventstore::Appended;
use shared::{Actor, ApiError, Role, events::UserEvent};
use sqlx::PgConnection;
use uuid::Uuid;

use super::aggregate;
use crate::{
    domain::user::{User, UserCommand},
    identity::{accounts, sessions},
};

/// A validated registration.
pub struct Registration {
    pub username: String,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub region: Option<String>,
    pub is_superuser: bool,
    pub password_hash: String,
}

pub async fn register(
    tx: &mut PgConnection,
    registration: Registration,
    actor: Option<Actor>,
) -> Result<(User, Appended), ApiError> {
    let id = Uuid::now_v7();
    let Registration {
        username,
        email,
        display_name,
        role,
        region,
        is_superuser,
        password_hash,
    } = registration;
    // An `InsertError` answers as `http::rejections` says (`username_taken`, ...).
    accounts::insert(tx, id, &username, &password_hash, role, is_superuser).await?;
    let command = UserCommand::Register {
        username,
        email,
        display_name,
        role,
        region,
        is_superuser,
    };
    let executed = aggregate::execute::<User>(tx, id, None, actor, command).await?;
    let appended = executed
        .appended
        .ok_or_else(|| anyhow::anyhow!("registration appended nothing"))?;
    Ok((executed.state, appended))
}

/// Loads the user (locking its account), runs `command`, applies the account side effects and
/// returns the new state with what was appended (`None` when nothing changed).
pub async fn execute(
    tx: &mut PgConnection,
    id: Uuid,
    actor: Option<Actor>,
    command: UserCommand,
) -> Result<(User, Option<Appended>), ApiError> {
    if accounts::lock(tx, id)
        .await
        .map_err(anyhow::Error::from)?
        .is_none()
    {
        return Err(ApiError::NotFound("user"));
    }
    let executed = aggregate::execute::<User>(tx, id, None, actor, command).await?;
    for event in &executed.events {
        match event {
            UserEvent::UserRoleChanged { role, .. } => accounts::set_role(tx, id, *role)
                .await
                .map_err(anyhow::Error::from)?,
            UserEvent::UserDeleted {} => {
                accounts::mark_deleted(tx, id)
                    .await
                    .map_err(anyhow::Error::from)?;
            }
            _ => {}
        }
    }
    Ok((executed.state, executed.appended))
}

/// Ends the user's sessions but `except` (in the account table at once, and as
/// `SessionRevoked` events for the other services); `None` when none was open.
pub async fn end_sessions(
    tx: &mut PgConnection,
    id: Uuid,
    except: Option<Uuid>,
    reason: &str,
    actor: Option<Actor>,
) -> Result<Option<Appended>, ApiError> {
    let session_ids = sessions::revoke_all(tx, id, except, reason)
        .await
        .map_err(anyhow::Error::from)?;
    if session_ids.is_empty() {
        return Ok(None);
    }
    let (_, appended) = execute(tx, id, actor, UserCommand::RevokeSessions { session_ids }).await?;
    Ok(appended)
}

/// Ends sessions right after a change to the user in the same command (`changed` is what
/// [`execute`] returned): the answer's version and position become the last revocation's.
pub async fn end_sessions_after(
    tx: &mut PgConnection,
    changed: &mut (User, Option<Appended>),
    except: Option<Uuid>,
    reason: &str,
    actor: Option<Actor>,
) -> Result<(), ApiError> {
    if let Some(ended) = end_sessions(tx, changed.0.id, except, reason, actor).await? {
        changed.0.version = ended.version;
        changed.1 = Some(ended);
    }
    Ok(())
}

/// The user as their events tell, without locking anything.
pub async fn load(tx: &mut PgConnection, id: Uuid) -> Result<Option<User>, ApiError> {
    aggregate::load(tx, id).await
}

/// The user with its account row locked; `None` if there is no such user.
pub async fn load_locked(tx: &mut PgConnection, id: Uuid) -> Result<Option<User>, ApiError> {
    if accounts::lock(tx, id)
        .await
        .map_err(anyhow::Error::from)?
        .is_none()
    {
        return Ok(None);
    }
    aggregate::load(tx, id).await
}
