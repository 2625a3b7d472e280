//! The user aggregate. Registration, profile changes, role changes, deletion and session
//! revocation; the superuser is protected from everyone but themselves.

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::{Actor, EventEnvelope, Role, events::UserEvent};
use uuid::Uuid;

/// The state of one user, folded from its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub region: Option<String>,
    pub is_superuser: bool,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub deleted: bool,
    #[serde(skip)]
    pub version: i64,
}

#[derive(Debug, Clone)]
pub enum UserCommand {
    Register {
        username: String,
        email: String,
        display_name: String,
        role: Role,
        region: Option<String>,
        is_superuser: bool,
    },
    UpdateProfile {
        display_name: Option<String>,
        email: Option<String>,
        password_changed: bool,
    },
    ChangeRole {
        to: Role,
    },
    Delete,
    /// Ends sessions (a logout, a password change, a role change, "log out everywhere").
    RevokeSessions {
        session_ids: Vec<Uuid>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserRejection {
    #[error("user not found")]
    NotFound,
    #[error("the user exists already")]
    AlreadyExists,
    #[error("the superuser can only be changed by themselves")]
    SuperuserProtected,
}

impl From<UserRejection> for shared::ApiError {
    fn from(r: UserRejection) -> Self {
        match r {
            UserRejection::NotFound => shared::ApiError::NotFound("user"),
            UserRejection::AlreadyExists => shared::ApiError::Conflict(r.to_string()),
            UserRejection::SuperuserProtected => shared::ApiError::SuperuserProtected,
        }
    }
}

/// Decides what happens; `actor` is who asks (None for the system itself).
pub fn handle(
    state: Option<&User>,
    actor: Option<&Actor>,
    command: UserCommand,
) -> Result<Vec<UserEvent>, UserRejection> {
    if let UserCommand::Register {
        username,
        email,
        display_name,
        role,
        region,
        is_superuser,
    } = command
    {
        return match state {
            Some(_) => Err(UserRejection::AlreadyExists),
            None => Ok(vec![UserEvent::UserRegistered {
                username,
                email,
                display_name,
                role,
                region,
                is_superuser,
            }]),
        };
    }
    let user = state
        .filter(|u| !u.deleted)
        .ok_or(UserRejection::NotFound)?;
    let acting_on_self = actor.is_some_and(|a| a.user_id == user.id);
    match command {
        UserCommand::Register { .. } => Err(UserRejection::AlreadyExists),
        UserCommand::UpdateProfile {
            display_name,
            email,
            password_changed,
        } => {
            if user.is_superuser && !acting_on_self && actor.is_some() {
                return Err(UserRejection::SuperuserProtected);
            }
            let display_name = display_name.filter(|n| *n != user.display_name);
            let email = email.filter(|e| *e != user.email);
            if display_name.is_none() && email.is_none() && !password_changed {
                return Ok(Vec::new());
            }
            Ok(vec![UserEvent::UserProfileUpdated {
                display_name,
                email,
                password_changed,
            }])
        }
        UserCommand::ChangeRole { to } => {
            // The superuser stays an admin, whoever asks.
            if user.is_superuser {
                return Err(UserRejection::SuperuserProtected);
            }
            if to == user.role {
                return Ok(Vec::new());
            }
            Ok(vec![UserEvent::UserRoleChanged {
                previous_role: user.role,
                role: to,
            }])
        }
        UserCommand::Delete => {
            if user.is_superuser {
                return Err(UserRejection::SuperuserProtected);
            }
            Ok(vec![UserEvent::UserDeleted {}])
        }
        UserCommand::RevokeSessions { session_ids } => Ok(session_ids
            .into_iter()
            .map(|session_id| UserEvent::SessionRevoked { session_id })
            .collect()),
    }
}

/// Folds one event into the state.
pub fn apply(state: Option<User>, envelope: &EventEnvelope, event: &UserEvent) -> Option<User> {
    let mut user = match (state, event) {
        (
            None,
            UserEvent::UserRegistered {
                username,
                email,
                display_name,
                role,
                region,
                is_superuser,
            },
        ) => User {
            id: envelope.aggregate_id,
            username: username.clone(),
            email: email.clone(),
            display_name: display_name.clone(),
            role: *role,
            region: region.clone(),
            is_superuser: *is_superuser,
            created_at: envelope.occurred_at,
            deleted: false,
            version: 0,
        },
        (
            Some(mut user),
            UserEvent::UserProfileUpdated {
                display_name,
                email,
                ..
            },
        ) => {
            if let Some(name) = display_name {
                user.display_name = name.clone();
            }
            if let Some(email) = email {
                user.email = email.clone();
            }
            user
        }
        (Some(mut user), UserEvent::UserRoleChanged { role, .. }) => {
            user.role = *role;
            user
        }
        (Some(mut user), UserEvent::UserDeleted {}) => {
            user.deleted = true;
            user
        }
        (Some(user), _) => user,
        (None, _) => return None,
    };
    user.version = envelope.aggregate_version;
    Some(user)
}

/// Rebuilds a user from its stream.
pub fn rehydrate(stream: &[EventEnvelope]) -> Result<Option<User>, shared::events::DecodeError> {
    let mut state = None;
    for envelope in stream {
        let event: UserEvent = envelope.decode()?;
        state = apply(state, envelope, &event);
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(is_superuser: bool) -> User {
        User {
            id: Uuid::now_v7(),
            username: "ana".into(),
            email: "ana@example.com".into(),
            display_name: "Ana".into(),
            role: Role::Admin,
            region: None,
            is_superuser,
            created_at: Utc::now(),
            deleted: false,
            version: 1,
        }
    }

    fn admin() -> Actor {
        Actor {
            user_id: Uuid::now_v7(),
            role: Role::Admin,
        }
    }

    #[test]
    fn given_no_user_when_registering_then_user_registered() {
        let events = handle(
            None,
            None,
            UserCommand::Register {
                username: "ana".into(),
                email: "ana@example.com".into(),
                display_name: "Ana".into(),
                role: Role::Publisher,
                region: Some("europe".into()),
                is_superuser: false,
            },
        )
        .unwrap();
        assert!(
            matches!(&events[..], [UserEvent::UserRegistered { username, .. }] if username == "ana")
        );
    }

    #[test]
    fn given_the_superuser_when_another_admin_changes_anything_then_superuser_protected() {
        let su = user(true);
        let other = admin();
        let update = UserCommand::UpdateProfile {
            display_name: Some("X".into()),
            email: None,
            password_changed: false,
        };
        assert_eq!(
            handle(Some(&su), Some(&other), update),
            Err(UserRejection::SuperuserProtected)
        );
        assert_eq!(
            handle(Some(&su), Some(&other), UserCommand::Delete),
            Err(UserRejection::SuperuserProtected)
        );
        let demote = UserCommand::ChangeRole {
            to: Role::Publisher,
        };
        assert_eq!(
            handle(Some(&su), Some(&other), demote),
            Err(UserRejection::SuperuserProtected)
        );
    }

    #[test]
    fn given_the_superuser_when_they_change_their_own_profile_then_it_changes() {
        let su = user(true);
        let me = Actor {
            user_id: su.id,
            role: Role::Admin,
        };
        let update = UserCommand::UpdateProfile {
            display_name: Some("Boss".into()),
            email: None,
            password_changed: false,
        };
        let events = handle(Some(&su), Some(&me), update).unwrap();
        assert!(
            matches!(&events[..], [UserEvent::UserProfileUpdated { display_name: Some(n), .. }] if n == "Boss")
        );
    }

    #[test]
    fn given_a_user_when_nothing_changes_then_no_event() {
        let u = user(false);
        let same = UserCommand::UpdateProfile {
            display_name: Some("Ana".into()),
            email: None,
            password_changed: false,
        };
        assert!(handle(Some(&u), Some(&admin()), same).unwrap().is_empty());
        assert!(
            handle(
                Some(&u),
                Some(&admin()),
                UserCommand::ChangeRole { to: Role::Admin }
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn given_a_deleted_user_when_anything_then_not_found() {
        let mut u = user(false);
        u.deleted = true;
        assert_eq!(
            handle(Some(&u), Some(&admin()), UserCommand::Delete),
            Err(UserRejection::NotFound)
        );
    }
}
