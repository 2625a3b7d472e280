//! User commands. The account row is locked first, so commands on one user run one at a time
//! and the expected version read from the stream is never stale.

use shared::{Actor, ApiError, Role, events::UserEvent};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::user::{self, User, UserCommand},
    identity::{
        accounts::{self, InsertError},
        sessions,
    },
    store::{self, AppendError, Appended, ExpectedVersion, Metadata, NewEvent, StreamId},
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
    accounts::insert(tx, id, &username, &password_hash, role, is_superuser)
        .await
        .map_err(|e| match e {
            InsertError::UsernameTaken => ApiError::UsernameTaken,
            InsertError::SuperuserExists => ApiError::Conflict("a superuser exists already".into()),
            InsertError::Database(e) => ApiError::Internal(e.into()),
        })?;
    let command = UserCommand::Register {
        username,
        email,
        display_name,
        role,
        region,
        is_superuser,
    };
    let events = user::handle(None, actor.as_ref(), command)?;
    let appended = append(tx, id, ExpectedVersion::NoStream, &events, actor).await?;
    let user =
        fold(None, &appended)?.ok_or_else(|| anyhow::anyhow!("registration produced no user"))?;
    Ok((user, appended))
}

/// Loads the user (locking its account), runs `command`, applies the account side effects and
/// returns the new state with what was appended (`None` when nothing changed).
pub async fn execute(
    tx: &mut PgConnection,
    id: Uuid,
    actor: Option<Actor>,
    command: UserCommand,
) -> Result<(User, Option<Appended>), ApiError> {
    let current = load_locked(tx, id).await?;
    let events = user::handle(current.as_ref(), actor.as_ref(), command)?;
    let Some(state) = current else {
        return Err(ApiError::NotFound("user"));
    };
    if events.is_empty() {
        return Ok((state, None));
    }
    for event in &events {
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
    let appended = append(
        tx,
        id,
        ExpectedVersion::Exact(state.version),
        &events,
        actor,
    )
    .await?;
    let user = fold(Some(state), &appended)?.ok_or(ApiError::NotFound("user"))?;
    Ok((user, Some(appended)))
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
    let stream = store::read_stream(&mut *tx, "user", id)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(user::rehydrate(&stream).map_err(anyhow::Error::from)?)
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
    let stream = store::read_stream(&mut *tx, "user", id)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(user::rehydrate(&stream).map_err(anyhow::Error::from)?)
}

async fn append(
    tx: &mut PgConnection,
    id: Uuid,
    expected: ExpectedVersion,
    events: &[UserEvent],
    actor: Option<Actor>,
) -> Result<Appended, ApiError> {
    let new_events = events
        .iter()
        .map(NewEvent::from_domain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::from)?;
    store::append_events(
        tx,
        StreamId::of::<UserEvent>(id),
        expected,
        &new_events,
        &Metadata::new(actor),
    )
    .await
    .map_err(|e| match e {
        AppendError::Conflict { .. } => {
            ApiError::Conflict("the user changed meanwhile; try again".into())
        }
        AppendError::Store(e) => ApiError::Internal(e.into()),
    })
}

fn fold(state: Option<User>, appended: &Appended) -> Result<Option<User>, ApiError> {
    let mut state = state;
    for envelope in &appended.events {
        let event: UserEvent = envelope.decode().map_err(anyhow::Error::from)?;
        state = user::apply(state, envelope, &event);
    }
    Ok(state)
}
