//! The user aggregate. Registration, profile changes, role changes, deletion and session
//! revocation; the superuser is protected from everyone but themselves.

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::{Actor, EventEnvelope, Role, events::UserEvent};
use uuid::Uuid;

use super::aggregate::Aggregate;

/// The state of one user, folded from its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "id": shared::openapi::ids::USER, "username": "ana", "email": "ana@example.com",
    "display_name": "Ana", "role": "publisher", "region": "south-america",
    "is_superuser": false, "created_at": "2026-11-21T10:00:00Z"
}))]
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

impl Aggregate for User {
    type Event = UserEvent;
    type Command = UserCommand;
    type Rejection = UserRejection;
    const NAME: &'static str = "user";

    fn creates(command: &UserCommand) -> bool {
        matches!(command, UserCommand::Register { .. })
    }

    fn handle(
        state: Option<&User>,
        actor: Option<&Actor>,
        command: UserCommand,
    ) -> Result<Vec<UserEvent>, UserRejection> {
        decide(state, actor, command)
    }

    fn apply(state: Option<User>, envelope: &EventEnvelope, event: &UserEvent) -> Option<User> {
        fold(state, envelope, event)
    }

    fn version(&self) -> i64 {
        self.version
    }

    fn deleted(&self) -> bool {
        self.deleted
    }
}

/// Decides what happens; `actor` is who asks (None for the system itself).
fn decide(
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
fn fold(state: Option<User>, envelope: &EventEnvelope, event: &UserEvent) -> Option<User> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::aggregate::scenario::given;

    const ID: Uuid = Uuid::from_u128(7);

    fn registered(is_superuser: bool) -> Vec<UserEvent> {
        vec![UserEvent::UserRegistered {
            username: "ana".into(),
            email: "ana@example.com".into(),
            display_name: "Ana".into(),
            role: Role::Admin,
            region: None,
            is_superuser,
        }]
    }

    fn admin() -> Actor {
        Actor {
            user_id: Uuid::from_u128(8),
            role: Role::Admin,
        }
    }

    fn rename(to: &str) -> UserCommand {
        UserCommand::UpdateProfile {
            display_name: Some(to.into()),
            email: None,
            password_changed: false,
        }
    }

    #[test]
    fn given_no_user_when_registering_then_user_registered() {
        let register = UserCommand::Register {
            username: "ana".into(),
            email: "ana@example.com".into(),
            display_name: "Ana".into(),
            role: Role::Admin,
            region: None,
            is_superuser: false,
        };
        given::<User>(ID, vec![])
            .when(None, register)
            .then(registered(false));
    }

    #[test]
    fn given_the_superuser_when_another_admin_changes_anything_then_superuser_protected() {
        for command in [
            rename("X"),
            UserCommand::Delete,
            UserCommand::ChangeRole {
                to: Role::Publisher,
            },
        ] {
            given::<User>(ID, registered(true))
                .when(Some(&admin()), command)
                .then_rejected(UserRejection::SuperuserProtected);
        }
    }

    #[test]
    fn given_the_superuser_when_they_change_their_own_profile_then_it_changes() {
        let me = Actor {
            user_id: ID,
            role: Role::Admin,
        };
        given::<User>(ID, registered(true))
            .when(Some(&me), rename("Boss"))
            .then(vec![UserEvent::UserProfileUpdated {
                display_name: Some("Boss".into()),
                email: None,
                password_changed: false,
            }]);
    }

    #[test]
    fn given_a_user_when_nothing_changes_then_no_event() {
        given::<User>(ID, registered(false))
            .when(Some(&admin()), rename("Ana"))
            .then_nothing();
        given::<User>(ID, registered(false))
            .when(Some(&admin()), UserCommand::ChangeRole { to: Role::Admin })
            .then_nothing();
    }

    #[test]
    fn given_a_user_when_sessions_are_revoked_then_one_event_per_session() {
        let sessions = [Uuid::from_u128(1), Uuid::from_u128(2)];
        given::<User>(ID, registered(false))
            .when(
                None,
                UserCommand::RevokeSessions {
                    session_ids: sessions.to_vec(),
                },
            )
            .then(
                sessions
                    .iter()
                    .map(|&session_id| UserEvent::SessionRevoked { session_id })
                    .collect(),
            );
    }

    #[test]
    fn given_a_deleted_user_when_anything_then_not_found() {
        let mut deleted = registered(false);
        deleted.push(UserEvent::UserDeleted {});
        given::<User>(ID, deleted)
            .when(Some(&admin()), UserCommand::Delete)
            .then_rejected(UserRejection::NotFound);
    }
}
